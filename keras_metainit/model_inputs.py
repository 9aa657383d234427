"""What a model takes as input, read from the model itself: every input's per-example shape, dtype
and token range (an integer input that feeds an ``Embedding`` draws below its vocabulary), and
the structure the inputs come in. :mod:`keras_metainit.data` draws random inputs and checks data
against it.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import keras
import numpy as np
from keras import tree

from keras_metainit import _compat
from keras_metainit.losses import model_graph

__all__ = ["InputSpec", "input_specs", "input_struct", "vocabulary_size"]


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
