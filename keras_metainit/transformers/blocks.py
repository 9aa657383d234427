"""The vocabulary of the Transformer initializations: attention blocks, embedding tables, and the
layers that could not be placed in a block.

:func:`~keras_metainit.transformers.detect.find_blocks` returns them in a :class:`BlockScan`.
A block's **role** is ``"decoder"`` when it has cross-attention and ``"encoder"`` otherwise: a
decoder-only stack (GPT-style, causal self-attention and a feed-forward) has the encoder's two
sub-layers per block. Its **norm** is ``"post"`` (normalization after the residual merge,
Post-LN), ``"pre"`` (normalization at the start of the branch) or ``"none"``; its **alpha** is the
scale of the skip in its residual merges (1 for ``Add``, ``alpha`` for ``DeepNormResidual``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Tuple

__all__ = ["AttentionBlock", "InputEmbedding", "Unidentified", "BlockScan", "attention_kernels",
           "ROLES"]

#: the roles a block can have
ROLES = ("encoder", "decoder")


@dataclasses.dataclass
class AttentionBlock:
    """One Transformer block.

    Attributes:
        name: the name of the layer holding the block, or of its self-attention layer.
        attention: its ``MultiHeadAttention`` layers: the self-attention first, then any
            cross-attention.
        feedforward: the ``Dense``/``EinsumDense`` layers of its feed-forward branch, in order
            (empty when the block has none).
        cross: whether ``attention[1:]`` are cross-attention (then the role is ``"decoder"``).
        norm: ``"post"``, ``"pre"`` or ``"none"``.
        alpha: the scale of the skip in the block's residual merges.
        source: how it was found (the block layer's class, or ``"functional graph"``).
        layer: the layer holding the whole block, or None (found in a functional graph).
    """

    name: str
    attention: List[Any]
    feedforward: List[Any] = dataclasses.field(default_factory=list)
    cross: bool = False
    norm: str = "none"
    alpha: float = 1.0
    source: str = "functional graph"
    layer: Any = None

    @property
    def role(self) -> str:
        """``"decoder"`` with cross-attention, else ``"encoder"``."""
        return "decoder" if self.cross else "encoder"

    def kernels(self) -> List[Tuple[str, Any]]:
        """``(part, layer)`` for every kernel of the block, in order: ``query``, ``key``,
        ``value``, ``output`` of the self-attention (``cross_query`` ... of a cross-attention),
        then ``ffn1``, ``ffn2``, ... of the feed-forward branch."""
        parts = []
        for i, mha in enumerate(self.attention):
            prefix = "cross_" if i else ""
            parts += [(prefix + part, layer) for part, layer in attention_kernels(mha)]
        parts += [(f"ffn{i + 1}", layer) for i, layer in enumerate(self.feedforward)]
        return parts


@dataclasses.dataclass
class InputEmbedding:
    """An embedding table of the model.

    Attributes:
        layer: the ``Embedding`` layer (``keras.layers.Embedding`` and its subclasses, such as
            ``ReversibleEmbedding``; keras_hub's ``PositionEmbedding``).
        role: the stack it feeds (``"encoder"``/``"decoder"``), or None.
        positional: a table of positions (keras_hub ``PositionEmbedding``, the position table
            of keras_hub's ``ViTPatchingAndEmbedding``), not of tokens.
        reason: why no role could be given, or None.
        tied: the table is also the model's output projection (a ``ReversibleEmbedding`` called
            with ``reverse=True``).
    """

    layer: Any
    role: Optional[str] = None
    positional: bool = False
    reason: Optional[str] = None
    tied: bool = False


@dataclasses.dataclass
class Unidentified:
    """A layer that looks like part of a Transformer block but is in none, and why."""

    name: str
    kind: str
    reason: str


@dataclasses.dataclass
class BlockScan:
    """What :func:`find_blocks` found.

    Attributes:
        blocks: the attention blocks, in the order the model computes them (per stream).
        embeddings: the embedding tables, with the stack each one feeds.
        unidentified: the layers that look like parts of blocks but are in none, with reasons.
    """

    blocks: List[AttentionBlock]
    embeddings: List[InputEmbedding]
    unidentified: List[Unidentified]

    def count(self, role: str) -> int:
        """Blocks of this role (N for ``"encoder"``, M for ``"decoder"``)."""
        return sum(b.role == role for b in self.blocks)

    def __str__(self) -> str:
        lines = [f"{len(self.blocks)} attention blocks ({self.count('encoder')} encoder, "
                 f"{self.count('decoder')} decoder)"]
        for b in self.blocks:
            ffn = ", ".join(layer.name for layer in b.feedforward) or "none"
            lines.append(f"  {b.name}: {b.role}, {len(b.attention)} attention, feed-forward "
                         f"{ffn}, norm {b.norm}, alpha {b.alpha:g} ({b.source})")
        for e in self.embeddings:
            what = ("positions" if e.positional else
                    f"feeds the {e.role}" if e.role else f"no stack: {e.reason}")
            lines.append(f"  embedding {e.layer.name}: {what}" + (" (tied to the output)"
                                                                   if e.tied else ""))
        for u in self.unidentified:
            lines.append(f"  not identified: '{u.name}' ({u.kind}): {u.reason}")
        return "\n".join(lines)


def attention_kernels(mha) -> List[Tuple[str, Any]]:
    """``[("query", layer), ("key", ...), ("value", ...), ("output", ...)]``: the projection
    layers (``EinsumDense``) of a built ``keras.layers.MultiHeadAttention``."""
    return [("query", mha.query_dense), ("key", mha.key_dense), ("value", mha.value_dense),
            ("output", mha.output_dense)]

