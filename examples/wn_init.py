"""Weight-norm initialization of a deep MLP (Arpit, Campos & Bengio, 2019).

A 50-layer, width-128 ReLU MLP of weight-normalized layers (`keras_metainit.layers.WNDense`) is
trained twice on the bundled Fashion-MNIST subset with the same budget (2 epochs of Adam 3e-4
behind a one-epoch `QuadraticWarmup`, batch 64): once with `WNInit` (orthogonal directions, gain
sqrt(2 * fan_in / fan_out) for the ReLU layers, gamma=1 for the classifier) and once with Keras's
default `glorot_uniform`. It prints the column norms WNInit gave the first kernel and, for each
initialization, the final training loss and the test accuracy.

Run:  python examples/wn_init.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os
import time

import keras
import numpy as np

import keras_metainit
from keras_metainit.datasets import load_fashion_mnist
from keras_metainit.layers import WNDense

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH, EPOCHS, N_TRAIN = (4, 1, 512) if QUICK else (50, 2, 6000)

x_train, y_train = load_fashion_mnist("train", flatten=True)
x_test, y_test = load_fashion_mnist("test", flatten=True)
x_train, y_train = x_train[:N_TRAIN], y_train[:N_TRAIN]
BATCH = 64
steps_per_epoch = -(-len(x_train) // BATCH)


def wn_mlp(hidden_init, output_init):
    """DEPTH ReLU WNDense layers of 128 units, then 10 logits."""
    return keras.Sequential(
        [keras.Input((784,))]
        + [WNDense(128, activation="relu", kernel_initializer=hidden_init) for _ in range(DEPTH)]
        + [WNDense(10, kernel_initializer=output_init)]
    )


def train(model):
    model.compile(
        # Arpit et al. pair the init with a quadratic warmup of the learning rate
        optimizer=keras.optimizers.Adam(
            keras_metainit.QuadraticWarmup(3e-4, warmup_steps=steps_per_epoch)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return history.history["loss"][-1], accuracy, time.perf_counter() - start


keras.utils.set_random_seed(0)
# One unseeded WNInit can be shared by all layers: every call draws a fresh kernel.
wn_model = wn_mlp(keras_metainit.WNInit(), keras_metainit.WNInit(gamma=1.0))
first = wn_model.layers[0]
column_norms = np.linalg.norm(keras.ops.convert_to_numpy(first.kernel), axis=0)
expected = keras_metainit.WNInit().gain(first.v.shape)  # sqrt(2 * 784 / 128)
print(f"WNInit, first kernel {tuple(first.v.shape)}: column norms {column_norms.min():.4f} .. "
      f"{column_norms.max():.4f} (expected sqrt(2 * 784 / 128) = {expected:.4f})")

glorot_model = wn_mlp("glorot_uniform", "glorot_uniform")

print(f"{DEPTH}-layer WNDense MLP, {EPOCHS} epoch(s) of Adam 3e-4 with QuadraticWarmup, "
      f"{len(x_train)} training images")
results = {}
for name, model in (("WNInit", wn_model), ("glorot_uniform", glorot_model)):
    loss, accuracy, seconds = train(model)
    results[name] = accuracy
    print(f"  {name:15s} train loss {loss:.3f}  test accuracy {accuracy:.3f}  ({seconds:.1f} s)")
