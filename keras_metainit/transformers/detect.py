"""Find the attention blocks of a Keras model: attention, feed-forward kernels, residual structure.

A Transformer initialization (T-Fixup, DeepNorm) scales a kernel by its place in a block, so it
must know the blocks. :func:`find_blocks` reads them from the model's structure, without running
it:

1. **Block layers.** A layer that holds a whole block: keras_hub's ``TransformerEncoder``,
   ``TransformerDecoder`` and ``ViTEncoderBlock`` (recognized by their class; keras_hub is never
   imported here, so it stays optional), or any class taught with :func:`register_block`.
2. **Functional graphs** (the model's own, a Sequential's, every nested functional model's): the
   residual merges and their branches (:mod:`~keras_metainit.transformers.graph`).
3. Every ``MultiHeadAttention`` in no block, every attention layer of a class the detector does
   not know, and every feed-forward branch with no attention before it, is *unidentified*, with
   the reason. Methods list them up front and leave their kernels as they are.

``print(find_blocks(model))`` shows the blocks, the embeddings, and what was not identified, and
why; ``find_blocks(model).count("encoder")`` is the N of an N-layer encoder.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Set, Tuple, Type, Union

import keras

from keras_metainit import _compat
from keras_metainit.layerwise.activations import describe
from keras_metainit.layerwise.kinds import is_keras_hub
from keras_metainit.losses import model_graph
from keras_metainit.transformers.blocks import (AttentionBlock, BlockScan, InputEmbedding,
                                                Unidentified)
from keras_metainit.transformers.graph import (MHA, descendants, graph_blocks, owns_kernel,
                                               read_tables)
from keras_metainit.validation import check

__all__ = ["find_blocks", "register_block"]


BlockReader = Callable[[keras.layers.Layer], Union[AttentionBlock, str]]
_REGISTERED: Dict[Type, BlockReader] = {}


def register_block(layer_class: Type[keras.layers.Layer], reader: BlockReader) -> None:
    """Teach :func:`find_blocks` a layer class that holds a whole Transformer block.

    Args:
        layer_class: the class (its subclasses match too); a registration wins over the
            built-in readers.
        reader: a function of a built layer returning its :class:`AttentionBlock` (or a string:
            the reason it cannot be read).

    Examples:
        >>> class Block(keras.layers.Layer):        # x + ffn(x + mha(x, x)), no normalization
        ...     def __init__(self, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.mha = keras.layers.MultiHeadAttention(2, 8)
        ...         self.up, self.down = keras.layers.Dense(32, "relu"), keras.layers.Dense(16)
        ...     def call(self, x):
        ...         x = x + self.mha(x, x)
        ...         return x + self.down(self.up(x))
        >>> print(find_blocks(keras.Sequential([keras.Input((8, 16)), Block()])).unidentified[0])
        Unidentified(name='.../block.../multi_head_attention...', kind='MultiHeadAttention',
                     reason="it is inside 'block...' (Block), a subclassed layer whose call() ...")
        >>> register_block(Block, lambda layer: AttentionBlock(
        ...     layer.name, [layer.mha], [layer.up, layer.down], source="Block", layer=layer))
        >>> find_blocks(keras.Sequential([keras.Input((8, 16)), Block(), Block()])).count("encoder")
        2

    Reference:
        The analogue of :func:`keras_metainit.layerwise.register_layer` for blocks.
    """
    check(isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer),
          "layer_class", layer_class, "a subclass of keras.layers.Layer")
    check(callable(reader), "reader", reader, "callable")
    _REGISTERED[layer_class] = reader


def _hub_transformer(layer) -> AttentionBlock:
    """keras_hub ``TransformerEncoder`` / ``TransformerDecoder`` (keras_hub 0.32)."""
    cross = getattr(layer, "_cross_attention_layer", None)
    return AttentionBlock(
        layer.name, [layer._self_attention_layer] + ([cross] if cross is not None else []),
        [layer._feedforward_intermediate_dense, layer._feedforward_output_dense],
        cross=cross is not None, norm="pre" if layer.normalize_first else "post",
        source=f"keras_hub {type(layer).__name__}", layer=layer)


def _hub_vit(layer) -> AttentionBlock:
    """keras_hub ``ViTEncoderBlock`` (keras_hub 0.32): Pre-LN, ``mha`` and ``mlp``."""
    return AttentionBlock(layer.name, [layer.mha], [layer.mlp.dense_1, layer.mlp.dense_2],
                          norm="pre", source="keras_hub ViTEncoderBlock", layer=layer)


_BUILTIN_READERS: List[Tuple[Tuple[str, ...], BlockReader]] = [
    (("TransformerEncoder", "TransformerDecoder"), _hub_transformer),
    (("ViTEncoderBlock",), _hub_vit),
]


def _read_block_layer(layer) -> Union[None, AttentionBlock, str]:
    """The block a block layer holds, the reason it cannot be read, or None (not a block
    layer)."""
    reader = next((fn for cls, fn in list(_REGISTERED.items())[::-1] if isinstance(layer, cls)),
                  None)
    if reader is None:
        reader = next((fn for names, fn in _BUILTIN_READERS if is_keras_hub(layer, *names)), None)
    if reader is None:
        return None
    if not layer.built:
        return "not built"
    try:
        return reader(layer)
    except (AttributeError, TypeError) as e:
        return f"its reader failed ({type(e).__name__}: {e})"


def _children(layer) -> List[Any]:
    return _compat.flatten_layers(layer, include_self=False, recursive=False)


def _embeddings(layers, parent, tables, present: List[str]) -> List[InputEmbedding]:
    """Every embedding table of the model, with the stack it feeds (from the graphs, else the
    only stack there is) or why none."""
    embeddings = []
    for layer in layers:
        token = isinstance(layer, keras.layers.Embedding)
        positional = is_keras_hub(layer, "PositionEmbedding") or (token and is_keras_hub(
            parent.get(id(layer)), "ViTPatchingAndEmbedding"))
        if not (token or positional):
            continue
        e = InputEmbedding(layer, positional=positional, tied=id(layer) in tables.reversed)
        found = tables.roles.get(id(layer))
        if positional:
            pass
        elif found:
            e.role = "encoder" if "encoder" in found else "decoder"  # shared: the encoder's
        elif found is not None:
            e.reason = "it feeds no attention block"
        elif len(present) == 1:
            e.role = present[0]
        else:
            e.reason = ("the model has no attention block" if not present else
                        "not in a functional graph: which stack it feeds is unknown")
        embeddings.append(e)
    return embeddings


def find_blocks(model: keras.Model) -> BlockScan:
    """The attention blocks of a built model, its embedding tables, and what was not identified.

    Args:
        model: a built Keras model (functional, Sequential or subclassed; nested models and
            keras_hub backbones included).

    Returns:
        A :class:`BlockScan`: the blocks (each with its attention layers, feed-forward kernels,
        norm placement and residual scale), the embedding tables with the stack each feeds, and
        every layer that looks like part of a block but is in none, with the reason.

    Raises:
        ValueError: the model is not built.

    Examples:
        >>> x = keras.Input((8, 16))
        >>> a = keras.layers.MultiHeadAttention(2, 8, name="mha")(x, x)
        >>> h = keras.layers.LayerNormalization()(keras.layers.Add()([x, a]))
        >>> f = keras.layers.Dense(16, name="down")(keras.layers.Dense(32, "relu", name="up")(h))
        >>> h = keras.layers.LayerNormalization()(keras.layers.Add()([h, f]))
        >>> print(find_blocks(keras.Model(x, h)))
        1 attention blocks (1 encoder, 0 decoder)
          mha: encoder, 1 attention, feed-forward up, down, norm post, alpha 1 (functional graph)

    Reference:
        The block structure of Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """
    if not getattr(model, "built", False):
        raise ValueError(f"The model {model.name!r} is not built: call it once (or give it an "
                         "Input) before looking for its blocks.")
    layers = [model] + descendants(model)
    parent = {id(c): layer for layer in layers for c in _children(layer)}
    blocks: List[AttentionBlock] = []
    unidentified: Dict[int, Unidentified] = {}
    covered: Set[int] = set()
    graphs = []
    for layer in layers:
        if id(layer) in covered:
            continue
        read = _read_block_layer(layer)
        if isinstance(read, AttentionBlock):
            blocks.append(read)
        elif isinstance(read, str):
            unidentified[id(layer)] = Unidentified(layer.path, type(layer).__name__, read)
        if read is not None:
            covered.update(id(c) for c in descendants(layer))
            continue
        graph = model_graph(layer) if isinstance(layer, keras.Model) else None
        if graph is not None:
            graphs.append(graph)
            found, missed = graph_blocks(graph)
            blocks += found
            unidentified.update(missed)
    placed = {id(mha) for b in blocks for mha in b.attention} | covered
    for layer in layers:
        if id(layer) in placed or id(layer) in unidentified or not layer.built:
            continue
        if isinstance(layer, MHA):
            holder = parent.get(id(layer), model)
            reason = ("no residual merge around it (its output is not added back to its input)"
                      if model_graph(holder) is not None else
                      f"it is inside {describe(holder)}, a subclassed layer whose call() cannot "
                      "be read (teach it with keras_metainit.transformers.register_block)")
            unidentified[id(layer)] = Unidentified(layer.path, type(layer).__name__, reason)
        elif "Attention" in type(layer).__name__ and owns_kernel(layer):
            unidentified[id(layer)] = Unidentified(
                layer.path, type(layer).__name__,
                "an attention layer of a class the detector does not know (it reads "
                "keras.layers.MultiHeadAttention; teach a block with register_block)")
            placed.update(id(c) for c in descendants(layer))
    role_of = {id(layer): b.role for b in blocks
               for layer in [b.layer] + b.attention + b.feedforward if layer is not None}
    tables = read_tables(graphs, role_of)
    embeddings = _embeddings(layers, parent, tables, sorted({b.role for b in blocks}))
    start = {id(b): tables.position.get(id(b.layer if b.layer is not None else b.attention[0]),
                                        len(tables.position)) for b in blocks}
    blocks.sort(key=lambda b: start[id(b)])  # stable: in model order where the graphs say it
    return BlockScan(blocks, embeddings,
                     sorted(unidentified.values(), key=lambda u: u.name))
