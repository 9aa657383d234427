"""Layer kinds: which Keras layer is which view, a chain of linear stages and an activation.

A layer-wise method never calls a layer's ``call`` to change it: it reads the layer through a
:class:`LayerView`, a list of :class:`~keras_metainit.layerwise.stages.Stage` objects (each one
linear map ``y = x ⋆ kernel (+ bias)`` with, for the Sylvester solve, the kernel seen as
``groups`` matrices ``(fan_in, units)``) and the activation after the last one:

| layer | stages (groups × fan_in × units) |
| --- | --- |
| ``Dense``, ``EinsumDense`` (a product on trailing axes) | one matmul, 1 × in × out |
| ``Conv1D/2D/3D`` | one convolution on patches, 1 × (prod(kernel_size)·cin) × filters |
| ``Conv1D/2D/3D`` with ``groups=G`` | per group, G × (prod(kernel_size)·cin/G) × filters/G |
| ``DepthwiseConv1D/2D`` | per channel, cin × prod(kernel_size) × depth_multiplier |
| ``SeparableConv1D/2D`` | depthwise stage, then the pointwise 1×1 convolution |
| ``Conv1D/2D/3DTranspose`` | one stage without a matrix view (LSUV only) |

An ``EinsumDense`` kernel may store its axes in another order (keras_hub Gemma's
``"btd,ndh->btnh"``): the stage reads it transposed. keras_hub's layers are known as keras.layers
are (by class: keras_hub is not imported): its ``ReversibleEmbedding`` is an ``Embedding`` and its
``PositionEmbedding`` a lookup table, both skipped as lookups; ``ViTPatchingAndEmbedding`` owns
only its class token (a learned input; its patch ``Conv2D`` and position table are layers of their
own); ``MaskedLMHead``'s output kernel reads its own ``Dense`` and normalization (the ``Dense`` is
set). Any other layer is skipped with a reason. To teach the layer-wise methods a custom layer,
register a function that returns its view::

    class Affine(keras.layers.Layer):          # y = relu(x @ w + b)
        ...

    layerwise.register_layer(Affine, lambda layer: layerwise.LayerView(
        [layerwise.MatmulStage(layer.w, layer.b)], activation=keras.activations.relu))

Before a layer is set, the walk checks on a probe batch that ``activation(view(x))`` equals what
the layer returned; a layer that does not match (a subclass that overrides ``call``) is skipped.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type

import keras
import numpy as np

from keras_metainit import _compat
from keras_metainit.layerwise.activations import (
    LayerwiseError, describe, pooled_variance, to_numpy,
)
from keras_metainit.layerwise.stages import (
    ConvStage, DepthwiseStage, GroupedConvStage, MatmulStage, Stage, TransposeStage,
)

__all__ = ["LayerView", "register_layer", "view_of", "preactivation", "preactivation_variance",
           "is_keras_hub"]


class LayerView:
    """A layer as linear stages followed by an activation.

    Args:
        stages: the stages in the order the layer applies them (each one's output is the next
            one's input).
        activation: what the layer applies to the last stage's output (None: the identity).
    """

    def __init__(self, stages: Sequence[Stage], activation: Optional[Callable] = None):
        self.stages = list(stages)
        self.activation = activation

    @property
    def variables(self) -> List:
        """The variables a method may write (kernels and biases)."""
        return [v for s in self.stages for v in (s.kernel, s.bias) if v is not None]

    def stage_inputs(self, x, upto: int) -> np.ndarray:
        """The input of stage ``upto`` given the layer's input ``x`` (current weights)."""
        for stage in self.stages[:upto]:
            x = stage.output(x)
        return x

    def preactivation(self, x) -> np.ndarray:
        """The layer's output before its activation."""
        return self.stage_inputs(x, len(self.stages))

    def output(self, x) -> np.ndarray:
        """The layer's output as the view computes it (used to check the view)."""
        z = self.preactivation(x)
        return z if self.activation is None else to_numpy(self.activation(z))


# ----------------------------------------------------------------------------------------------
# The kinds
# ----------------------------------------------------------------------------------------------
def _conv_args(layer) -> Tuple:
    return layer.strides, layer.padding, layer.dilation_rate, layer.data_format


def _dense(layer) -> LayerView:
    kernel = _compat.kernel_variable(layer)
    return LayerView([MatmulStage(kernel, layer.bias, 1)], layer.activation)


def _einsum_in_axes(equation: str, kernel_rank: int) -> Optional[Tuple[int, Tuple[int, ...]]]:
    """``(s, perm)`` when the equation is a product on the input's trailing axes,
    ``x[..., A] · k[A, B] -> y[..., B]`` once the kernel's axes are put in the order ``perm``
    (``s`` = how many of them contract the input); None otherwise.

    ``"ab,bc->ac"`` gives ``(1, (0, 1))``; Gemma's per-head projection ``"btd,ndh->btnh"``
    (keras_hub) gives ``(1, (1, 0, 2))``: the kernel read as ``(d, n, h)``.
    """
    try:
        lhs, out = equation.replace(" ", "").split("->")
        inp, ker = lhs.split(",")
    except ValueError:
        return None
    inp, out = inp.replace("...", ""), out.replace("...", "")
    if len(ker) != kernel_rank or len(set(ker)) != len(ker):
        return None
    contracted = [c for c in inp if c in ker and c not in out]   # in the input's order
    produced = [c for c in out if c in ker and c not in inp]     # in the output's order
    s = len(contracted)
    if not s or not produced or s + len(produced) != len(ker):
        return None  # a kernel axis in both input and output (per-head weights), or none
    if not inp.endswith("".join(contracted)) or not out.endswith("".join(produced)):
        return None
    if inp[:len(inp) - s] != out[:len(out) - len(produced)]:
        return None
    return s, tuple(ker.index(c) for c in contracted + produced)


def _einsum(layer):
    found = _einsum_in_axes(layer.equation, len(layer.kernel.shape))
    if found is None:
        return f"EinsumDense equation {layer.equation!r} is not a product on trailing axes"
    kernel = _compat.kernel_variable(layer)
    return LayerView([MatmulStage(kernel, layer.bias, *found)], layer.activation)


def _conv(layer):
    kernel, groups = _compat.kernel_variable(layer), getattr(layer, "groups", 1)
    stage = (ConvStage(kernel, layer.bias, *_conv_args(layer)) if groups == 1
             else GroupedConvStage(kernel, layer.bias, *_conv_args(layer), groups))
    return LayerView([stage], layer.activation)


def _depthwise(layer):
    kernel = _compat.kernel_variable(layer)
    return LayerView([DepthwiseStage(kernel, layer.bias, *_conv_args(layer))], layer.activation)


def _separable(layer):
    ones = (1,) * layer.rank
    return LayerView([
        DepthwiseStage(layer.depthwise_kernel, None, *_conv_args(layer)),
        ConvStage(layer.pointwise_kernel, layer.bias, ones, "valid", ones, layer.data_format),
    ], layer.activation)


def _transpose(layer):
    kernel = _compat.kernel_variable(layer)
    return LayerView([TransposeStage(kernel, layer.bias, *_conv_args(layer),
                                     output_padding=layer.output_padding)], layer.activation)


_L = keras.layers
_BUILTIN: List[Tuple[Type, Callable]] = [
    (_L.SeparableConv1D, _separable), (_L.SeparableConv2D, _separable),
    (_L.DepthwiseConv1D, _depthwise), (_L.DepthwiseConv2D, _depthwise),
    (_L.Conv1DTranspose, _transpose), (_L.Conv2DTranspose, _transpose),
    (_L.Conv3DTranspose, _transpose),
    (_L.Conv1D, _conv), (_L.Conv2D, _conv), (_L.Conv3D, _conv),
    (_L.Dense, _dense), (_L.EinsumDense, _einsum),
]
_REGISTERED: Dict[Type, Callable] = {}
#: keras_hub layers that own a kernel but are no linear map of their input, and why (matched by
#: class name in keras_hub's modules, so keras_hub is never imported)
_KERAS_HUB = {
    "PositionEmbedding": "a lookup table of positions, it has no input activations to fit",
    "ViTPatchingAndEmbedding": ("its own weight is the class token, a learned input with no input "
                                "activations to fit (its patch Conv2D and position table are set "
                                "or skipped on their own)"),
    "MaskedLMHead": ("its output kernel multiplies the output of its own Dense and normalization, "
                     "not its input (its Dense is set on its own)"),
}


def register_layer(layer_class: Type[keras.layers.Layer],
                   view: Callable[[keras.layers.Layer], LayerView]) -> None:
    """Teach LSUV and Sylvester a layer class: how it is linear.

    Args:
        layer_class: the class (its subclasses match too); a registration wins over the
            built-in kinds.
        view: a function of a built layer returning its :class:`LayerView` (or a string: the
            reason to skip that layer).

    Examples:
        >>> import keras, keras_metainit, numpy as np
        >>> from keras_metainit.layerwise import LayerView, MatmulStage, register_layer
        >>> class Affine(keras.layers.Layer):      # y = relu(x @ w + b)
        ...     def build(self, shape):
        ...         self.w = self.add_weight((shape[-1], 8))
        ...         self.b = self.add_weight((8,), initializer="zeros")
        ...     def call(self, x):
        ...         return keras.activations.relu(x @ self.w + self.b)
        >>> register_layer(Affine, lambda layer: LayerView(
        ...     [MatmulStage(layer.w, layer.b)], activation=keras.activations.relu))
        >>> model = keras.Sequential([keras.Input((12,)), Affine(), keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(64, 12)).astype("float32")
        >>> report = keras_metainit.meta_initialize(model, x, method="lsuv", verbose=0)
        >>> [row["status"] for row in report.layers]  # Affine is set, not skipped
        ['set', 'set']
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ValueError("Argument `layer_class` must be a subclass of keras.layers.Layer. "
                         f"Received: layer_class={layer_class!r}")
    if not callable(view):
        raise ValueError(f"Argument `view` must be callable. Received: view={view!r}")
    _REGISTERED[layer_class] = view


def is_keras_hub(layer, *names: str) -> bool:
    """Whether ``layer`` is an instance of a keras_hub class of one of these names, read from its
    class hierarchy: keras_hub is never imported, so it stays optional.

    Args:
        layer: any object.
        *names: class names (``"PositionEmbedding"``, ``"TransformerEncoder"``, ...).

    Returns:
        True when a class of ``layer``'s hierarchy has one of the names and lives in keras_hub.
    """
    return any(c.__name__ in names and c.__module__.startswith("keras_hub.")
               for c in type(layer).__mro__)


def view_of(layer: keras.layers.Layer):
    """The layer's :class:`LayerView`, or the reason it cannot be set (a string).

    Args:
        layer: a built layer.

    Returns:
        A :class:`LayerView`, or a string saying why the layer is skipped.
    """
    if getattr(layer, "quantization_mode", None):
        return f"quantized ({layer.quantization_mode})"
    if getattr(layer, "lora_enabled", False):
        return "LoRA enabled"
    if not layer.built:
        return "not built"
    for table in (list(_REGISTERED.items())[::-1], _BUILTIN):
        for cls, fn in table:
            if isinstance(layer, cls):
                return fn(layer)
    if isinstance(layer, _L.Embedding):
        return f"{type(layer).__name__}: a lookup table, it has no input activations to fit" + (
            " (its reverse call, the output projection, shares the table)"
            if getattr(layer, "tie_weights", False) else "")
    hub = next((reason for name, reason in _KERAS_HUB.items() if is_keras_hub(layer, name)), None)
    if hub is not None:
        return f"{type(layer).__name__}: {hub}"
    if hasattr(layer, "recurrent_kernel"):
        return (f"recurrent cell {type(layer).__name__}: its input at each step depends on its "
                "own output")
    return (f"unsupported layer kind {type(layer).__name__} (teach it with "
            "keras_metainit.layerwise.register_layer)")


def _view_or_raise(layer) -> LayerView:
    view = view_of(layer)
    if isinstance(view, str):
        raise ValueError(f"Layer {describe(layer)} has no linear view: {view}.")
    return view


def preactivation(layer: keras.layers.Layer, x_in) -> np.ndarray:
    """The layer's output before its activation (``x_in @ kernel + bias``, the convolution, ...).

    Computed from the layer's variables through its :class:`LayerView`; the layer is not called
    and not changed.

    Args:
        layer: a built layer of a kind :func:`view_of` knows.
        x_in: its inputs.

    Returns:
        The pre-activations as a NumPy array.
    """
    return _view_or_raise(layer).preactivation(x_in)


def finite_variance(parts: Sequence[np.ndarray], layer) -> float:
    """:func:`pooled_variance` of pre-activations; :class:`LayerwiseError` if not finite."""
    if not all(np.all(np.isfinite(z)) for z in parts):
        raise LayerwiseError(f"The pre-activation of layer {describe(layer)} contains NaN or Inf "
                             "(non-finite weights?).")
    return pooled_variance(parts)


def preactivation_variance(layer: keras.layers.Layer, x_in) -> float:
    """Variance of the layer's pre-activation over all its elements (LSUV's ``Var(B_L)``).

    Args:
        layer: a built layer of a kind :func:`view_of` knows.
        x_in: its inputs (one batch), or a list of them (one per call of a shared layer).

    Returns:
        The variance, computed in float64.

    Raises:
        LayerwiseError: the pre-activation is not finite.

    Examples:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu"),
        ...                           keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
        >>> from keras_metainit.layerwise import layer_input, preactivation_variance
        >>> dense = model.layers[1]
        >>> h = layer_input(model, dense, x)
        >>> v = preactivation_variance(dense, h)  # of h @ kernel + bias, before any activation
        >>> bool(np.isclose(v, np.var(h @ dense.kernel.numpy() + dense.bias.numpy()), rtol=1e-4))
        True
    """
    view = _view_or_raise(layer)
    parts = x_in if isinstance(x_in, list) else [x_in]
    return finite_variance([view.preactivation(x) for x in parts], layer)


def stage_variance(view: LayerView, index: int, xs: Sequence[np.ndarray], layer) -> float:
    """Variance of stage ``index``'s output over every call's input ``xs`` (current weights)."""
    return finite_variance([view.stage_inputs(x, index + 1) for x in xs], layer)
