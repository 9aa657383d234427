"""A small Transformer, written by hand, for the tests of keras_metainit.transformers."""
from typing import Callable, Optional

import keras
import pytest
from keras import layers as L


def transformer(encoder_layers: int = 2, decoder_layers: int = 0, *, d: int = 16, ff: int = 32,
                heads: int = 2, vocab: int = 50, seq: int = 8, norm: str = "post",
                residual: Optional[Callable[[str], keras.layers.Layer]] = None) -> keras.Model:
    """An encoder (and a decoder with cross-attention when ``decoder_layers``), each block an
    attention and a Dense feed-forward sub-layer around ``Add`` merges (``residual(role)`` makes
    the merge layer instead), LayerNormalization after (``"post"``) or before (``"pre"``) each
    branch or nowhere (``"none"``); token embeddings in, a Dense head out."""
    def sublayer(x, branch, role):
        h = L.LayerNormalization()(x) if norm == "pre" else x
        x = (residual(role) if residual else L.Add())([x, branch(h)])
        return L.LayerNormalization()(x) if norm == "post" else x

    def ffn(h):
        return L.Dense(d)(L.Dense(ff, activation="relu")(h))

    src = keras.Input((seq,), dtype="int32")
    x = L.Embedding(vocab, d, name="src_embedding")(src)
    for _ in range(encoder_layers):
        x = sublayer(x, lambda h: L.MultiHeadAttention(heads, d // heads)(h, h), "encoder")
        x = sublayer(x, ffn, "encoder")
    if not decoder_layers:
        return keras.Model(src, L.Dense(vocab, name="head")(x))
    tgt = keras.Input((seq,), dtype="int32")
    y = L.Embedding(vocab, d, name="tgt_embedding")(tgt)
    for _ in range(decoder_layers):
        y = sublayer(y, lambda h: L.MultiHeadAttention(heads, d // heads)(
            h, h, use_causal_mask=True), "decoder")
        y = sublayer(y, lambda h, memory=x: L.MultiHeadAttention(heads, d // heads)(h, memory),
                     "decoder")
        y = sublayer(y, ffn, "decoder")
    return keras.Model([src, tgt], L.Dense(vocab, name="head")(y))


@pytest.fixture
def build():
    """The builder :func:`transformer`."""
    return transformer


def kernel_matches(values, dist: str, scale: float, p_min: float = 1e-4) -> float:
    """The Kolmogorov–Smirnov p-value of ``values`` against ``dist`` (``"uniform"`` on
    ``[-scale, scale]``, ``"normal"`` with standard deviation ``scale``); asserts it is above
    ``p_min``."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values, np.float64).ravel() / scale
    p = (stats.kstest(v, "uniform", args=(-1.0, 2.0)) if dist == "uniform"
         else stats.kstest(v, "norm")).pvalue
    assert p > p_min, f"{v.size} values are not {dist} at scale {scale:.5g}: KS p = {p:.3g}"
    return p


@pytest.fixture
def ks():
    """:func:`kernel_matches`."""
    return kernel_matches
