"""Fixup: a residual network trained without normalization (Zhang, Dauphin & Ma, 2019).

A small ResNet without BatchNorm: a stride-2 stem convolution, then L residual blocks of two 3x3
convolutions (16 channels), global average pooling and a Dense classifier. With Fixup:

- the first convolution of every branch gets `FixupInit(num_branches=L, branch_depth=2)`, He
  normal (fan_out) scaled by L ** (-1 / (2 * 2 - 2)) = 1 / sqrt(L);
- the last convolution of every branch and the classifier start at zero (Keras's "zeros");
- every branch gets scalar biases (`layers.FixupBias`) before each convolution and activation,
  and a scalar multiplier (`layers.FixupScale`), so that the zero layers can still learn.

The same network with He-normal kernels everywhere (no zero layers) is the baseline. It prints
the RMS of the residual stream after the last block and of the logits at initialization, then
trains both for one epoch (SGD 0.1 as in the paper, momentum 0.9, batch 64) on the bundled
Fashion-MNIST subset and prints the training losses and test accuracies.

Run:  python examples/fixup.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os
import time

import keras
import numpy as np

from keras_metainit import FixupInit
from keras_metainit.datasets import load_fashion_mnist
from keras_metainit.layers import FixupBias, FixupScale

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
BLOCKS, N_TRAIN = (2, 256) if QUICK else (8, 6000)

x_train, y_train = load_fashion_mnist("train")  # (n, 28, 28, 1)
x_test, y_test = load_fashion_mnist("test")
x_train, y_train = x_train[:N_TRAIN], y_train[:N_TRAIN]
mean, std = x_train.mean(), x_train.std()  # standardize with the training statistics
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std


def conv(init):
    return keras.layers.Conv2D(16, 3, padding="same", use_bias=False, kernel_initializer=init)


def fixup_block(h, init):
    f = FixupBias()(h)
    f = conv(init)(f)
    f = FixupBias()(f)
    f = keras.layers.ReLU()(f)
    f = FixupBias()(f)
    f = conv("zeros")(f)  # the last layer of the branch starts at zero
    f = FixupScale()(f)
    f = FixupBias()(f)
    return keras.layers.ReLU()(keras.layers.Add()([h, f]))


def plain_block(h):
    f = keras.layers.ReLU()(conv("he_normal")(h))
    f = conv("he_normal")(f)
    return keras.layers.ReLU()(keras.layers.Add()([h, f]))


def resnet(fixup):
    """Stem, BLOCKS residual blocks, pooling, classifier; also returns (stream, logits)."""
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                            kernel_initializer="he_normal")(inputs)
    init = FixupInit(num_branches=BLOCKS, branch_depth=2)  # unseeded: fresh kernels per call
    for _ in range(BLOCKS):
        h = fixup_block(h, init) if fixup else plain_block(h)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    if fixup:
        pooled = FixupBias()(pooled)
    logits = keras.layers.Dense(10, kernel_initializer="zeros" if fixup else "he_normal")(pooled)
    return keras.Model(inputs, logits), keras.Model(inputs, [h, logits])


def rms(t):
    return float(np.sqrt(np.mean(np.square(keras.ops.convert_to_numpy(t)))))


def train(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),  # the Fixup paper's rate
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return history.history["loss"][-1], accuracy, time.perf_counter() - start


keras.utils.set_random_seed(0)
print(f"ResNet without normalization, {BLOCKS} blocks; one epoch on {len(x_train)} images")
print(f"  FixupInit scale for L={BLOCKS}, m=2: {FixupInit(BLOCKS, 2).scale:.4f}")
results = {}
for name, fixup in (("Fixup", True), ("He, no Fixup", False)):
    model, probe = resnet(fixup)
    stream, logits = probe(x_train[:256])
    loss, accuracy, seconds = train(model)
    results[name] = {"stream_rms": rms(stream), "logits_rms": rms(logits), "accuracy": accuracy}
    print(f"  {name:13s} at init: stream RMS {rms(stream):.3g}, logits RMS {rms(logits):.3g}; "
          f"after training: loss {loss:.3f}, test accuracy {accuracy:.3f}  ({seconds:.1f} s)")
