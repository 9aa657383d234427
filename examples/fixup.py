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

import keras
import numpy as np

from keras_metainit import FixupInit
from keras_metainit.experiments import data, models, training

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
BLOCKS, N_TRAIN = (2, 256) if QUICK else (8, 6000)

# the bundled Fashion-MNIST subset, (n, 28, 28, 1), standardized with the training statistics
(x_train, y_train), (x_test, y_test), _ = data.fashion_mnist("small", train_size=N_TRAIN)


def resnet(fixup):
    """The harness's ResNet without normalization (`models.residual_cnn`: stem, BLOCKS blocks
    of two 16-filter convolutions, pooling, classifier; with `fixup=True`, the blocks above),
    and a probe of (residual stream after the last block, logits)."""
    model = models.residual_cnn(BLOCKS, 16, fixup=fixup, seed=0)
    pool = next(layer for layer in model.layers
                if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    return model, keras.Model(model.inputs, [pool.input, model.outputs[0]])


def rms(t):
    return float(np.sqrt(np.mean(np.square(keras.ops.convert_to_numpy(t)))))


def train(model):
    """One epoch of SGD 0.1 (the Fixup paper's rate), momentum 0.9, batch 64."""
    budget = training.Budget("sgd", 0.1, batch_size=64, epochs=1)
    run = training.train(model, (x_train, y_train), (x_test, y_test), budget)
    return run.train_loss, run.test_acc, run.seconds


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
