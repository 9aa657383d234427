"""Every network the experiments train, built once: plain MLP and CNNs, residual nets without
normalization (optionally Fixup), and a Post-LN / Pre-LN Transformer encoder.

Each builder takes ``seed`` (``keras.utils.set_random_seed(seed)`` before any weight is drawn, so
the same seed gives the same weights) and the kernel initializer of every weight layer
(Keras's default is ``"glorot_uniform"``). No builder adds a normalization layer unless asked
(``norm="batch"`` for the BatchNorm reference rows; the Transformers' LayerNormalization, which
is part of the architecture). Biases start at zero.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import keras

from keras_metainit.validation import check, positive_int

__all__ = [
    "mlp", "vgg", "cnn", "residual_mlp", "residual_cnn", "transformer", "PositionEmbedding",
    "scale_kernels", "by_name", "BN_MOMENTUM",
]

#: BatchNorm's moving-statistics momentum in the reference rows. Keras's 0.99 averages over ~100
#: steps, longer than some of these budgets: evaluated with statistics that had not settled, a
#: BN net with the lowest training loss scored near chance. 0.9 settles in ~10 steps.
BN_MOMENTUM = 0.9

_NORMS = (None, "batch")


def _seeded(seed: Optional[int]) -> None:
    if seed is not None:
        keras.utils.set_random_seed(seed)


def _weight_layer(layer_cls, units, activation, kernel_initializer, norm, **kwargs):
    """A weight layer with its activation, or (``norm="batch"``) layer, BatchNorm, activation."""
    check(norm in _NORMS, "norm", norm, "None or 'batch'")
    if norm is None:
        return [layer_cls(units, activation=activation, kernel_initializer=kernel_initializer,
                          **kwargs)]
    return [layer_cls(units, use_bias=False, kernel_initializer=kernel_initializer, **kwargs),
            keras.layers.BatchNormalization(momentum=BN_MOMENTUM),
            keras.layers.Activation(activation)]


def mlp(depth: int, width: int, *, activation: str = "relu",
        kernel_initializer: Any = "he_normal", output_initializer: Any = None,
        norm: Optional[str] = None, dense: Any = None,
        input_shape: Sequence[int] = (28, 28, 1), classes: int = 10,
        seed: Optional[int] = None) -> keras.Model:
    """A plain MLP: ``depth`` hidden layers of ``width`` units, then ``classes`` logits.

    Args:
        depth: hidden layers (>= 1).
        width: units per hidden layer.
        activation: every hidden layer's activation (``"relu"``, ``"gelu"``, ``"tanh"``,
            ``"silu"`` ...).
        kernel_initializer: every kernel's initializer (a name or an unseeded instance: one
            instance shared by the layers draws fresh values per layer).
        output_initializer: the classifier's kernel initializer (default ``kernel_initializer``).
        norm: ``None`` (plain) or ``"batch"`` (BatchNorm before every activation: a reference).
        dense: the weight layer's class (default ``keras.layers.Dense``; e.g.
            :class:`keras_metainit.layers.WNDense`).
        input_shape: the input's shape; inputs of more than one axis are flattened first.
        classes: number of logits.
        seed: seed of the weights.

    Returns:
        An uncompiled ``keras.Sequential`` that outputs logits.

    Examples:
        >>> model = mlp(20, 64, activation="gelu", seed=0)
        >>> model.output_shape
        (None, 10)
    """
    positive_int("depth", depth)
    _seeded(seed)
    dense = dense or keras.layers.Dense
    layers = [keras.Input(tuple(input_shape))]
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten())
    for _ in range(depth):
        layers += _weight_layer(dense, width, activation, kernel_initializer, norm)
    layers.append(dense(classes, kernel_initializer=output_initializer or kernel_initializer))
    return keras.Sequential(layers, name=f"mlp_{depth}x{width}_{activation}")


def vgg(widths: Sequence[int], *, activation: str = "relu", kernel_initializer: Any = "he_normal",
        norm: Optional[str] = None, input_shape: Sequence[int] = (28, 28, 1),
        classes: int = 10, seed: Optional[int] = None) -> keras.Model:
    """A VGG-like CNN: 3×3 convolutions of ``widths`` in pairs, 2×2 max pooling after each pair
    but the last, global average pooling and a Dense classifier.

    Args:
        widths: filters of each convolution (VGG-like: 8 to 11 of them).
        activation: as in :func:`mlp`.
        kernel_initializer: as in :func:`mlp`.
        norm: as in :func:`mlp`.
        input_shape: as in :func:`mlp`.
        classes: as in :func:`mlp`.
        seed: as in :func:`mlp`.

    Returns:
        An uncompiled ``keras.Sequential`` that outputs logits.

    Examples:
        >>> model = vgg((8, 8, 16, 16, 32, 32, 32, 32), seed=0)
    """
    _seeded(seed)
    layers = [keras.Input(tuple(input_shape))]
    for i, w in enumerate(widths):
        layers += _weight_layer(keras.layers.Conv2D, w, activation, kernel_initializer, norm,
                                kernel_size=3, padding="same")
        if i % 2 == 1 and i < len(widths) - 1:
            layers.append(keras.layers.MaxPooling2D())
    layers += [keras.layers.GlobalAveragePooling2D(),
               keras.layers.Dense(classes, kernel_initializer=kernel_initializer)]
    return keras.Sequential(layers, name=f"vgg_{len(widths)}")


def cnn(depth: int, width: int, *, kernel_initializer: Any = "he_normal",
        input_shape: Sequence[int] = (28, 28, 1), classes: int = 10,
        seed: Optional[int] = None) -> keras.Model:
    """A plain ReLU CNN: two stride-2 3×3 convolutions, then ``depth - 2`` more, global average
    pooling and a Dense classifier (the "4x32 CNN" of the step-cost benchmarks).

    Examples:
        >>> model = cnn(4, 32, seed=0)
    """
    check(depth >= 2, "depth", depth, "an integer >= 2")
    _seeded(seed)

    def conv(strides=1):
        return keras.layers.Conv2D(width, 3, strides=strides, padding="same", activation="relu",
                                   kernel_initializer=kernel_initializer)

    layers = [keras.Input(tuple(input_shape)), conv(2), conv(2)]
    layers += [conv() for _ in range(depth - 2)]
    layers += [keras.layers.GlobalAveragePooling2D(),
               keras.layers.Dense(classes, kernel_initializer=kernel_initializer)]
    return keras.Sequential(layers, name=f"cnn_{depth}x{width}")


def _residual_block(h, layer, blocks: int, activation: str, kernel_initializer, fixup: bool):
    """``act(h + F(h))`` with ``F = layer(act(layer(h)))``; Fixup (Zhang et al. 2019): the first
    layer :class:`~keras_metainit.FixupInit`, the last one zeros, scalar biases before each layer
    and activation and a scalar multiplier (:mod:`keras_metainit.layers`)."""
    from keras_metainit.initializers import FixupInit
    from keras_metainit.layers import FixupBias, FixupScale

    if not fixup:
        f = layer(kernel_initializer, activation)(h)
        f = layer(kernel_initializer, None)(f)
    else:
        f = FixupBias()(h)
        f = layer(FixupInit(num_branches=blocks, branch_depth=2), None)(f)
        f = keras.layers.Activation(activation)(FixupBias()(f))
        f = layer("zeros", None)(FixupBias()(f))
        f = FixupBias()(FixupScale()(f))
    return keras.layers.Activation(activation)(keras.layers.Add()([h, f]))


def _residual_head(h, classes, kernel_initializer, fixup, pool=None):
    from keras_metainit.layers import FixupBias

    if pool is not None:
        h = pool(h)
    if fixup:
        h = FixupBias()(h)
    init = "zeros" if fixup else kernel_initializer
    return keras.layers.Dense(classes, kernel_initializer=init)(h)


def residual_mlp(blocks: int, width: int, *, activation: str = "relu",
                 kernel_initializer: Any = "he_normal", fixup: bool = False,
                 input_shape: Sequence[int] = (28, 28, 1), classes: int = 10,
                 seed: Optional[int] = None) -> keras.Model:
    """A residual MLP without normalization: a Dense stem of ``width``, ``blocks`` blocks
    ``act(h + Dense(act(Dense(h))))``, a Dense classifier.

    Args:
        blocks: residual blocks (>= 1).
        width: units of the stem and of every block's layers.
        fixup: Fixup's initialization and scalar layers (then the classifier starts at zero and
            ``kernel_initializer`` is the stem's only).
        activation: as in :func:`mlp`.
        kernel_initializer: as in :func:`mlp`.
        input_shape: as in :func:`mlp`.
        classes: as in :func:`mlp`.
        seed: as in :func:`mlp`.

    Returns:
        An uncompiled functional ``keras.Model`` that outputs logits.

    Examples:
        >>> model = residual_mlp(20, 64, fixup=True, seed=0)

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization",
        ICLR 2019.
    """
    positive_int("blocks", blocks)
    _seeded(seed)
    inputs = keras.Input(tuple(input_shape))
    h = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    h = keras.layers.Dense(width, activation=activation, kernel_initializer=kernel_initializer)(h)

    def layer(init, act):
        return keras.layers.Dense(width, activation=act, kernel_initializer=init,
                                  use_bias=not fixup)

    for _ in range(blocks):
        h = _residual_block(h, layer, blocks, activation, kernel_initializer, fixup)
    logits = _residual_head(h, classes, kernel_initializer, fixup)
    return keras.Model(inputs, logits, name=f"resmlp_{blocks}x{width}" + "_fixup" * fixup)


def residual_cnn(blocks: int, width: int = 16, *, activation: str = "relu",
                 kernel_initializer: Any = "he_normal", fixup: bool = False,
                 input_shape: Sequence[int] = (28, 28, 1), classes: int = 10,
                 seed: Optional[int] = None) -> keras.Model:
    """A ResNet without normalization: a stride-2 3×3 stem convolution, ``blocks`` blocks of two
    3×3 convolutions of ``width`` filters, global average pooling, a Dense classifier.

    Arguments as in :func:`residual_mlp`.

    Examples:
        >>> model = residual_cnn(8, 16, fixup=True, seed=0)
    """
    positive_int("blocks", blocks)
    _seeded(seed)
    inputs = keras.Input(tuple(input_shape))
    h = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation=activation,
                            kernel_initializer=kernel_initializer)(inputs)

    def layer(init, act):
        return keras.layers.Conv2D(width, 3, padding="same", activation=act, use_bias=False,
                                   kernel_initializer=init)

    for _ in range(blocks):
        h = _residual_block(h, layer, blocks, activation, kernel_initializer, fixup)
    logits = _residual_head(h, classes, kernel_initializer, fixup,
                            keras.layers.GlobalAveragePooling2D())
    return keras.Model(inputs, logits, name=f"rescnn_{blocks}x{width}" + "_fixup" * fixup)


@keras.saving.register_keras_serializable(package="keras_metainit")
class PositionEmbedding(keras.layers.Layer):
    """A learned position embedding added to a sequence of vectors: ``x + P[:length]``.

    Args:
        initializer: the positions' initializer (default ``RandomNormal(stddev=0.02)``).
        **kwargs: base layer arguments.

    Returns:
        Called on ``(batch, length, dim)``, the same shape.

    Examples:
        >>> tokens = keras.Input((10,), dtype="int32")
        >>> x = PositionEmbedding()(keras.layers.Embedding(16, 32)(tokens))
        >>> tuple(x.shape)
        (None, 10, 32)
    """

    def __init__(self, initializer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.RandomNormal(stddev=0.02))

    def build(self, input_shape):
        self.positions = self.add_weight(name="positions", shape=tuple(input_shape[1:]),
                                         initializer=self.initializer)

    def call(self, inputs):
        return inputs + self.positions

    def get_config(self) -> dict:
        return {**super().get_config(),
                "initializer": keras.initializers.serialize(self.initializer)}


def transformer(layers: int = 6, dim: int = 64, *, heads: int = 4, ffn: int = 128,
                vocab: int = 16, length: int = 16, post_ln: bool = True,
                ffn_activation: str = "relu", kernel_initializer: Any = "glorot_uniform",
                seed: Optional[int] = None) -> keras.Model:
    """A Transformer encoder over token sequences, one logit vector per position.

    Token ``Embedding`` (Keras's default initializer) plus learned positions
    (:class:`PositionEmbedding`), ``layers`` blocks of ``MultiHeadAttention`` and a two-layer FFN,
    a Dense over the vocabulary. Post-LN (Vaswani et al.): ``x = LN(x + MHA(x))``,
    ``x = LN(x + FFN(x))``. Pre-LN: ``x = x + MHA(LN(x))``, ``x = x + FFN(LN(x))`` and a last LN.

    Args:
        layers: encoder blocks.
        dim: model width (``heads`` must divide it).
        heads: attention heads.
        ffn: hidden units of the feed-forward layers.
        vocab: vocabulary size (inputs and outputs).
        length: sequence length.
        post_ln: Post-LN (True) or Pre-LN (False).
        ffn_activation: the FFN's activation.
        kernel_initializer: the kernels of attention, FFN and output layers.
        seed: seed of the weights.

    Returns:
        An uncompiled ``keras.Model`` from ``(batch, length)`` int tokens to
        ``(batch, length, vocab)`` logits.

    Examples:
        >>> model = transformer(6, 64, post_ln=True, seed=0)
        >>> model.output_shape
        (None, 16, 16)

    Reference:
        Vaswani et al., "Attention is all you need", 2017; Xiong et al., "On Layer Normalization
        in the Transformer Architecture", 2020 (Pre-LN).
    """
    positive_int("layers", layers)
    check(dim % heads == 0, "dim", dim, f"a multiple of heads={heads}")
    _seeded(seed)
    tokens = keras.Input((length,), dtype="int32")
    x = PositionEmbedding()(keras.layers.Embedding(vocab, dim)(tokens))

    def ln():
        return keras.layers.LayerNormalization(epsilon=1e-5)

    def attention(h):
        return keras.layers.MultiHeadAttention(
            heads, dim // heads, kernel_initializer=kernel_initializer)(h, h)

    def feed_forward(h):
        h = keras.layers.Dense(ffn, activation=ffn_activation,
                               kernel_initializer=kernel_initializer)(h)
        return keras.layers.Dense(dim, kernel_initializer=kernel_initializer)(h)

    for _ in range(layers):
        for sublayer in (attention, feed_forward):
            if post_ln:
                x = ln()(keras.layers.Add()([x, sublayer(x)]))
            else:
                x = keras.layers.Add()([x, sublayer(ln()(x))])
    if not post_ln:
        x = ln()(x)
    logits = keras.layers.Dense(vocab, kernel_initializer=kernel_initializer)(x)
    return keras.Model(tokens, logits,
                       name=f"{'post' if post_ln else 'pre'}_ln_transformer_{layers}x{dim}")


def scale_kernels(model: keras.Model, factor: float) -> keras.Model:
    """A bad start: every weight tensor of two or more axes multiplied by ``factor``, in place.

    Returns:
        ``model``.
    """
    for v in model.trainable_variables:
        if len(v.shape) >= 2:
            v.assign(v * factor)
    return model


def by_name(name: str, seed: Optional[int] = None,
            kernel_initializer: Any = "he_normal") -> keras.Model:
    """``"mlpDxW"`` → :func:`mlp` ``(D, W)``, ``"cnnDxW"`` → :func:`cnn` ``(D, W)`` (the
    benchmarks' ``--arch`` names, e.g. ``"mlp20x128"``, ``"cnn8x16"``).

    Raises:
        ValueError: for another name.
    """
    kind, dims = name[:3], name[3:]
    check(kind in ("mlp", "cnn") and "x" in dims, "name", name,
          "like 'mlp20x128' or 'cnn8x16'")
    depth, width = (int(v) for v in dims.split("x"))
    build = mlp if kind == "mlp" else cnn
    return build(depth, width, kernel_initializer=kernel_initializer, seed=seed)
