"""Which initialization to run on a model when the caller names none: :func:`choose`.

The rule, from regime 2 of the regime benchmarks (``benchmarks/regimes.py``, results in
``benchmarks/results/regimes.json``, rendered in docs/benchmarks.md; issue 21): a 6-block Post-LN
Transformer encoder (d 32, FFN 64) reversing random sequences, Adam without warmup, 400 steps,
5 seeds. From Keras's default init it stalls near chance at every rate measured; T-Fixup trains
it on every seed at every rate, in a tenth of a second; MetaInit (20 steps, about two minutes on
2 cores) trains it on some seeds only.

1. **Post-LN attention blocks** (:func:`keras_metainit.transformers.find_blocks` finds blocks
   whose LayerNormalization follows the residual addition; the model must be built):
   **T-Fixup** (``"t_fixup"``).
2. **Other attention layers** (``keras.layers.MultiHeadAttention``, ``GroupQueryAttention``,
   ``Attention``, ``AdditiveAttention``, at any depth of nesting; a Pre-LN stack, an unbuilt
   model, attention outside a recognized block): **MetaInit, 20 steps**
   (:data:`ATTENTION_STEPS`), the learned method that adapts to what it finds.
3. **Residual additions without normalization** (a ``keras.layers.Add`` and no normalization
   layer anywhere in the model): **MetaInit, 20 steps** (:data:`RESIDUAL_STEPS`). Regime 3: a
   residual MLP of 20 blocks without normalization at SGD 0.1 diverges on every seed from Keras's
   default and from He; LSUV (unit variance per layer: the residual stream still grows with
   depth) diverges on 2 of 5 and trains on 1; MetaInit trains on all 5. At 50 blocks all three,
   and MetaInit's 20 steps, diverge or stall: only Fixup (an analytic init of the suite, for a
   net you build yourself) trains it.
4. **Otherwise: LSUV** (``"lsuv"``), the cheapest data-driven method: it sets every layer's
   output variance, whatever the activation, and in the earlier benchmarks (docs/choosing.md) it
   was at or above the learned methods on plain nets from Keras's default init, from He and from
   bad scales.

The rule reads only the model's layers (no data, no forward pass), so it is cheap and
deterministic; the caller overrides it by naming a method. A residual connection written inside
a subclassed layer's ``call`` (``x + f(x)``, no ``Add`` layer) is not seen: name the method.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Tuple

import keras

__all__ = ["choose", "ATTENTION_STEPS", "RESIDUAL_STEPS", "attention_layers", "post_ln_blocks",
           "unnormalized_residuals"]

#: MetaInit's steps on a model with attention layers.
ATTENTION_STEPS = 20
#: MetaInit's steps on a residual model without normalization.
RESIDUAL_STEPS = 20

_NORMALIZATION_CLASSES = ("BatchNormalization", "LayerNormalization", "GroupNormalization",
                          "RMSNormalization", "UnitNormalization", "SpectralNormalization",
                          "LayerNorm", "RMSNorm")

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


def _of_class(model: Any, classes: Tuple[str, ...]) -> List[Any]:
    """The layers inside ``model`` (not itself) of one of ``classes`` by name, subclasses too."""
    return [layer for layer in _walk(model, set())
            if layer is not model and {cls.__name__ for cls in type(layer).__mro__} & set(classes)]


def unnormalized_residuals(model: keras.Model) -> List[keras.layers.Layer]:
    """The residual additions (``keras.layers.Add``) of a model without any normalization layer.

    Args:
        model: a Keras model or layer.

    Returns:
        The ``Add`` layers, or ``[]`` when there are none or the model normalizes anywhere
        (BatchNormalization, LayerNormalization, GroupNormalization, ...).

    Examples:
        >>> x = keras.Input((8,))
        >>> h = keras.layers.Add()([x, keras.layers.Dense(8)(x)])
        >>> len(unnormalized_residuals(keras.Model(x, h)))
        1
        >>> unnormalized_residuals(keras.Model(x, keras.layers.BatchNormalization()(h)))
        []
    """
    if _of_class(model, _NORMALIZATION_CLASSES):
        return []
    return _of_class(model, ("Add",))


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
    return _of_class(model, _ATTENTION_CLASSES)


def post_ln_blocks(model: keras.Model) -> List[Any]:
    """The Post-LN attention blocks of a built model (an unbuilt one has none to read).

    Args:
        model: a Keras model.

    Returns:
        The :class:`~keras_metainit.transformers.AttentionBlock` objects whose normalization
        follows the residual addition (``norm == "post"``).

    Examples:
        >>> x = keras.Input((8, 16))
        >>> h = keras.layers.LayerNormalization()(
        ...     keras.layers.Add()([x, keras.layers.MultiHeadAttention(2, 8)(x, x)]))
        >>> f = keras.layers.Dense(16)(keras.layers.Dense(32, activation="relu")(h))
        >>> y = keras.layers.LayerNormalization()(keras.layers.Add()([h, f]))
        >>> [block.norm for block in post_ln_blocks(keras.Model(x, y))]
        ['post']
    """
    from keras_metainit.transformers import find_blocks

    if not getattr(model, "built", False):
        return []
    return [block for block in find_blocks(model).blocks if block.norm == "post"]


def choose(model: keras.Model) -> Tuple[Any, str]:
    """The initialization to run on ``model`` when the caller names none, and why.

    The rule (module docstring, with its evidence): Post-LN attention blocks → T-Fixup; other
    attention layers → MetaInit with :data:`ATTENTION_STEPS` steps; residual additions without
    any normalization → MetaInit with :data:`RESIDUAL_STEPS` steps; otherwise LSUV.

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
        >>> x = keras.Input((8,))
        >>> resnet = keras.Model(x, keras.layers.Add()([x, keras.layers.Dense(8)(x)]))
        >>> type(choose(resnet)[0]).__name__
        'MetaInit'

    Reference:
        Issue 21 and ``benchmarks/regimes.py`` (regime 2, the Post-LN Transformer); Huang,
        Perez, Ba & Volkovs, "Improving Transformer Optimization Through Better
        Initialization" (T-Fixup), ICML 2020; Dauphin & Schoenholz, "MetaInit: Initializing
        learning by learning to initialize", NeurIPS 2019; Mishkin & Matas, "All you need is a
        good init" (LSUV), ICLR 2016.
    """
    from keras_metainit import methods

    attention = attention_layers(model)
    if not attention:
        residuals = unnormalized_residuals(model)
        if residuals:
            return (methods.get("metainit", steps=RESIDUAL_STEPS),
                    f"{len(residuals)} residual addition(s) and no normalization layer: MetaInit "
                    f"({RESIDUAL_STEPS} steps), which made a 20-block residual MLP train at SGD "
                    "0.1 on every seed where Keras's default, He and LSUV diverge "
                    "(benchmarks/regimes.py, regime 3)")
        return ("lsuv", "no attention layers and no unnormalized residual additions: LSUV, the "
                        "cheapest method, at or above the learned ones on plain nets "
                        "(docs/choosing.md)")
    post_ln = post_ln_blocks(model)
    if post_ln:
        return (methods.get("t_fixup"),
                f"{len(post_ln)} Post-LN attention block(s): T-Fixup, which made a Post-LN "
                "Transformer train without warmup on every seed where Keras's default init "
                "stalls (benchmarks/regimes.py, regime 2)")
    names = ", ".join(sorted({type(layer).__name__ for layer in attention}))
    return (methods.get("metainit", steps=ATTENTION_STEPS),
            f"{len(attention)} attention layer(s) ({names}) in no Post-LN block: MetaInit "
            f"({ATTENTION_STEPS} steps)")
