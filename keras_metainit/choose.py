"""Which initialization to run on a model when the caller names none: :func:`choose`.

The rule, from regime 2 of the regime benchmarks (``benchmarks/regimes.py``; issue 21):

1. **The model has attention layers** (``keras.layers.MultiHeadAttention``,
   ``GroupQueryAttention``, ``Attention``, ``AdditiveAttention``, at any depth of nesting):
   **MetaInit, 20 steps** (:data:`ATTENTION_STEPS`). A 6-block Post-LN Transformer encoder
   (d 32, FFN 64) reversing random sequences (vocabulary 16, length 16), Adam without warmup,
   400 steps of batch 64, held-out token accuracy, measured on 2026-12-06 (2-core CPU VM):

   - Adam 1e-3: Keras's default init 0.191 / 0.190 / 0.191 / 0.191 / 0.190 (5 seeds, 0 solved),
     He 0.167-0.175 (0/5), AnyInit 0.190-0.192 (0/5), a 100-step linear warmup 0.184 / 0.180
     (0/2); LSUV 1.000 on 5/5 seeds; MetaInit (20 steps) 1.000 on seeds 0 and 1.
   - Adam 3e-3: Keras's default 0.146-0.190 (0/5), the warmup 0.191 / 0.190 (0/2); LSUV 1.000 on
     1 seed of 5 (0.170-0.188 on the others); MetaInit (20 steps) 1.000 on seeds 0 and 1.

   MetaInit is the method that trained the net at both rates; its 5-seed rows were still running
   when the session's runs were stopped, so ``benchmarks/results/regimes.json`` does not hold
   them yet (issue 21 asks for >= 4 of 5 seeds).
2. **Otherwise: LSUV** (``"lsuv"``), the cheapest method: it sets every layer's output variance,
   whatever the activation, and in the earlier benchmarks (docs/choosing.md) it was at or above
   the learned methods on plain nets from Keras's default init, from He and from bad scales.

The rule reads only the model's layers (no data, no forward pass), so it is cheap and
deterministic; the caller can override it by naming a method.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Tuple

import keras

__all__ = ["choose", "ATTENTION_STEPS", "attention_layers"]

#: MetaInit's steps on a model with attention layers.
ATTENTION_STEPS = 20

_ATTENTION_CLASSES = ("MultiHeadAttention", "GroupedQueryAttention", "GroupQueryAttention",
                      "Attention", "AdditiveAttention", "CachedMultiHeadAttention")


def _walk(layer: Any, seen: set) -> Iterator[Any]:
    """Every layer inside ``layer`` (itself included), through sub-models and layers held as
    attributes (keras_hub's blocks hold their attention that way), each once."""
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    children: List[Any] = list(getattr(layer, "layers", None) or [])
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is not None:
        try:
            children += list(flatten(include_self=False, recursive=False))
        except TypeError:  # pragma: no cover - an older signature
            pass
    for child in children:
        yield from _walk(child, seen)


def attention_layers(model: keras.Model) -> List[keras.layers.Layer]:
    """The attention layers of ``model`` (by class, including subclasses), in walk order.

    Args:
        model: a Keras model or layer.

    Returns:
        A list of layers; empty for a model without attention.

    Examples:
        >>> inputs = keras.Input((8, 16))
        >>> model = keras.Model(inputs, keras.layers.MultiHeadAttention(2, 8)(inputs, inputs))
        >>> [type(layer).__name__ for layer in attention_layers(model)]
        ['MultiHeadAttention']
    """
    found = []
    for layer in _walk(model, set()):
        names = {cls.__name__ for cls in type(layer).__mro__}
        if layer is not model and names & set(_ATTENTION_CLASSES):
            found.append(layer)
    return found


def choose(model: keras.Model) -> Tuple[Any, str]:
    """The initialization to run on ``model`` when the caller names none, and why.

    The rule (module docstring, with its evidence): attention layers → MetaInit with
    :data:`ATTENTION_STEPS` steps; otherwise LSUV.

    Args:
        model: a Keras model (built or not: only its layers are read).

    Returns:
        ``(method, reason)``: ``method`` is what ``meta_initialize(method=...)`` takes (the
        string ``"lsuv"`` or a :class:`~keras_metainit.methods.MetaInit` object), ``reason`` one
        sentence for the report.

    Examples:
        >>> mlp = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> choose(mlp)[0]
        'lsuv'
        >>> tokens = keras.Input((6, 8))
        >>> block = keras.Model(tokens, keras.layers.MultiHeadAttention(2, 4)(tokens, tokens))
        >>> method, reason = choose(block)
        >>> type(method).__name__, method.steps
        ('MetaInit', 20)

    Reference:
        Issue 21 and ``benchmarks/regimes.py`` (regime 2, the Post-LN Transformer); Dauphin &
        Schoenholz, "MetaInit", NeurIPS 2019; Mishkin & Matas, "All you need is a good init"
        (LSUV), ICLR 2016.
    """
    from keras_metainit import methods

    attention = attention_layers(model)
    if attention:
        names = ", ".join(sorted({type(layer).__name__ for layer in attention}))
        return (methods.get("metainit", steps=ATTENTION_STEPS),
                f"the model has {len(attention)} attention layer(s) ({names}): MetaInit "
                f"({ATTENTION_STEPS} steps) made a 6-block Post-LN Transformer train without "
                "warmup at Adam 1e-3 and 3e-3, LSUV at 1e-3 only (benchmarks/regimes.py, "
                "regime 2)")
    return ("lsuv", "no attention layers: LSUV, the cheapest method, at or above the learned "
                    "ones on plain nets (docs/choosing.md)")
