"""DeepNorm (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers").

A Post-LN block with an up-weighted skip, ``x ← LN(α·x + f(x))``, and the kernels of the value
and output projections and of the feed-forward branch drawn Xavier normal with gain β (query and
key at gain 1). The pieces a Keras user needs:

- :func:`deepnorm_constants`: α and β for an encoder-only, decoder-only or encoder–decoder model;
- :class:`DeepNormResidual`: the merge ``α·x + f(x)`` (a ``keras.layers.Add``), to follow with the
  model's own ``LayerNormalization``;
- :class:`DeepNormInit`: Xavier normal with gain β, a Keras initializer;
- :class:`DeepNorm`: the method (``model.meta_initialize(method="deepnorm")``) that draws every
  projection of every block found by :func:`~keras_metainit.transformers.find_blocks` with its
  gain, and says where a block's residual does not carry the α the model needs.

The authors' code, microsoft/torchscale (commit 4d1e0e8), ``torchscale/architecture/encoder.py``
lines 78-89 (α) and 235-252 (β), ``decoder.py`` lines 89-95 and 286-299, agrees with the paper's
formulas except for the encoder's β of an encoder–decoder model (see :func:`deepnorm_constants`);
docs/methods/deepnorm.md lists every difference.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
from keras import ops

from keras_metainit.initializers import (SeedLike, _compute_fans, _FreshSeedInitializer,
                                         _work_dtype)
from keras_metainit.layerwise.activations import warn
from keras_metainit.methods.base import AnalyticMethod
from keras_metainit.transformers.blocks import BlockScan
from keras_metainit.transformers.rules import (KernelRule, apply_rules, blocks_of, check_role,
                                               scan_notes)
from keras_metainit.validation import check, is_int, is_real

__all__ = ["deepnorm_constants", "DeepNormInit", "DeepNormResidual", "DeepNorm", "SOURCES"]

#: where the encoder's β of an encoder–decoder model comes from (the only constant that differs)
SOURCES = ("paper", "torchscale")


def deepnorm_constants(encoder_layers: int = 0, decoder_layers: int = 0,
                       source: str = "paper") -> Dict[str, Tuple[float, float]]:
    """DeepNorm's residual scale α and initialization gain β, per stack.

    ========================  ==========================  =============================
    model                     α                           β
    ========================  ==========================  =============================
    encoder only (N layers)   (2N)^(1/4)                  (8N)^(-1/4)
    decoder only (M layers)   (2M)^(1/4)                  (8M)^(-1/4)
    encoder–decoder: encoder  0.81·(N⁴M)^(1/16)           0.87·(N⁴M)^(-1/16)
    encoder–decoder: decoder  (3M)^(1/4)                  (12M)^(-1/4)
    ========================  ==========================  =============================

    Args:
        encoder_layers: N, the encoder's blocks (0: no encoder).
        decoder_layers: M, the decoder's blocks (0: no decoder).
        source: ``"paper"`` (the table above) or ``"torchscale"``: the authors' code divides the
            encoder's weights of an encoder–decoder model by ``(N⁴M)^(1/16) / 1.15``
            (``encoder.py`` lines 236-242), that is β = 1.15·(N⁴M)^(-1/16), where the paper has
            0.87 = 1/1.15. Every other constant is the same in both.

    Returns:
        ``{"encoder": (α, β), "decoder": (α, β)}`` for the stacks the model has.

    Raises:
        ValueError: a negative count, no layers at all, or an unknown ``source``.

    Examples:
        >>> alpha, beta = deepnorm_constants(encoder_layers=6)["encoder"]
        >>> round(alpha, 4), round(beta, 4)
        (1.8612, 0.3799)
        >>> sorted(deepnorm_constants(encoder_layers=6, decoder_layers=6))  # both stacks
        ['decoder', 'encoder']

    Reference:
        Wang, Ma, Dong, Huang, Zhang & Wei, "DeepNet: Scaling Transformers to 1,000 Layers",
        2022, Figure 2 and Table 1; microsoft/torchscale.
    """
    for name, value in (("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers)):
        check(is_int(value) and value >= 0, name, value, "an integer >= 0")
    check(encoder_layers + decoder_layers > 0, "encoder_layers", encoder_layers,
          "positive when `decoder_layers` is 0")
    check(source in SOURCES, "source", source, f"one of {SOURCES}")
    n, m = int(encoder_layers), int(decoder_layers)
    if n and m:
        beta_e = (1.15 if source == "torchscale" else 0.87) * (n ** 4 * m) ** (-1 / 16)
        return {"encoder": (0.81 * (n ** 4 * m) ** (1 / 16), beta_e),
                "decoder": ((3 * m) ** 0.25, (12 * m) ** -0.25)}
    role, layers = ("encoder", n) if n else ("decoder", m)
    return {role: ((2 * layers) ** 0.25, (8 * layers) ** -0.25)}


@keras.saving.register_keras_serializable(package="keras_metainit")
class DeepNormInit(_FreshSeedInitializer):
    """Xavier (Glorot) normal with a gain: an untruncated normal of standard deviation
    ``gain · sqrt(2 / (fan_in + fan_out))`` (PyTorch's ``xavier_normal_``).

    DeepNorm draws the value and output projections and the feed-forward kernels with
    ``gain=β`` (:func:`deepnorm_constants`) and the query and key projections with ``gain=1``.
    The fans are Keras's (``VarianceScaling``'s: ``(in, out)`` for a ``Dense`` kernel). A
    ``MultiHeadAttention`` takes one initializer for all four of its projections and its kernels
    are 3-D, so set those with the :class:`DeepNorm` method on the built model instead.

    Args:
        gain: positive float, the β of the layer (1.0: plain Xavier normal).
        seed: ``None`` (fresh values on every call, reproducible after
            ``keras.utils.set_random_seed``), an ``int`` (the same values on every call) or a
            ``keras.random.SeedGenerator``, as for :class:`keras_metainit.WNInit`.

    Returns:
        Called as ``initializer(shape, dtype=None)``, a tensor of that shape and dtype.

    Raises:
        ValueError: a gain that is not a positive float, or a bad seed.

    Examples:
        >>> alpha, beta = deepnorm_constants(encoder_layers=6)["encoder"]
        >>> ffn = keras.layers.Dense(256, "relu", kernel_initializer=DeepNormInit(beta))
        >>> round(DeepNormInit(beta).stddev((64, 256)), 4)  # beta * sqrt(2 / (64 + 256))
        0.03

    Reference:
        Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022, Figure 2
        (``xavier_normal_(w, gain=β)``).
    """

    def __init__(self, gain: float = 1.0, seed: SeedLike = None):
        check(is_real(gain) and math.isfinite(gain) and gain > 0, "gain", gain,
              "a positive float")
        self.gain = float(gain)
        super().__init__(seed=seed)

    def stddev(self, shape: Sequence[int]) -> float:
        """``gain · sqrt(2 / (fan_in + fan_out))`` for a kernel of this shape."""
        fan_in, fan_out = _compute_fans(shape)
        return self.gain * math.sqrt(2.0 / max(1, fan_in + fan_out))

    def __call__(self, shape: Sequence[int], dtype=None):
        shape = tuple(int(d) for d in shape)
        values = keras.random.normal(shape, stddev=self.stddev(shape), seed=self._draw_seed(),
                                     dtype=_work_dtype(dtype))
        return ops.cast(values, keras.backend.standardize_dtype(dtype))

    def get_config(self) -> dict:
        return {"gain": self.gain, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_metainit")
class DeepNormResidual(keras.layers.Add):
    """DeepNorm's residual merge ``α·x + f(x)``: called on ``[x, f(x)]``, the skip first.

    Follow it with the block's ``LayerNormalization`` (Post-LN), as DeepNorm's
    ``x ← LN(α·x + f(x))``::

        a = keras.layers.MultiHeadAttention(heads, key_dim)(x, x)
        x = keras.layers.LayerNormalization()(DeepNormResidual(alpha)([x, a]))

    It is a ``keras.layers.Add``, so :func:`~keras_metainit.transformers.find_blocks` reads it as
    the block's residual and the :class:`DeepNorm` method checks its α.

    Args:
        alpha: positive float, the scale of the skip (:func:`deepnorm_constants`).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Returns:
        Called on ``[x, f(x)]`` (the same shapes), ``alpha * x + f(x)``.

    Raises:
        ValueError: ``alpha`` not a positive float, or not called on two tensors.

    Examples:
        >>> import numpy as np
        >>> x = keras.Input((4, 16))
        >>> f = keras.layers.Dense(16, kernel_initializer="zeros")(x)   # f(x) = 0
        >>> model = keras.Model(x, DeepNormResidual(2.0)([x, f]))
        >>> float(model(np.ones((1, 4, 16)))[0, 0, 0])                  # 2·1 + 0
        2.0

    Reference:
        Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022, Figure 2
        (``LayerNorm(x * α + f(x))``); torchscale's ``residual_connection``
        (``residual * self.alpha + x``, encoder.py line 113).
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        check(is_real(alpha) and math.isfinite(alpha) and alpha > 0, "alpha", alpha,
              "a positive float")
        self.alpha = float(alpha)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("A DeepNormResidual layer is called on two tensors, [x, f(x)]. "
                             f"Received: input_shape={input_shape}")
        super().build(input_shape)

    def _merge_function(self, inputs):
        x, fx = inputs
        return ops.add(ops.multiply(x, ops.cast(self.alpha, x.dtype)), fx)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


