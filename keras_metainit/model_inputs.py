"""What a model takes as input, read from the model itself: every input's per-example shape, dtype
and token range (an integer input that feeds an ``Embedding`` draws below its vocabulary), and
the structure the inputs come in; and random inputs and labels drawn from it (NumPy, one
generator per batch, so every backend draws the same numbers). :mod:`keras_metainit.data` checks
data against it and draws from it for ``data=None``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, List, Optional

import keras
import numpy as np
from keras import tree

from keras_metainit import _compat
from keras_metainit.losses import LossSpec, model_graph

__all__ = ["InputSpec", "input_specs", "input_struct", "vocabulary_size", "random_inputs",
           "random_labels"]

# Integer inputs that feed no Embedding (or similar layer with a known vocabulary) draw from [0, 2).
DEFAULT_INT_HIGH = 2
# Random labels draw from their own stream: the inputs' seed plus this.
_LABEL_SEED = 1000003


@dataclasses.dataclass
class InputSpec:
    """One input of a model: its name, per-example shape, dtype and, for integer tokens, the
    bound of their range."""

    name: str
    shape: tuple  # per example
    dtype: str
    high: Optional[int] = None  # integer tokens drawn from [0, high)


def vocabulary_size(layer) -> Optional[int]:
    """The number of tokens a layer that takes integer tokens accepts (``input_dim`` of an
    ``Embedding``, ``num_tokens`` of ``CategoryEncoding``), or None."""
    for attr in ("input_dim", "num_tokens"):
        v = getattr(layer, attr, None)
        if isinstance(v, (int, np.integer)) and v > 0:
            return int(v)
    return None


def input_specs(model) -> Optional[List[InputSpec]]:
    """Per-example shape, dtype and token range of every input, in ``tree.flatten`` order of the
    model's input structure; None when unknown."""
    g = model_graph(model)
    if g is not None:
        inputs = tree.flatten(_compat.inputs_struct(g))
        consumers = {}
        for nodes in _compat.nodes_by_depth(g).values():
            for node in nodes:
                for t in node.input_tensors:
                    consumers.setdefault(id(t), []).append(node)
        specs = []
        for t in inputs:
            high = None
            queue, seen = [t], set()
            while queue:  # downstream while the values are still the raw (integer) input
                cur = queue.pop()
                if id(cur) in seen:
                    continue
                seen.add(id(cur))
                for node in consumers.get(id(cur), []):
                    size = vocabulary_size(node.operation)
                    if size is not None and not isinstance(node.operation, keras.Model):
                        high = size if high is None else min(high, size)
                        continue
                    for out in node.output_tensors:
                        if "int" in str(out.dtype):
                            queue.append(out)
            specs.append(InputSpec(t.name, tuple(t.shape[1:]), str(t.dtype), high))
        return specs
    if getattr(model, "built", False) and _compat.build_shapes(model):
        shapes = list(_compat.build_shapes(model).values())
        if all(isinstance(s, (tuple, list)) and (not s or not isinstance(s[0], (tuple, list)))
               for s in shapes):
            return [InputSpec(f"input_{i}", tuple(s[1:]), keras.config.floatx())
                    for i, s in enumerate(shapes)]
    return None


def input_struct(model):
    g = model_graph(model)
    if g is not None:
        return tree.lists_to_tuples(_compat.inputs_struct(g))
    specs = input_specs(model)
    return None if specs is None or len(specs) == 1 else tuple(range(len(specs)))


# ----------------------------------------------------------------------------------------------
# Random inputs and labels (NumPy, one generator per batch: the same draws on every backend)
# ----------------------------------------------------------------------------------------------
def random_inputs(model, batch_size: int, seed: int) -> Callable[[int], Iterator[Any]]:
    """A source (``source(epoch)``: one endless pass) of batches of random inputs for every
    input of the model: batch ``i`` from NumPy's generator seeded by ``(seed, i)``."""
    specs = input_specs(model)
    struct = input_struct(model)

    def draw(rng, spec):
        shape = (batch_size,) + spec.shape
        dtype = np.dtype(spec.dtype)
        if spec.high is not None or dtype.kind in "iu":
            high = spec.high if spec.high is not None else DEFAULT_INT_HIGH
            return rng.integers(0, high, shape).astype(dtype)
        if dtype.kind == "b":
            return rng.integers(0, 2, shape) > 0
        if dtype.kind != "f":
            raise ValueError(f"`data=None` cannot draw random inputs of dtype {spec.dtype} "
                             f"(input {spec.name!r}); pass data.")
        return rng.standard_normal(shape).astype(dtype)

    def source(epoch: int = 0):
        i = 0
        while True:
            rng = np.random.default_rng([seed, i])
            xs = [draw(rng, spec) for spec in specs]
            yield xs[0] if struct is None or not tree.is_nested(struct) else \
                tree.pack_sequence_as(struct, xs)
            i += 1

    return source


def random_labels(loss_spec: LossSpec, seed: int, y_pred):
    """``add(x, i)``: ``(x, y)`` with labels drawn, in each output's loss format, for batch ``i``
    of data that has none: classes uniform over the output units, {0, 1} for binary losses,
    N(0, 1) targets for regression."""
    outs = [(o.label_kind, o.units or 1,
             tuple(d or 1 for d in LossSpec._at(y_pred, o.path).shape[1:]) or (1,))
            for o in loss_spec.outputs]

    def one(rng, kind, units, shape, n):
        if kind in ("sparse", "onehot"):
            y = rng.integers(0, units, (n,) + shape[:-1])
            return np.eye(units, dtype="float32")[y] if kind == "onehot" else y
        if kind == "binary":
            return rng.integers(0, 2, (n,) + shape).astype("float32")
        return rng.standard_normal((n,) + shape).astype("float32")

    def add(x, i):
        n = int(tree.flatten(x)[0].shape[0])
        rng = np.random.default_rng([seed + _LABEL_SEED, i])
        ys = [one(rng, *out, n) for out in outs]
        return x, (ys[0] if len(ys) == 1 else tuple(ys))

    return add
