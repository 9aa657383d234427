"""Layer kinds: each settable layer seen as a chain of linear stages with matrix views.

A layer-wise method never calls a layer's ``call`` to change it: it reads the layer through a
:class:`LayerView`, a list of :class:`Stage` objects and the activation after the last one. A
stage is one linear map ``y = x ⋆ kernel (+ bias)`` that can compute its output (the
pre-activation) and, for the Sylvester solve, the *rows* its kernel multiplies, with the kernel
seen as ``groups`` matrices ``(fan_in, units)``:

| layer | stages (groups × fan_in × units) |
| --- | --- |
| ``Dense``, ``EinsumDense`` (a product on trailing axes) | one matmul, 1 × in × out |
| ``Conv1D/2D/3D`` (``groups=1``) | one convolution on patches, 1 × (prod(kernel_size)·cin) × filters |
| ``DepthwiseConv1D/2D`` | per channel, cin × prod(kernel_size) × depth_multiplier |
| ``SeparableConv1D/2D`` | depthwise stage, then the pointwise 1×1 convolution |
| ``Conv1D/2D/3DTranspose`` | one stage without a matrix view (LSUV only) |

Any other layer is skipped with a reason. To teach the layer-wise methods a custom layer,
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

from keras_metainit.layerwise.activations import (
    LayerwiseError, conv_patches, depthwise_patches, describe, in_chunks, pooled_variance,
    to_numpy,
)

__all__ = ["Stage", "MatmulStage", "ConvStage", "DepthwiseStage", "TransposeStage", "LayerView",
           "register_layer", "view_of", "preactivation", "preactivation_variance"]

_ROW_CHUNK = 1 << 24  # floats of patches built at a time (64 MB)


class Stage:
    """One linear map of a layer, ``y = x ⋆ kernel (+ bias)``.

    Subclasses define :meth:`output` and, when the kernel has a matrix view, :meth:`_rows`,
    :meth:`matrix` and :meth:`assign`.

    Args:
        kernel: the kernel variable.
        bias: the bias variable, or None.
    """

    #: the kernel as ``groups`` independent matrices ``(fan_in, units)``
    groups: int = 1
    #: whether :meth:`rows`, :meth:`matrix` and :meth:`assign` exist (the Sylvester solve)
    has_matrix_view: bool = True

    def __init__(self, kernel, bias=None):
        self.kernel, self.bias = kernel, bias

    # -- to define ------------------------------------------------------------------------------
    def _output(self, x):
        raise NotImplementedError

    def _rows(self, x) -> np.ndarray:
        raise NotImplementedError

    def matrix(self) -> np.ndarray:
        """The kernel as ``(groups, fan_in, units)``, float64."""
        k = to_numpy(self.kernel.value).astype(np.float64)
        return k.reshape(1, -1, k.shape[-1])

    def assign(self, w: np.ndarray) -> None:
        """Write ``(groups, fan_in, units)`` matrices back in the kernel's own layout."""
        self.kernel.assign(np.asarray(w).reshape(tuple(self.kernel.shape)).astype(self.kernel.dtype))

    # -- shared ---------------------------------------------------------------------------------
    @property
    def units(self) -> int:
        """Output units of one group (the ``k`` of the Sylvester solve)."""
        return int(self.kernel.shape[-1])

    def output(self, x) -> np.ndarray:
        """The stage's output (pre-activation, bias included) on ``x``, NumPy float32."""
        return in_chunks(lambda c: self._output(keras.ops.cast(c, "float32")), x)

    def _kernel(self):
        return keras.ops.cast(self.kernel.value, "float32")

    def _add_bias(self, y, channels_first: bool = False):
        if self.bias is None:
            return y
        b = keras.ops.cast(self.bias.value, "float32")
        if channels_first:
            b = keras.ops.reshape(b, (-1,) + (1,) * (len(y.shape) - 2))
        return y + b

    def rows_per_example(self, x) -> int:
        """Rows one example gives the kernel (positions of a convolution, 1 for a vector)."""
        return self._rows(x[:1]).shape[0]

    def rows(self, x, keep: Optional[np.ndarray] = None) -> np.ndarray:
        """The input vectors the kernel multiplies, ``(n, groups, fan_in)`` float64.

        Args:
            x: the stage's input (one call's activations, one row per example).
            keep: sorted indices of the rows to keep, numbered example by example (row ``i``
                comes from example ``i // rows_per_example``); all rows when None.

        Returns:
            The rows, built a slice of examples at a time so that only the kept ones are held.
        """
        per = self.rows_per_example(x)
        n = x.shape[0]
        if keep is None:
            keep = np.arange(n * per)
        step = max(1, _ROW_CHUNK // max(1, per * int(np.prod(x.shape[1:]))))
        out = []
        for start in range(0, n, step):
            lo, hi = np.searchsorted(keep, [start * per, min(n, start + step) * per])
            if hi > lo:
                r = self._rows(x[start:start + step])
                out.append(r[keep[lo:hi] - start * per])
        return np.concatenate(out).astype(np.float64)


class MatmulStage(Stage):
    """``x @ kernel + bias`` on the trailing axes (``Dense``; ``EinsumDense`` of that form).

    Args:
        kernel: the kernel variable, shape ``(*in_shape, *out_shape)``.
        bias: the bias variable (broadcast on the trailing output axes), or None.
        in_axes: how many leading kernel axes contract the input's trailing axes (1 for Dense).
    """

    def __init__(self, kernel, bias=None, in_axes: int = 1):
        super().__init__(kernel, bias)
        self.in_axes = in_axes
        self.fan_in = int(np.prod(kernel.shape[:in_axes]))

    @property
    def units(self) -> int:
        return int(np.prod(self.kernel.shape[self.in_axes:]))

    def _output(self, x):
        k = keras.ops.reshape(self._kernel(), (self.fan_in, self.units))
        lead = tuple(x.shape[:len(x.shape) - self.in_axes])
        y = keras.ops.reshape(x, (-1, self.fan_in)) @ k
        y = keras.ops.reshape(y, lead + tuple(self.kernel.shape[self.in_axes:]))
        return self._add_bias(y)

    def _rows(self, x):
        return np.asarray(x).reshape(-1, 1, self.fan_in)

    def matrix(self):
        return to_numpy(self.kernel.value).astype(np.float64).reshape(1, self.fan_in, self.units)


class ConvStage(Stage):
    """A convolution (``groups=1``) of any rank; rows are :func:`conv_patches`.

    Args:
        kernel: the kernel variable ``(*kernel_size, cin, filters)``.
        bias: the bias variable ``(filters,)``, or None.
        strides: strides, one per spatial dimension.
        padding: ``"valid"``, ``"same"`` or ``"causal"``.
        dilation_rate: dilation, one per spatial dimension.
        data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    def __init__(self, kernel, bias, strides, padding, dilation_rate, data_format):
        super().__init__(kernel, bias)
        self.kernel_size = tuple(kernel.shape[:-2])
        self.geometry = dict(strides=tuple(strides), padding=padding,
                             dilation_rate=tuple(dilation_rate), data_format=data_format)

    def _input(self, x):
        g = self.geometry
        if g["padding"] != "causal":
            return x, g["padding"]
        pad = g["dilation_rate"][0] * (self.kernel_size[0] - 1)
        axis = 1 if g["data_format"] == "channels_last" else 2
        widths = [[0, 0]] * 3
        widths[axis] = [pad, 0]
        return keras.ops.pad(x, widths), "valid"

    def _output(self, x):
        g = self.geometry
        x, padding = self._input(x)
        y = keras.ops.conv(x, self._kernel(), strides=g["strides"], padding=padding,
                           dilation_rate=g["dilation_rate"], data_format=g["data_format"])
        return self._add_bias(y, g["data_format"] == "channels_first")

    def _rows(self, x):
        p = conv_patches(x, self.kernel_size, **self.geometry)
        return p.reshape(-1, 1, p.shape[-1])


class DepthwiseStage(ConvStage):
    """A depthwise convolution: channel ``c`` has its own ``(prod(kernel_size), multiplier)``
    matrix, so the kernel is ``cin`` groups; output channel ``c·multiplier + m``.

    Args:
        kernel: the kernel variable ``(*kernel_size, cin, multiplier)``.
        bias: the bias variable ``(cin·multiplier,)``, or None.
        strides: strides, one per spatial dimension.
        padding: ``"valid"`` or ``"same"``.
        dilation_rate: dilation, one per spatial dimension.
        data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    @property
    def groups(self) -> int:
        return int(self.kernel.shape[-2])

    def _output(self, x):
        g = self.geometry
        y = keras.ops.depthwise_conv(x, self._kernel(), strides=g["strides"],
                                     padding=g["padding"], dilation_rate=g["dilation_rate"],
                                     data_format=g["data_format"])
        return self._add_bias(y, g["data_format"] == "channels_first")

    def _rows(self, x):
        p = depthwise_patches(x, self.kernel_size, **self.geometry)
        return p.reshape((-1,) + p.shape[-2:])

    def matrix(self):
        k = to_numpy(self.kernel.value).astype(np.float64)
        return np.swapaxes(k.reshape(-1, k.shape[-2], k.shape[-1]), 0, 1)

    def assign(self, w):
        k = np.swapaxes(np.asarray(w), 0, 1)
        self.kernel.assign(k.reshape(tuple(self.kernel.shape)).astype(self.kernel.dtype))


class TransposeStage(ConvStage):
    """A transposed convolution. No matrix view (a sum over overlapping kernel taps): LSUV sets
    it, the Sylvester solve does not.

    Args:
        kernel: the kernel variable ``(*kernel_size, filters, cin)``.
        bias: the bias variable ``(filters,)``, or None.
        strides: strides, one per spatial dimension.
        padding: ``"valid"`` or ``"same"``.
        dilation_rate: dilation, one per spatial dimension.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        output_padding: the layer's ``output_padding``.
    """

    has_matrix_view = False

    def __init__(self, kernel, bias, strides, padding, dilation_rate, data_format,
                 output_padding=None):
        super().__init__(kernel, bias, strides, padding, dilation_rate, data_format)
        self.output_padding = output_padding

    @property
    def units(self) -> int:
        return int(self.kernel.shape[-2])

    def _output(self, x):
        g = self.geometry
        y = keras.ops.conv_transpose(x, self._kernel(), strides=g["strides"], padding=g["padding"],
                                     output_padding=self.output_padding,
                                     dilation_rate=g["dilation_rate"],
                                     data_format=g["data_format"])
        return self._add_bias(y, g["data_format"] == "channels_first")


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


def _kernel_var(layer):
    """The kernel variable (``_kernel`` where ``kernel`` is a property over it)."""
    v = getattr(layer, "_kernel", None)
    return v if v is not None else layer.kernel


def _dense(layer) -> LayerView:
    kernel = _kernel_var(layer)
    return LayerView([MatmulStage(kernel, layer.bias, 1)], layer.activation)


def _einsum_in_axes(equation: str, kernel_rank: int) -> Optional[int]:
    """How many leading kernel axes contract the input's trailing axes, or None when the
    equation is not ``x[..., A] · k[A, B] -> y[..., B]``."""
    try:
        lhs, out = equation.replace(" ", "").split("->")
        inp, ker = lhs.split(",")
    except ValueError:
        return None
    inp, out = inp.replace("...", ""), out.replace("...", "")
    s = 0
    while s < len(ker) and ker[s] not in out:
        s += 1
    if not 0 < s < len(ker) or len(ker) != kernel_rank:
        return None
    if not inp.endswith(ker[:s]) or not out.endswith(ker[s:]):
        return None
    if inp[:len(inp) - s] != out[:len(out) - (len(ker) - s)]:
        return None
    return s


def _einsum(layer):
    s = _einsum_in_axes(layer.equation, len(layer.kernel.shape))
    if s is None:
        return f"EinsumDense equation {layer.equation!r} is not a product on trailing axes"
    kernel = _kernel_var(layer)
    return LayerView([MatmulStage(kernel, layer.bias, s)], layer.activation)


def _conv(layer):
    if getattr(layer, "groups", 1) != 1:
        return f"grouped convolution (groups={layer.groups})"
    kernel = _kernel_var(layer)
    return LayerView([ConvStage(kernel, layer.bias, *_conv_args(layer))], layer.activation)


def _depthwise(layer):
    kernel = _kernel_var(layer)
    return LayerView([DepthwiseStage(kernel, layer.bias, *_conv_args(layer))], layer.activation)


def _separable(layer):
    ones = (1,) * layer.rank
    return LayerView([
        DepthwiseStage(layer.depthwise_kernel, None, *_conv_args(layer)),
        ConvStage(layer.pointwise_kernel, layer.bias, ones, "valid", ones, layer.data_format),
    ], layer.activation)


def _transpose(layer):
    kernel = _kernel_var(layer)
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


def register_layer(layer_class: Type[keras.layers.Layer],
                   view: Callable[[keras.layers.Layer], LayerView]) -> None:
    """Teach LSUV and Sylvester a layer class: how it is linear.

    Args:
        layer_class: the class (its subclasses match too); a registration wins over the
            built-in kinds.
        view: a function of a built layer returning its :class:`LayerView` (or a string: the
            reason to skip that layer).

    Example:
        >>> class Affine(keras.layers.Layer):      # y = relu(x @ w + b)
        ...     def build(self, shape):
        ...         self.w = self.add_weight((shape[-1], 8))
        ...         self.b = self.add_weight((8,), initializer="zeros")
        ...     def call(self, x):
        ...         return keras.activations.relu(x @ self.w + self.b)
        >>> register_layer(Affine, lambda layer: LayerView(
        ...     [MatmulStage(layer.w, layer.b)], activation=keras.activations.relu))
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ValueError("Argument `layer_class` must be a subclass of keras.layers.Layer. "
                         f"Received: layer_class={layer_class!r}")
    if not callable(view):
        raise ValueError(f"Argument `view` must be callable. Received: view={view!r}")
    _REGISTERED[layer_class] = view


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
        return "Embedding: a lookup table, it has no input activations to fit"
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

    Example:
        >>> v = preactivation_variance(model.layers[1], layer_input(model, model.layers[1], x))
    """
    view = _view_or_raise(layer)
    parts = x_in if isinstance(x_in, list) else [x_in]
    return finite_variance([view.preactivation(x) for x in parts], layer)


def stage_variance(view: LayerView, index: int, xs: Sequence[np.ndarray], layer) -> float:
    """Variance of stage ``index``'s output over every call's input ``xs`` (current weights)."""
    return finite_variance([view.stage_inputs(x, index + 1) for x in xs], layer)