class DeepNorm(AnalyticMethod):
    """DeepNorm's initialization of every attention block, with a check of its residual α.

    Finds the blocks (:func:`~keras_metainit.transformers.find_blocks`): N encoder and M decoder
    blocks give α and β by :func:`deepnorm_constants`. Every block's value and output
    projections and feed-forward kernels are drawn Xavier normal with gain β, its query and key
    projections with gain 1, each attention kernel in its matrix view ``(d_in, heads·d_head)``.
    Biases, embeddings and layers outside blocks are left as they are. The residual scale α is
    part of the architecture: build each block with :class:`DeepNormResidual` (``alpha`` from
    :func:`deepnorm_constants`) followed by ``LayerNormalization``; a block whose residual has
    another α, or that is not Post-LN, is named in the report's notes and a warning.

    Args:
        role: ``None`` (each block's role from its structure: decoder when it has
            cross-attention), or ``"encoder"`` / ``"decoder"`` for every block.
        source: ``"paper"`` or ``"torchscale"``: the encoder's β of an encoder–decoder model
            (:func:`deepnorm_constants`).
        seed: seed of the draws; None: the run's.

    Examples:
        >>> alpha, beta = deepnorm_constants(encoder_layers=1)["encoder"]
        >>> x = keras.Input((8, 16))
        >>> a = keras.layers.MultiHeadAttention(2, 8)(x, x)
        >>> h = keras.layers.LayerNormalization()(DeepNormResidual(alpha)([x, a]))
        >>> f = keras.layers.Dense(16)(keras.layers.Dense(32, activation="relu")(h))
        >>> y = keras.layers.LayerNormalization()(DeepNormResidual(alpha)([h, f]))
        >>> report = keras.Model(x, y).meta_initialize(method="deepnorm", seed=0, verbose=0)
        >>> [(row["part"], round(row["gain"], 3)) for row in report.layers]
        [('query', 1.0), ('key', 1.0), ('value', 0.595), ('output', 0.595), ('ffn1', 0.595),
         ('ffn2', 0.595)]

    Reference:
        Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022; microsoft/torchscale.
    """

    aliases = ("deepnorm", "deep_norm")

    def __init__(self, role: Optional[str] = None, source: str = "paper",
                 seed: Optional[int] = None):
        self.role = check_role(role)
        check(source in SOURCES, "source", source, f"one of {SOURCES}")
        check(seed is None or is_int(seed), "seed", seed, "None or an integer")
        self.source, self.seed = source, seed

    def rules(self, scan: BlockScan) -> Tuple[List[KernelRule], List[str]]:
        """The kernel of every block with its gain, and the notes on residuals and norms."""
        roles = [self.role or b.role for b in scan.blocks]
        constants = deepnorm_constants(roles.count("encoder"), roles.count("decoder"),
                                       self.source)
        rules, notes = [], []
        for block, role in zip(scan.blocks, roles):
            alpha, beta = constants[role]
            for part, layer in block.kernels():
                scaled = part.split("_")[-1] in ("value", "output") or part.startswith("ffn")
                rules.append(KernelRule(layer, part, block.name, role, "xavier_normal",
                                        gain=beta if scaled else 1.0))
            if not math.isclose(block.alpha, alpha, rel_tol=1e-4):
                notes.append(f"block {block.name}: its residual scales the skip by "
                             f"{block.alpha:.4g}, DeepNorm needs alpha = {alpha:.4g} (build it "
                             "with keras_metainit.transformers.DeepNormResidual)")
            if block.norm != "post":
                notes.append(f"block {block.name}: norm {block.norm}; DeepNorm is for Post-LN "
                             "blocks")
        summary = ", ".join(f"{r} alpha = {a:.4g}, beta = {b:.4g}" for r, (a, b) in
                            constants.items())
        return rules, [f"DeepNorm ({self.source}): {summary}"] + notes

    def run(self, model, *, seed: int):
        scan = blocks_of(model, type(self).__name__)
        rules, notes = self.rules(scan)
        if len(notes) > 1:
            warn(f"DeepNorm: {len(notes) - 1} blocks are not the DeepNorm architecture "
                 f"(report.notes say which); first: {notes[1]}.")
        return apply_rules(rules, scan, self.seed if self.seed is not None else seed,
                           notes + scan_notes(scan), type(self).__name__)
