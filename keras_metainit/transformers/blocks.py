"""Find the attention blocks of a Keras model: attention, feed-forward kernels, residual structure.

A Transformer initialization (T-Fixup, DeepNorm) scales a kernel by its place in a block, so it
must know the blocks. :func:`find_blocks` reads them from the model's structure, without running
it:

1. **Block layers.** A layer that holds a whole block: keras_hub's ``TransformerEncoder``,
   ``TransformerDecoder`` and ``ViTEncoderBlock`` (recognized by their class; keras_hub is never
   imported here, so it stays optional), or any class taught with :func:`register_block`.
2. **Functional graphs** (the model's own, a Sequential's, every nested functional model's). Each
   residual merge, a ``keras.layers.Add`` (:class:`~keras_metainit.transformers.DeepNormResidual`
   is one) or ``x + y`` on Keras tensors, one of whose inputs (the *skip*) lies upstream of the
   other (the *branch*), is a sub-layer; the layers between the two are its branch. A branch that
   holds one ``keras.layers.MultiHeadAttention`` and no other kernel is an attention sub-layer
   (cross-attention when the attention's value comes from outside the branch); a branch of
   ``Dense``/``EinsumDense`` layers is a feed-forward sub-layer. Along one residual stream (merge
   to merge through layers without kernels: normalization, dropout, activations) a
   self-attention sub-layer starts a block, and the cross-attention and feed-forward sub-layers
   after it join that block.
3. Every ``MultiHeadAttention`` in no block, every attention layer of a class the detector does
   not know, and every feed-forward branch with no attention before it, is *unidentified*, with
   the reason. Methods list them up front and leave their kernels as they are.

A block's **role** is ``"decoder"`` when it has cross-attention and ``"encoder"`` otherwise: a
decoder-only stack (GPT-style, causal self-attention and a feed-forward) has the encoder's two
sub-layers per block. Its **norm** is ``"post"`` (normalization after the residual merge,
Post-LN), ``"pre"`` (normalization at the start of the branch) or ``"none"``; its **alpha** is the
scale of the skip in its residual merges (1 for ``Add``, ``alpha`` for ``DeepNormResidual``).

Example:
    >>> scan = keras_metainit.transformers.find_blocks(model)
    >>> print(scan)                # blocks, embeddings, and what was not identified, and why
    >>> scan.count("encoder")      # N of an N-layer encoder
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Type, Union

import keras

from keras_metainit.layerwise.activations import describe
from keras_metainit.losses import model_graph

__all__ = ["AttentionBlock", "InputEmbedding", "Unidentified", "BlockScan", "find_blocks",
           "register_block", "attention_kernels", "ROLES"]

#: the roles a block can have
ROLES = ("encoder", "decoder")
_MHA = keras.layers.MultiHeadAttention
_DENSE = (keras.layers.Dense, keras.layers.EinsumDense)


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


# ----------------------------------------------------------------------------------------------
# Block layers
# ----------------------------------------------------------------------------------------------
BlockReader = Callable[[keras.layers.Layer], Union[AttentionBlock, str]]
_REGISTERED: Dict[Type, BlockReader] = {}


def register_block(layer_class: Type[keras.layers.Layer], reader: BlockReader) -> None:
    """Teach :func:`find_blocks` a layer class that holds a whole Transformer block.

    Args:
        layer_class: the class (its subclasses match too); a registration wins over the
            built-in readers.
        reader: a function of a built layer returning its :class:`AttentionBlock` (or a string:
            the reason it cannot be read).

    Example:
        >>> class Block(keras.layers.Layer):        # x + ffn(x + mha(x, x)), no normalization
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.mha = keras.layers.MultiHeadAttention(2, 8)
        ...         self.up, self.down = keras.layers.Dense(32, "relu"), keras.layers.Dense(16)
        ...     def call(self, x):
        ...         x = x + self.mha(x, x)
        ...         return x + self.down(self.up(x))
        >>> register_block(Block, lambda layer: AttentionBlock(
        ...     layer.name, [layer.mha], [layer.up, layer.down], norm="none", source="Block"))

    Reference:
        The analogue of :func:`keras_metainit.layerwise.register_layer` for blocks.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ValueError("Argument `layer_class` must be a subclass of keras.layers.Layer. "
                         f"Received: layer_class={layer_class!r}")
    if not callable(reader):
        raise ValueError(f"Argument `reader` must be callable. Received: reader={reader!r}")
    _REGISTERED[layer_class] = reader


