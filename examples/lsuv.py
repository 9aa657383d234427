"""LSUV: layer-sequential unit-variance initialization of a deep plain MLP (Mishkin & Matas, 2016).

A 20-layer, width-128 plain ReLU MLP is built with Keras's default initializer
(`glorot_uniform`, which halves the signal's variance at every ReLU layer). Then
`model.meta_initialize((x, y), method="lsuv")` goes through the layers in order: each kernel is
set orthonormal, and rescaled on one batch of real data until the variance of the layer's output
before its activation is 1 (within `tol`). It needs no gradients, only forward passes.
The script prints the per-layer rows of the report (variance before -> after, iterations) and the
test accuracy after 2 epochs of SGD (0.01, momentum 0.9, batch 128) for the LSUV net, the Keras
default and He-normal.

Then the same call on a subclassed CNN (a residual block inside a layer, depthwise and separable
convolutions, a custom layer taught with `layerwise.register_layer`): every layer's input is read
where the model calls it, so every kernel is set.

Run:  python examples/lsuv.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os

import keras

import keras_metainit  # noqa: F401  (adds model.meta_initialize to every keras.Model)
from keras_metainit import layerwise
from keras_metainit.experiments import data, models, training
from keras_metainit.methods import LSUV

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH, EPOCHS, N_TRAIN = (4, 1, 1024) if QUICK else (20, 2, 6000)

# the bundled Fashion-MNIST subset, standardized with the training statistics
(x_train, y_train), (x_test, y_test), _ = data.fashion_mnist("small", train_size=N_TRAIN)

# DEPTH ReLU Dense layers of 128 units and 10 logits (the harness's plain MLP), Keras's default
model = models.mlp(DEPTH, 128, kernel_initializer="glorot_uniform", seed=0)
# "lsuv" would do too; the object shows the options (the paper's defaults).
report = model.meta_initialize((x_train, y_train), method=LSUV(tol=0.1, max_iter=10),
                               batch_size=512, seed=0, verbose=0)
print(f"LSUV on {report.data}: {len(report.layers)} layers in {report.wall_time:.2f} s")
print("  layer      status  var before -> after  iterations")
for row in report.layers:
    print(f"  {row['name']:9s}  {row['status']:6s}  {row['var_before']:10.3g} -> "
          f"{row['var_after']:5.3f}  {row['iterations']:10d}")

# the same budget for each: SGD 0.01, momentum 0.9, batch 128 (the harness's training loop)
accuracy = training.accuracies(
    {"LSUV": model,
     "Keras default": models.mlp(DEPTH, 128, kernel_initializer="glorot_uniform", seed=0),
     "He": models.mlp(DEPTH, 128, seed=0)},
    (x_train, y_train), (x_test, y_test), training.Budget("sgd", 0.01, epochs=EPOCHS))


# ---- any model: subclassed, a block, depthwise/separable convolutions, a custom layer --------
class Project(keras.layers.Layer):
    """A custom layer with a kernel: y = x @ w (LSUV learns its maths from register_layer)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, shape):
        self.w = self.add_weight((shape[-1], self.units))

    def call(self, x):
        return x @ self.w


layerwise.register_layer(Project, lambda layer: layerwise.LayerView(
    [layerwise.MatmulStage(layer.w)]))


class Block(keras.layers.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.depthwise = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")
        self.pointwise = keras.layers.Conv2D(filters, 1)

    def call(self, x):
        return x + self.pointwise(self.depthwise(x))


class SmallCNN(keras.Model):
    def __init__(self):
        super().__init__()
        self.stem = keras.layers.Conv2D(16, 3, strides=2, activation="relu")
        self.block = Block(16)
        self.separable = keras.layers.SeparableConv2D(32, 3, strides=2, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.project = Project(32)
        self.logits = keras.layers.Dense(10)

    def call(self, x):
        h = self.separable(self.block(self.stem(x)))
        return self.logits(keras.activations.relu(self.project(self.pool(h))))


keras.utils.set_random_seed(0)
cnn = SmallCNN()
images = x_train.reshape(-1, 28, 28, 1)
cnn(images[:1])
cnn_report = cnn.meta_initialize((images, y_train), method="lsuv", batch_size=256, seed=0,
                                 verbose=0)
print(f"\nLSUV on a subclassed CNN: {len(cnn_report.layers)} layers in "
      f"{cnn_report.wall_time:.2f} s")
for row in cnn_report.layers:
    print(f"  {row['name']:18s} {row['kind']:16s} {row['status']:6s} "
          f"{row['var_before']:10.3g} -> {row['var_after']:5.3f}")
