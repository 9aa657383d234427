"""MetaInit: repair a badly initialized deep plain MLP without data (Dauphin & Schoenholz, 2019).

A 20-layer, width-128 plain ReLU MLP (`keras.layers.Dense`, no normalization) starts from a bad
initialization: every kernel is 0.1 x He-normal, so the signal shrinks by ~0.1 per layer and the
net does not train. `model.meta_initialize(None, method="metainit")` tunes the norm of every
kernel (never its direction) to minimize the gradient quotient on random Gaussian inputs and
random labels, MetaInit's reference setting: no data is needed. The script prints the report
(GQ before -> after, the per-tensor scales, the end-to-end gain relative to He), the gradient
quotient on a real training batch before and after, and the test accuracy after 2 epochs of SGD
(0.01, momentum 0.9, batch 128) for the repaired net, the unrepaired bad start and He-normal.
These are the settings of `keras-metainit demo`.

Run:  python examples/metainit.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os
import time

import keras

import keras_metainit  # adds model.meta_initialize to every keras.Model
from keras_metainit.datasets import load_fashion_mnist

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH, STEPS, EPOCHS, N_TRAIN = (4, 10, 1, 1024) if QUICK else (20, 200, 2, 6000)

x_train, y_train = load_fashion_mnist("train", flatten=True)
x_test, y_test = load_fashion_mnist("test", flatten=True)
x_train, y_train = x_train[:N_TRAIN], y_train[:N_TRAIN]
mean, std = x_train.mean(), x_train.std()  # standardize with the training statistics
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
probe = (x_train[:128], y_train[:128])  # one fixed real batch for the diagnostics


def mlp(scale=1.0):
    """DEPTH ReLU Dense layers of 128 units and 10 logits, He-normal kernels times `scale`."""
    model = keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(128, activation="relu", kernel_initializer="he_normal")
           for _ in range(DEPTH)]
        + [keras.layers.Dense(10, kernel_initializer="he_normal")]
    )
    for layer in model.layers:
        layer.kernel.assign(layer.kernel * scale)
    return model


def train(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=128, epochs=EPOCHS, verbose=0)
    return model.evaluate(x_test, y_test, verbose=0)[1]


keras.utils.set_random_seed(0)
model = mlp(scale=0.1)  # the bad start
gq_before = keras_metainit.gradient_quotient(model, probe)

start = time.perf_counter()
# data=None: random Gaussian inputs and uniform random labels. The loss is inferred from the
# output layer (10 logits: sparse categorical cross-entropy from logits).
report = model.meta_initialize(None, method="metainit", steps=STEPS, seed=0, verbose=0)
init_seconds = time.perf_counter() - start
print(report)

gq_after = keras_metainit.gradient_quotient(model, probe)
gain = report.end_to_end_gain
print(f"\nMetaInit: {report.steps_run} steps in {init_seconds:.1f} s")
print(f"GQ on random data (the objective, eps={report.config['eps']:g}): "
      f"{report.before['gq']:.4g} -> {report.after['gq']:.4g}")
print(f"GQ on a real batch (gradient_quotient, eps=1e-5): {gq_before:.4g} -> {gq_after:.4g}")
print(f"end-to-end gain vs He: {gain['before']:.3g} -> {gain['after']:.3g}")

accuracy = {"MetaInit": train(model)}
keras.utils.set_random_seed(0)
accuracy["bad start, no fix"] = train(mlp(scale=0.1))
keras.utils.set_random_seed(0)
accuracy["He"] = train(mlp())
print(f"\ntest accuracy after {EPOCHS} epoch(s) of SGD:")
for name, acc in accuracy.items():
    print(f"  {name:18s} {acc:.3f}")