def _hub_class(layer, *names: str) -> bool:
    """Whether ``layer`` is an instance of a keras_hub class of one of these names (read from its
    class hierarchy: keras_hub is not imported)."""
    return any(c.__name__ in names and c.__module__.startswith("keras_hub.")
               for c in type(layer).__mro__)


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
        reader = next((fn for names, fn in _BUILTIN_READERS if _hub_class(layer, *names)), None)
    if reader is None:
        return None
    if not layer.built:
        return "not built"
    try:
        return reader(layer)
    except (AttributeError, TypeError) as e:
        return f"its reader failed ({type(e).__name__}: {e})"


# ----------------------------------------------------------------------------------------------
# Functional graphs (Keras 3.15: Node, KerasTensor._keras_history, Functional._nodes_by_depth)
# ----------------------------------------------------------------------------------------------
def _producer(tensor):
    """The graph node that produced a Keras tensor, or None for a model input."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    return history.operation._inbound_nodes[history.node_index]


def _owns_kernel(op) -> bool:
    """Whether the operation (or a layer inside it) has a weight of rank >= 2."""
    return any(len(w.shape) >= 2 for w in getattr(op, "weights", []))


def _is_norm(op) -> bool:
    return isinstance(op, keras.layers.LayerNormalization) or "RMSNorm" in type(op).__name__


def _is_merge(op) -> bool:
    """``keras.layers.Add`` (and subclasses) or ``x + y`` on Keras tensors
    (``keras.src.ops.numpy.Add``)."""
    return isinstance(op, keras.layers.Add) or (
        type(op).__name__ == "Add" and type(op).__module__.startswith("keras.src.ops"))


def _mha_tensors(node) -> Tuple[Any, Any]:
    """``(query, value)`` Keras tensors of a ``MultiHeadAttention`` node."""
    args, kwargs = node.arguments.args, node.arguments.kwargs
    query = kwargs.get("query", args[0] if args else None)
    value = kwargs.get("value", args[1] if len(args) > 1 else None)
    key = kwargs.get("key", args[2] if len(args) > 2 else None)
    return query, value if key is None else key


@dataclasses.dataclass
class _Sublayer:
    merge: Any                  # the merge node
    skip: Any                   # the skip tensor
    branch: List[Any]           # the nodes between skip and merge, in topological order
    kind: str                   # "self", "cross", "ffn"
    norm: str = "none"


class _Graph:
    """One functional graph: its nodes in topological order, producers and consumers."""

    def __init__(self, graph):
        depths = graph._nodes_by_depth
        self.nodes = [n for d in sorted(depths, reverse=True) for n in depths[d]]
        self.order = {id(n): i for i, n in enumerate(self.nodes)}
        self.consumers: Dict[int, List[Any]] = {}
        for n in self.nodes:
            for t in n.input_tensors:
                self.consumers.setdefault(id(t), []).append(n)

    def calls(self, op) -> int:
        return sum(n.operation is op for n in self.nodes)

    def downstream(self, tensor) -> Set[int]:
        """Ids of the nodes that depend on ``tensor``."""
        seen: Set[int] = set()
        stack = list(self.consumers.get(id(tensor), []))
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            for t in n.output_tensors:
                stack.extend(self.consumers.get(id(t), []))
        return seen

    def between(self, skip, branch) -> Optional[List[Any]]:
        """The nodes on paths from ``skip`` to ``branch`` (``branch``'s producer included), in
        topological order, or None when ``skip`` is not upstream of ``branch``."""
        below = self.downstream(skip)
        start = _producer(branch)
        if start is None or id(start) not in below:
            return None
        seen, stack = {}, [start]
        while stack:
            n = stack.pop()
            if id(n) in seen or id(n) not in below:
                continue
            seen[id(n)] = n
            stack.extend(p for p in (_producer(t) for t in n.input_tensors) if p is not None)
        return sorted(seen.values(), key=lambda n: self.order.get(id(n), -1))

    def stream(self, tensor) -> Tuple[Set[int], bool]:
        """Ids of the tensors reached from ``tensor`` through layers without kernels that take
        one tensor (normalization, dropout, activations), and whether a normalization is among
        them."""
        ids, normed, stack = {id(tensor)}, False, [tensor]
        while stack:
            t = stack.pop()
            for n in self.consumers.get(id(t), []):
                op = n.operation
                if len(n.input_tensors) != 1 or _owns_kernel(op) or _is_merge(op):
                    continue
                normed = normed or _is_norm(op)
                for out in n.output_tensors:
                    if id(out) not in ids:
                        ids.add(id(out))
                        stack.append(out)
        return ids, normed


def _sublayers(g: _Graph, unidentified: Dict[int, Unidentified]) -> List[_Sublayer]:
    """The residual sub-layers of a graph; an attention layer in a residual branch of any other
    shape goes to ``unidentified`` (by the layer's id)."""
    subs = []
    for node in g.nodes:
        if not _is_merge(node.operation) or len(node.input_tensors) != 2:
            continue
        a, b = node.input_tensors
        branch, skip = g.between(a, b), a
        if branch is None:
            branch, skip = g.between(b, a), b
        if branch is None or any(_is_merge(n.operation) for n in branch):
            continue  # not a residual merge, or one around whole sub-layers
        mhas = [n for n in branch if isinstance(n.operation, _MHA)]
        others = [n.operation for n in branch if _owns_kernel(n.operation)
                  and not isinstance(n.operation, (_MHA,) + _DENSE)]
        denses = [n.operation for n in branch if isinstance(n.operation, _DENSE)]
        reason = None
        if skip is not a and getattr(node.operation, "alpha", 1.0) != 1.0:
            reason = f"its residual merge '{node.operation.name}' scales the branch, not the skip"
        elif len(mhas) > 1:
            reason = "several attention layers share one residual branch"
        elif mhas and (denses or others):
            reason = ("its residual branch also holds "
                      + ", ".join(describe(op) for op in denses + others))
        elif mhas and g.calls(mhas[0].operation) > 1:
            reason = f"called {g.calls(mhas[0].operation)} times (shared weights)"
        if reason is not None:
            for n in mhas:
                unidentified[id(n.operation)] = Unidentified(n.operation.path,
                                                             type(n.operation).__name__, reason)
            continue
        if mhas:
            _, value = _mha_tensors(mhas[0])
            inside = {id(skip)} | {id(t) for n in branch for t in n.output_tensors}
            kind = "self" if value is None or id(value) in inside else "cross"
        elif denses and not others:
            kind = "ffn"
        else:
            continue
        first = [n for n in branch if any(t is skip for t in n.input_tensors)]
        norm = "pre" if any(_is_norm(n.operation) for n in first) else "none"
        subs.append(_Sublayer(node, skip, branch, kind, norm))
    return subs


def _graph_blocks(graph) -> Tuple[List[AttentionBlock], Dict[int, Unidentified]]:
    """The blocks of one functional graph, and the attention layers it could not place."""
    g = _Graph(graph)
    unidentified: Dict[int, Unidentified] = {}
    subs = _sublayers(g, unidentified)
    follows: Dict[int, _Sublayer] = {}  # id(sub) -> the next sub-layer on its stream
    normed_after: Dict[int, bool] = {}
    for s in subs:
        ids, normed = g.stream(s.merge.output_tensors[0])
        normed_after[id(s)] = normed
        nxt = [t for t in subs if id(t.skip) in ids and t is not s]
        if nxt:
            follows[id(s)] = min(nxt, key=lambda t: g.order[id(t.merge)])
    has_previous = {id(t) for t in follows.values()}
    blocks: List[AttentionBlock] = []
    for head in (s for s in subs if id(s) not in has_previous):
        current, s = None, head
        while s is not None:
            ops = [n.operation for n in s.branch]
            if s.kind == "self" or (s.kind == "cross" and (current is None or current.feedforward)):
                mha = next(op for op in ops if isinstance(op, _MHA))
                norm = s.norm if s.norm == "pre" else "post" if normed_after[id(s)] else "none"
                current = AttentionBlock(mha.name, [mha], cross=s.kind == "cross", norm=norm,
                                         alpha=float(getattr(s.merge.operation, "alpha", 1.0)))
                blocks.append(current)
            elif s.kind == "cross":
                current.attention.append(next(op for op in ops if isinstance(op, _MHA)))
                current.cross = True
            elif current is not None and not current.feedforward:
                current.feedforward = [op for op in ops if isinstance(op, _DENSE)]
            else:
                first = next(op for op in ops if isinstance(op, _DENSE))
                unidentified[id(first)] = Unidentified(
                    first.path, type(first).__name__,
                    "a residual feed-forward branch with no attention before it")
            s = follows.get(id(s))
    return blocks, unidentified


# ----------------------------------------------------------------------------------------------
# The whole model
# ----------------------------------------------------------------------------------------------
def _children(layer) -> List[Any]:
    return list(layer._flatten_layers(include_self=False, recursive=False))


@dataclasses.dataclass
class _Tables:
    """What the graphs say about the embedding tables and the order of the blocks."""

    roles: Dict[int, Set[str]]  # table id -> roles of the first block after each of its calls
    reversed: Set[int]          # ids of the tables called with reverse=True (an output head)
    position: Dict[int, int]    # layer id -> the first graph position of a node that calls it


def _read_tables(graphs: Sequence[Any], role_of: Dict[int, str]) -> _Tables:
    """Follow every call of an embedding table (a layer or one inside a layer) to the first block
    downstream of it."""
    out = _Tables({}, set(), {})
    for graph in graphs:
        g = _Graph(graph)
        for node in g.nodes:
            out.position.setdefault(id(node.operation), len(out.position))
            if isinstance(node.operation, keras.Model):
                continue  # a nested model: its own graph is scanned
            tables = [t for t in [node.operation] + _descendants(node.operation)
                      if isinstance(t, keras.layers.Embedding)]
            if not tables:
                continue
            if node.arguments.kwargs.get("reverse"):
                out.reversed.update(id(t) for t in tables)
                continue
            below = set().union(*(g.downstream(t) for t in node.output_tensors))
            role = next((r for r in (_role_in(n.operation, role_of) for n in g.nodes
                                     if id(n) in below) if r is not None), None)
            for t in tables:  # topological order: the first block met decides
                out.roles.setdefault(id(t), set()).update([role] if role else [])
    return out


def _descendants(layer) -> List[Any]:
    """Every layer inside ``layer`` (none for an operation such as ``x + y``)."""
    if not hasattr(layer, "_flatten_layers"):
        return []
    return list(layer._flatten_layers(include_self=False, recursive=True))


def _role_in(op, role_of: Dict[int, str]) -> Optional[str]:
    """The role of the block that ``op`` is part of or holds, if any."""
    if id(op) in role_of:
        return role_of[id(op)]
    inner = [role_of[id(layer)] for layer in _descendants(op) if id(layer) in role_of]
    return inner[0] if inner else None


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

    Example:
        >>> x = keras.Input((8, 16))
        >>> a = keras.layers.MultiHeadAttention(2, 8)(x, x)
        >>> x = keras.layers.LayerNormalization()(keras.layers.Add()([x, a]))
        >>> f = keras.layers.Dense(16)(keras.layers.Dense(32, "relu")(x))
        >>> x = keras.layers.LayerNormalization()(keras.layers.Add()([x, f]))
        >>> print(find_blocks(keras.Model(keras.Input((8, 16)), x)))  # 1 encoder block, post

    Reference:
        The block structure of Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """
    if not getattr(model, "built", False):
        raise ValueError(f"The model {model.name!r} is not built: call it once (or give it an "
                         "Input) before looking for its blocks.")
    layers = [model] + _descendants(model)
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
            covered.update(id(c) for c in _descendants(layer))
            continue
        graph = model_graph(layer) if isinstance(layer, keras.Model) else None
        if graph is not None:
            graphs.append(graph)
            found, missed = _graph_blocks(graph)
            blocks += found
            unidentified.update(missed)
    placed = {id(mha) for b in blocks for mha in b.attention} | covered
    for layer in layers:
        if id(layer) in placed or id(layer) in unidentified or not layer.built:
            continue
        if isinstance(layer, _MHA):
            holder = parent.get(id(layer), model)
            reason = ("no residual merge around it (its output is not added back to its input)"
                      if model_graph(holder) is not None else
                      f"it is inside {describe(holder)}, a subclassed layer whose call() cannot be "
                      "read (teach it with keras_metainit.transformers.register_block)")
            unidentified[id(layer)] = Unidentified(layer.path, type(layer).__name__, reason)
        elif "Attention" in type(layer).__name__ and _owns_kernel(layer):
            unidentified[id(layer)] = Unidentified(
                layer.path, type(layer).__name__,
                "an attention layer of a class the detector does not know (it reads "
                "keras.layers.MultiHeadAttention; teach a block with register_block)")
            placed.update(id(c) for c in _descendants(layer))
    role_of = {}
    for b in blocks:
        for layer in [b.layer] + b.attention + b.feedforward:
            if layer is not None:
                role_of[id(layer)] = b.role
    tables = _read_tables(graphs, role_of)
    present = sorted({b.role for b in blocks})
    embeddings = []
    for layer in layers:
        token = isinstance(layer, keras.layers.Embedding)
        positional = _hub_class(layer, "PositionEmbedding") or (token and _hub_class(
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
    start = {id(b): tables.position.get(id(b.layer if b.layer is not None else b.attention[0]),
                                        len(tables.position)) for b in blocks}
    blocks.sort(key=lambda b: start[id(b)])  # stable: in model order where the graphs say it
    return BlockScan(blocks, embeddings,
                     sorted(unidentified.values(), key=lambda u: u.name))
