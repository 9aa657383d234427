"""T-Fixup (Huang, Perez, Ba & Volkovs, ICML 2020): Transformers trained without warmup and
without LayerNorm.

The rule, as the authors' code applies it (layer6ai-labs/T-Fixup, commit b17e166, a fairseq
fork; docs/methods/t_fixup.md cites every line):

- every projection and feed-forward kernel Xavier uniform (fairseq's ``Linear``), the query and
  key projections with gain 1/√2 (fairseq's ``MultiheadAttention.reset_parameters``, which the
  code keeps), the value and output projections with gain 1;
- the token embeddings N(0, d^(-1/2)) (``Embedding``, std d^(-1/2));
- then, in an N-block encoder, the value and output projections and the feed-forward kernels
  times 0.67·N^(-1/4) (``transformer_layer.py`` lines 31-49), in an M-block decoder those of the
  self- and cross-attention and the feed-forward kernels times (9M)^(-1/4) (lines 157-175), and
  the token embeddings feeding the encoder times (9N)^(-1/4), feeding the decoder (9M)^(-1/4)
  (``transformer.py`` lines 378-381 and 604-607; a table shared by both is scaled once, by the
  encoder's factor).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import keras

from keras_metainit.methods.base import AnalyticMethod
from keras_metainit.transformers.blocks import BlockScan
from keras_metainit.transformers.rules import (KernelRule, apply_rules, blocks_of, check_role,
                                               scan_notes)
from keras_metainit.validation import check, is_int, is_real

__all__ = ["t_fixup_factors", "TFixup", "t_fixup", "QK_GAIN"]

#: the Xavier gain of the query and key projections in the authors' code: fairseq's
#: ``MultiheadAttention`` draws q, k, v with gain 1/√2, and T-Fixup multiplies v back by √2
QK_GAIN = 2 ** -0.5


def t_fixup_factors(encoder_layers: int = 0, decoder_layers: int = 0
                    ) -> Dict[str, Tuple[float, float]]:
    """T-Fixup's factors per stack: ``(blocks, embeddings)``.

    ==============  =====================================  =====================
    stack           value, output, feed-forward kernels    token embeddings
    ==============  =====================================  =====================
    encoder (N)     0.67·N^(-1/4)                          (9N)^(-1/4)
    decoder (M)     (9M)^(-1/4)                            (9M)^(-1/4)
    ==============  =====================================  =====================

    The embeddings' factor is the authors' code's and the paper's (Algorithm 2 scales "input
    embeddings x and y in encoder and decoder by (9N)^(-1/4)"); 0.67·N^(-1/4) is the encoder
    blocks' only.

    Args:
        encoder_layers: N, the encoder's blocks (0: none).
        decoder_layers: M, the decoder's blocks (0: none).

    Returns:
        ``{"encoder": (block_factor, embedding_factor), "decoder": (...)}`` for the stacks the
        model has.

    Raises:
        ValueError: a negative count, or no layers at all.

    Examples:
        >>> [round(f, 4) for f in t_fixup_factors(encoder_layers=6)["encoder"]]
        [0.4281, 0.3689]

    Reference:
        Huang, Perez, Ba & Volkovs, "Improving Transformer Optimization Through Better
        Initialization", ICML 2020; layer6ai-labs/T-Fixup.
    """
    for name, value in (("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers)):
        check(is_int(value) and value >= 0, name, value, "an integer >= 0")
    check(encoder_layers + decoder_layers > 0, "encoder_layers", encoder_layers,
          "positive when `decoder_layers` is 0")
    out = {}
    if encoder_layers:
        out["encoder"] = (0.67 * encoder_layers ** -0.25, (9 * encoder_layers) ** -0.25)
    if decoder_layers:
        out["decoder"] = ((9 * decoder_layers) ** -0.25, (9 * decoder_layers) ** -0.25)
    return out


class TFixup(AnalyticMethod):
    """T-Fixup: Xavier projections, N(0, d^(-1/2)) embeddings, then the depth factors.

    Finds the blocks (:func:`~keras_metainit.transformers.find_blocks`): N encoder blocks and M
    decoder blocks. Every projection and feed-forward kernel of every block is drawn Xavier
    uniform in its matrix view (query and key with gain ``qk_gain``), each token embedding table
    N(0, d^(-1/2)); then the value and output projections and the feed-forward kernels are
    multiplied by :func:`t_fixup_factors`' block factor of their stack and each token embedding
    by the embedding factor of the stack it feeds. Biases, position embeddings, normalization
    layers and kernels outside blocks (a classifier head) are left as they are; so are blocks'
    LayerNormalization layers: T-Fixup is meant for stacks without them (the report's notes
    say when a block has one).

    Args:
        role: ``None`` (each block's role from its structure: decoder when it has
            cross-attention; a GPT-style decoder-only stack is then an encoder), or
            ``"encoder"`` / ``"decoder"`` for every block and embedding.
        qk_gain: the Xavier gain of the query and key projections (default 1/√2, the authors'
            code's; the paper's "Xavier for all projections" is 1.0).
        embeddings: draw and scale the token embeddings (False: leave them).
        seed: seed of the draws; None: the run's.

    Examples:
        >>> x = keras.Input((8, 16))                       # one block, no LayerNorm
        >>> h = keras.layers.Add()([x, keras.layers.MultiHeadAttention(2, 8)(x, x)])
        >>> f = keras.layers.Dense(16)(keras.layers.Dense(32, activation="relu")(h))
        >>> model = keras.Model(x, keras.layers.Add()([h, f]))
        >>> report = model.meta_initialize(method="t_fixup", seed=0, verbose=0)
        >>> [(row["part"], round(row["factor"], 2)) for row in report.layers]
        [('query', 1.0), ('key', 1.0), ('value', 0.67), ('output', 0.67), ('ffn1', 0.67), ('ffn2', 0.67)]

    Reference:
        Huang, Perez, Ba & Volkovs, "Improving Transformer Optimization Through Better
        Initialization", ICML 2020; code: layer6ai-labs/T-Fixup.
    """

    aliases = ("t_fixup", "tfixup")

    def __init__(self, role: Optional[str] = None, qk_gain: float = QK_GAIN,
                 embeddings: bool = True, seed: Optional[int] = None):
        self.role = check_role(role)
        check(is_real(qk_gain) and math.isfinite(qk_gain) and qk_gain > 0, "qk_gain", qk_gain,
              "a positive float")
        check(isinstance(embeddings, bool), "embeddings", embeddings, "a bool")
        check(seed is None or is_int(seed), "seed", seed, "None or an integer")
        self.qk_gain, self.embeddings, self.seed = float(qk_gain), embeddings, seed

    def rules(self, scan: BlockScan) -> Tuple[List[KernelRule], List[Dict[str, Any]], List[str]]:
        """The kernel of every block and embedding with its gain and factor; the rows of the
        embeddings left as they are; the notes."""
        roles = [self.role or b.role for b in scan.blocks]
        factors = t_fixup_factors(roles.count("encoder"), roles.count("decoder"))
        rules, skipped = [], []
        for block, role in zip(scan.blocks, roles):
            for part, layer in block.kernels():
                name = part.split("_")[-1]
                rules.append(KernelRule(
                    layer, part, block.name, role, "xavier_uniform",
                    gain=self.qk_gain if name in ("query", "key") else 1.0,
                    factor=factors[role][0] if name in ("value", "output") or
                    part.startswith("ffn") else 1.0))
        for e in scan.embeddings if self.embeddings else ():
            role = None if e.positional else self.role or e.role
            if role is None or role not in factors:
                reason = ("position embeddings are left as they are (T-Fixup scales token "
                          "embeddings)" if e.positional else e.reason
                          or f"it feeds the {e.role}, which is not in the model")
                skipped.append({"name": e.layer.path, "kind": type(e.layer).__name__,
                                "part": "embedding", "status": f"skipped: {reason}"})
                continue
            dim = int(e.layer.embeddings.shape[-1])
            rules.append(KernelRule(e.layer, "embedding", f"{role} input", role, "normal",
                                    gain=dim ** -0.5, factor=factors[role][1]))
        notes = ["T-Fixup: " + ", ".join(f"{r} blocks x{b:.4g}, embeddings x{e:.4g}"
                                          for r, (b, e) in factors.items())]
        normed = [b.name for b in scan.blocks if b.norm != "none"]
        if normed:
            notes.append(f"{len(normed)} of {len(scan.blocks)} blocks have normalization layers "
                         "(left in place); T-Fixup is meant for stacks without LayerNorm")
        tied = [e.layer.path for e in scan.embeddings if e.tied and e.role]
        if tied and self.embeddings:
            notes.append(f"{', '.join(tied)}: also the output projection (tied), scaled with it "
                         "as in the authors' runs with shared input and output embeddings")
        return rules, skipped, notes

    def run(self, model, *, seed: int):
        scan = blocks_of(model, type(self).__name__)
        rules, skipped, notes = self.rules(scan)
        return apply_rules(rules, scan, self.seed if self.seed is not None else seed,
                           notes + scan_notes(scan), type(self).__name__, skipped)


def t_fixup(model: keras.Model, **options: Any):
    """T-Fixup on a built model, in one call: ``meta_initialize(model, method=TFixup(**options),
    verbose=0)``.

    Args:
        model: a built Keras model with attention blocks.
        **options: :class:`TFixup`'s arguments.

    Returns:
        The :class:`~keras_metainit.InitReport`: one row per kernel set (factor, std) and per
        part left as it is, with the reason.

    Examples:
        >>> x = keras.Input((8, 16))
        >>> h = keras.layers.Add()([x, keras.layers.MultiHeadAttention(2, 8)(x, x)])
        >>> report = t_fixup(keras.Model(x, h), seed=0)
        >>> report.method, sum(row["status"] == "set" for row in report.layers)
        ('t_fixup', 4)

    Reference:
        Huang, Perez, Ba & Volkovs, ICML 2020 (see :class:`TFixup`).
    """
    from keras_metainit.engine import meta_initialize

    return meta_initialize(model, None, method=TFixup(**options), verbose=0)
