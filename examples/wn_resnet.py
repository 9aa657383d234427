"""Weight-norm initialization of a small ResNet (Arpit, Campos & Bengio, 2019).

A ResNet of weight-normalized convolutions (`keras_metainit.layers.WNConv2D`): a stem, then two
stages of B residual blocks ``h <- h + conv2(ReLU(conv1(h)))`` with no ReLU after the addition,
a 1x1 projection shortcut where the second stage halves the resolution, global average pooling
and a Dense classifier (no normalization layers). `WNResNetInit` gives every convolution the gain
of its role: ``"stem"`` and ``"shortcut"`` gamma=1, ``"branch_in"`` gamma=2 (before the ReLU),
``"branch_out"`` gamma=1/B (each block adds about 1/B of the stream's variance, so a stage
multiplies it by about (1 + 1/B)^B < e, whatever the number of blocks).

It prints the RMS of the residual stream after every block at initialization, for WNResNetInit
and for He-normal kernels in the same layers (which let it grow block after block), then trains
both for one epoch (Adam 1e-3 behind a QuadraticWarmup) on the bundled Fashion-MNIST subset and
prints the test accuracies.

Run:  python examples/wn_resnet.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os

import keras
import numpy as np

from keras_metainit import WNResNetInit
from keras_metainit.experiments import data, training
from keras_metainit.layers import WNConv2D

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
BLOCKS, N_TRAIN = (1, 256) if QUICK else (4, 6000)

# the bundled Fashion-MNIST subset, (n, 28, 28, 1), standardized with the training statistics
(x_train, y_train), (x_test, y_test), _ = data.fashion_mnist("small", train_size=N_TRAIN)


def init_for(role, he):
    """The kernel initializer of a convolution with this role (He-normal for the comparison)."""
    return "he_normal" if he else WNResNetInit(role, blocks_per_stage=BLOCKS)


def resnet(he=False):
    """Stem, two stages of BLOCKS residual blocks (16 then 32 channels), pooling, classifier.

    Returns the model and a probe model that outputs the residual stream after every block.
    """
    inputs = keras.Input((28, 28, 1))
    h = WNConv2D(16, 3, strides=2, padding="same", kernel_initializer=init_for("stem", he))(inputs)
    stream = []
    for stage, filters in enumerate((16, 32)):
        for block in range(BLOCKS):
            strides = 2 if stage > 0 and block == 0 else 1
            f = WNConv2D(filters, 3, strides=strides, padding="same", activation="relu",
                         kernel_initializer=init_for("branch_in", he))(h)
            f = WNConv2D(filters, 3, padding="same",
                         kernel_initializer=init_for("branch_out", he))(f)
            if strides > 1 or h.shape[-1] != filters:  # 1x1 projection shortcut
                h = WNConv2D(filters, 1, strides=strides,
                             kernel_initializer=init_for("shortcut", he))(h)
            h = keras.layers.Add()([h, f])  # no ReLU after the addition
            stream.append(h)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    logits = keras.layers.Dense(10)(pooled)  # the classifier keeps a standard init
    return keras.Model(inputs, logits), keras.Model(inputs, stream)


def stream_rms(probe):
    return [float(np.sqrt(np.mean(np.square(keras.ops.convert_to_numpy(h)))))
            for h in probe(x_train[:256])]


def train(model):
    """One epoch of Adam 1e-3, batch 64, behind a half-epoch quadratic warmup (the shape of
    `keras_metainit.QuadraticWarmup`)."""
    steps = -(-len(x_train) // 64)
    budget = training.Budget("adam", 1e-3, batch_size=64, epochs=1,
                             warmup=max(steps // 2, 1), warmup_power=2.0)
    run = training.train(model, (x_train, y_train), (x_test, y_test), budget)
    return run.test_acc, run.seconds


keras.utils.set_random_seed(0)
results = {}
print(f"ResNet, 2 stages x {BLOCKS} blocks of WNConv2D, one epoch on {len(x_train)} images")
for name, he in (("WNResNetInit", False), ("he_normal", True)):
    model, probe = resnet(he)
    rms = stream_rms(probe)
    accuracy, seconds = train(model)
    results[name] = {"stream_rms": rms, "accuracy": accuracy}
    print(f"  {name:13s} residual-stream RMS per block at init: "
          + " ".join(f"{r:.3g}" for r in rms))
    print(f"  {'':13s} test accuracy after one epoch {accuracy:.3f}  ({seconds:.1f} s)")
