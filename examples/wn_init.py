"""Weight-norm initialization of a deep MLP (Arpit, Campos & Bengio, 2019).

A 50-layer, width-128 ReLU MLP of weight-normalized layers (`keras_metainit.layers.WNDense`) is
trained twice on the bundled Fashion-MNIST subset with the same budget (2 epochs of Adam 3e-4
behind a one-epoch quadratic warmup, the shape of `keras_metainit.QuadraticWarmup`, batch 64):
once with `WNInit` (orthogonal directions, gain sqrt(2 * fan_in / fan_out) for the ReLU layers,
gamma=1 for the classifier) and once with Keras's default `glorot_uniform`. It prints the column norms WNInit gave the first kernel and, for each
initialization, the final training loss and the test accuracy.

Run:  python examples/wn_init.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os

import keras
import numpy as np

import keras_metainit
from keras_metainit.experiments import data, models, training
from keras_metainit.layers import WNDense

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH, EPOCHS, N_TRAIN = (4, 1, 512) if QUICK else (50, 2, 6000)

# the bundled Fashion-MNIST subset as vectors, pixels in [0, 1]
(x_train, y_train), (x_test, y_test), _ = data.fashion_mnist(
    "small", flatten=True, standardize=False, train_size=N_TRAIN)
BATCH = 64
steps_per_epoch = -(-len(x_train) // BATCH)
# Arpit et al. pair the init with a quadratic warmup of the learning rate (one epoch here)
BUDGET = training.Budget("adam", 3e-4, batch_size=BATCH, epochs=EPOCHS, warmup=steps_per_epoch,
                         warmup_power=2.0)


def wn_mlp(hidden_init, output_init):
    """DEPTH ReLU WNDense layers of 128 units, then 10 logits (the harness's MLP, seed 0)."""
    return models.mlp(DEPTH, 128, dense=WNDense, kernel_initializer=hidden_init,
                      output_initializer=output_init, input_shape=(784,), seed=0)


# One unseeded WNInit can be shared by all layers: every call draws a fresh kernel.
wn_model = wn_mlp(keras_metainit.WNInit(), keras_metainit.WNInit(gamma=1.0))
first = wn_model.layers[0]
column_norms = np.linalg.norm(keras.ops.convert_to_numpy(first.kernel), axis=0)
expected = keras_metainit.WNInit().gain(first.v.shape)  # sqrt(2 * 784 / 128)
print(f"WNInit, first kernel {tuple(first.v.shape)}: column norms {column_norms.min():.4f} .. "
      f"{column_norms.max():.4f} (expected sqrt(2 * 784 / 128) = {expected:.4f})")

glorot_model = wn_mlp("glorot_uniform", "glorot_uniform")

print(f"{DEPTH}-layer WNDense MLP, {BUDGET.describe()}, {len(x_train)} training images")
results = {}
for name, model in (("WNInit", wn_model), ("glorot_uniform", glorot_model)):
    run = training.train(model, (x_train, y_train), (x_test, y_test), BUDGET)
    results[name] = run.test_acc
    print(f"  {name:15s} train loss {run.train_loss:.3f}  test accuracy {run.test_acc:.3f}  "
          f"({run.seconds:.1f} s)")
