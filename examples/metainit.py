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

import keras_metainit  # adds model.meta_initialize to every keras.Model
from keras_metainit.experiments import data, models, training

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH, STEPS, EPOCHS, N_TRAIN = (4, 10, 1, 1024) if QUICK else (20, 200, 2, 6000)

# the bundled Fashion-MNIST subset as vectors, standardized with the training statistics
(x_train, y_train), (x_test, y_test), _ = data.fashion_mnist("small", flatten=True,
                                                             train_size=N_TRAIN)
probe = (x_train[:128], y_train[:128])  # one fixed real batch for the diagnostics


def mlp(scale=1.0):
    """DEPTH ReLU Dense layers of 128 units and 10 logits (the harness's plain MLP, seed 0),
    He-normal kernels times `scale`."""
    return models.scale_kernels(models.mlp(DEPTH, 128, input_shape=(784,), seed=0), scale)


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

# the same budget for each: SGD 0.01, momentum 0.9, batch 128 (the harness's training loop)
accuracy = training.accuracies({"MetaInit": model, "bad start, no fix": mlp(scale=0.1),
                                "He": mlp()}, (x_train, y_train), (x_test, y_test),
                               training.Budget("sgd", 0.01, epochs=EPOCHS))
