"""Reading a functional graph: residual sub-layers, the blocks they form, the embedding tables.

In a functional model (the model's own graph, a Sequential's, a nested functional model's) each
residual merge, a ``keras.layers.Add`` (:class:`~keras_metainit.transformers.DeepNormResidual` is
one) or ``x + y`` on Keras tensors, one of whose inputs (the *skip*) lies upstream of the other
(the *branch*), is a sub-layer; the layers between the two are its branch. A branch that holds one
``keras.layers.MultiHeadAttention`` and no other kernel is an attention sub-layer (cross-attention
when the attention's value comes from outside the branch); a branch of ``Dense``/``EinsumDense``
layers is a feed-forward sub-layer. Along one residual stream (merge to merge through layers
without kernels: normalization, dropout, activations) a self-attention sub-layer starts a block,
and the cross-attention and feed-forward sub-layers after it join that block
(:func:`graph_blocks`). Every embedding table's calls are followed to the first block downstream
(:func:`read_tables`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import keras

from keras_metainit import _compat
from keras_metainit.layerwise.activations import describe
from keras_metainit.transformers.blocks import AttentionBlock, Unidentified

__all__ = ["graph_blocks", "read_tables", "GraphTables", "descendants", "owns_kernel", "MHA",
           "DENSE"]

MHA = keras.layers.MultiHeadAttention
DENSE = (keras.layers.Dense, keras.layers.EinsumDense)


def owns_kernel(op) -> bool:
    """Whether the operation (or a layer inside it) has a weight of rank >= 2."""
    return any(len(w.shape) >= 2 for w in getattr(op, "weights", []))


def _is_norm(op) -> bool:
    return isinstance(op, keras.layers.LayerNormalization) or "RMSNorm" in type(op).__name__


def _is_merge(op) -> bool:
    """``keras.layers.Add`` (and subclasses) or ``x + y`` on Keras tensors
    (``keras.src.ops.numpy.Add``)."""
    return isinstance(op, keras.layers.Add) or _compat.is_symbolic_add(op)


def _mha_tensors(node) -> Tuple[Any, Any]:
    """``(query, value)`` Keras tensors of a ``MultiHeadAttention`` node."""
    args, kwargs = _compat.call_arguments(node)
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
        depths = _compat.nodes_by_depth(graph)
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
        start = _compat.producing_node(branch)
        if start is None or id(start) not in below:
            return None
        seen, stack = {}, [start]
        while stack:
            n = stack.pop()
            if id(n) in seen or id(n) not in below:
                continue
            seen[id(n)] = n
            parents = (_compat.producing_node(t) for t in n.input_tensors)
            stack.extend(p for p in parents if p is not None)
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
                if len(n.input_tensors) != 1 or owns_kernel(op) or _is_merge(op):
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
        mhas = [n for n in branch if isinstance(n.operation, MHA)]
        others = [n.operation for n in branch if owns_kernel(n.operation)
                  and not isinstance(n.operation, (MHA,) + DENSE)]
        denses = [n.operation for n in branch if isinstance(n.operation, DENSE)]
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


def graph_blocks(graph) -> Tuple[List[AttentionBlock], Dict[int, Unidentified]]:
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
            starts = current is None or bool(current.feedforward)
            if s.kind == "self" or (s.kind == "cross" and starts):
                mha = next(op for op in ops if isinstance(op, MHA))
                norm = s.norm if s.norm == "pre" else "post" if normed_after[id(s)] else "none"
                current = AttentionBlock(mha.name, [mha], cross=s.kind == "cross", norm=norm,
                                         alpha=float(getattr(s.merge.operation, "alpha", 1.0)))
                blocks.append(current)
            elif s.kind == "cross":
                current.attention.append(next(op for op in ops if isinstance(op, MHA)))
                current.cross = True
            elif current is not None and not current.feedforward:
                current.feedforward = [op for op in ops if isinstance(op, DENSE)]
            else:
                first = next(op for op in ops if isinstance(op, DENSE))
                unidentified[id(first)] = Unidentified(
                    first.path, type(first).__name__,
                    "a residual feed-forward branch with no attention before it")
            s = follows.get(id(s))
    return blocks, unidentified



@dataclasses.dataclass
class GraphTables:
    """What the graphs say about the embedding tables and the order of the blocks."""

    roles: Dict[int, Set[str]]  # table id -> roles of the first block after each of its calls
    reversed: Set[int]          # ids of the tables called with reverse=True (an output head)
    position: Dict[int, int]    # layer id -> the first graph position of a node that calls it


def read_tables(graphs: Sequence[Any], role_of: Dict[int, str]) -> GraphTables:
    """Follow every call of an embedding table (a layer or one inside a layer) to the first block
    downstream of it."""
    out = GraphTables({}, set(), {})
    for graph in graphs:
        g = _Graph(graph)
        for node in g.nodes:
            out.position.setdefault(id(node.operation), len(out.position))
            if isinstance(node.operation, keras.Model):
                continue  # a nested model: its own graph is scanned
            tables = [t for t in [node.operation] + descendants(node.operation)
                      if isinstance(t, keras.layers.Embedding)]
            if not tables:
                continue
            if _compat.call_arguments(node)[1].get("reverse"):
                out.reversed.update(id(t) for t in tables)
                continue
            below = set().union(*(g.downstream(t) for t in node.output_tensors))
            role = next((r for r in (_role_in(n.operation, role_of) for n in g.nodes
                                     if id(n) in below) if r is not None), None)
            for t in tables:  # topological order: the first block met decides
                out.roles.setdefault(id(t), set()).update([role] if role else [])
    return out


def descendants(layer) -> List[Any]:
    """Every layer inside ``layer`` (none for an operation such as ``x + y``)."""
    if not isinstance(layer, keras.layers.Layer):
        return []
    return _compat.flatten_layers(layer, include_self=False)


def _role_in(op, role_of: Dict[int, str]) -> Optional[str]:
    """The role of the block that ``op`` is part of or holds, if any."""
    if id(op) in role_of:
        return role_of[id(op)]
    inner = [role_of[id(layer)] for layer in descendants(op) if id(layer) in role_of]
    return inner[0] if inner else None
