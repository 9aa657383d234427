"""DeepNorm: a Post-LN Transformer encoder with an up-weighted residual (Wang et al., 2022).

A 4-block Post-LN encoder (width 32, 4 heads, feed-forward 64) on a synthetic sequence task: for
every token of a random sequence of 12 tokens from a vocabulary of 8, say how often it occurs
in the sequence (once, twice, three times or more): attention has to count. With DeepNorm:

- every residual merge is `DeepNormResidual(alpha)`, alpha·x + f(x), followed by the block's
  `LayerNormalization`: x <- LN(alpha·x + f(x)), alpha = (2N)^(1/4) for N encoder blocks;
- the feed-forward kernels are built with `DeepNormInit(beta)`, Xavier normal with gain
  beta = (8N)^(-1/4);
- `model.meta_initialize(method="deepnorm")` then draws the attention projections (a
  MultiHeadAttention takes one initializer for all four): query and key with gain 1, value and
  output with gain beta (the feed-forward kernels are drawn again from the same distribution),
  and checks that every block's residual carries the alpha the model needs.

It trains with Adam 1e-3 and no warmup and prints the loss after the first and the last step and
the accuracy on fresh sequences (how DeepNorm compares with Keras's defaults, T-Fixup and the
learned methods over seeds: docs/benchmarks.md, the Transformer regime).

Run:  python examples/deepnorm.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os

import keras
import numpy as np
from keras import layers as L

from keras_metainit import DeepNormInit, DeepNormResidual
from keras_metainit.transformers import deepnorm_constants

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
N, D, HEADS, FF, VOCAB, SEQ = 4, 32, 4, 64, 8, 12
STEPS, BATCH = (10, 32) if QUICK else (100, 32)
ALPHA, BETA = deepnorm_constants(encoder_layers=N)["encoder"]


def sequences(n, seed):
    """Random token sequences; the label of a token: how often it occurs, 0 (once) to 2 (3+)."""
    x = np.random.default_rng(seed).integers(0, VOCAB, (n, SEQ))
    counts = (x[:, :, None] == x[:, None, :]).sum(-1)
    return x, np.minimum(counts, 3) - 1


def encoder():
    """N Post-LN blocks: LN(alpha·x + attention(x)), then LN(alpha·x + ffn(x))."""
    tokens = keras.Input((SEQ,), dtype="int32")
    x = L.Embedding(VOCAB, D)(tokens)
    for _ in range(N):
        a = L.MultiHeadAttention(HEADS, D // HEADS)(x, x)
        x = L.LayerNormalization()(DeepNormResidual(ALPHA)([x, a]))
        f = L.Dense(FF, activation="relu", kernel_initializer=DeepNormInit(BETA))(x)
        f = L.Dense(D, kernel_initializer=DeepNormInit(BETA))(f)
        x = L.LayerNormalization()(DeepNormResidual(ALPHA)([x, f]))
    return keras.Model(tokens, L.Dense(3)(x))


keras.utils.set_random_seed(0)
x_train, y_train = sequences(STEPS * BATCH, seed=1)
x_test, y_test = sequences(512, seed=2)
print(f"DeepNorm for N = {N}: alpha = {ALPHA:.3f}, beta = {BETA:.3f}")

model = encoder()
report = model.meta_initialize(method="deepnorm", verbose=0)  # the attention projections
print("\n".join(f"  {note}" for note in report.notes))
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
losses = [float(model.train_on_batch(x_train[i:i + BATCH], y_train[i:i + BATCH]))
          for i in range(0, STEPS * BATCH, BATCH)]
accuracy = float(np.mean(np.argmax(keras.ops.convert_to_numpy(model(x_test)), -1) == y_test))
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} after {STEPS} steps of Adam 1e-3 without "
      f"warmup; accuracy on fresh sequences {accuracy:.3f}")
