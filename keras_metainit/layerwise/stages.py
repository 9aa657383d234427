"""Stages: how a kernel maps a layer's input to its pre-activations.

A stage is one linear map ``y = x ⋆ kernel (+ bias)`` of a layer. It computes its output (the
pre-activation) and, for the Sylvester solve, the *rows* its kernel multiplies, with the kernel
seen as ``groups`` matrices ``(fan_in, units)``: :class:`MatmulStage` (a product on trailing
axes), :class:`ConvStage` (a convolution on patches), :class:`GroupedConvStage` (one matrix per
group of channels), :class:`DepthwiseStage` (one matrix per channel) and :class:`TransposeStage`
(no matrix view: LSUV only). Which layer is which chain of
stages is :mod:`~keras_metainit.layerwise.kinds`.
"""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np

from keras_metainit.layerwise.activations import (
    conv_patches, depthwise_patches, in_chunks, to_numpy,
)

__all__ = ["Stage", "MatmulStage", "ConvStage", "GroupedConvStage", "DepthwiseStage",
           "TransposeStage"]

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
        kernel: the kernel variable, shape ``(*in_shape, *out_shape)`` once its axes are put in
            the order ``perm``.
        bias: the bias variable (broadcast on the trailing output axes), or None.
        in_axes: how many leading kernel axes (after ``perm``) contract the input's trailing axes
            (1 for Dense).
        perm: the order in which to read the kernel's axes (None: as they are), for an
            ``EinsumDense`` whose kernel stores them otherwise (``"btd,ndh->btnh"``:
            ``(1, 0, 2)``).
    """

    def __init__(self, kernel, bias=None, in_axes: int = 1, perm=None):
        super().__init__(kernel, bias)
        self.in_axes = in_axes
        self.perm = None if perm is None or tuple(perm) == tuple(range(len(kernel.shape))) \
            else tuple(perm)
        shape = tuple(int(d) for d in kernel.shape)
        #: the kernel's shape in the order the product reads it
        self.shape = shape if self.perm is None else tuple(shape[i] for i in self.perm)
        self.fan_in = int(np.prod(self.shape[:in_axes]))

    @property
    def units(self) -> int:
        return int(np.prod(self.shape[self.in_axes:]))

    def _kernel(self):
        k = super()._kernel()
        return k if self.perm is None else keras.ops.transpose(k, self.perm)

    def _output(self, x):
        k = keras.ops.reshape(self._kernel(), (self.fan_in, self.units))
        lead = tuple(x.shape[:len(x.shape) - self.in_axes])
        y = keras.ops.reshape(x, (-1, self.fan_in)) @ k
        y = keras.ops.reshape(y, lead + self.shape[self.in_axes:])
        return self._add_bias(y)

    def _rows(self, x):
        return np.asarray(x).reshape(-1, 1, self.fan_in)

    def matrix(self):
        k = to_numpy(self.kernel.value).astype(np.float64)
        k = k if self.perm is None else np.transpose(k, self.perm)
        return k.reshape(1, self.fan_in, self.units)

    def assign(self, w):
        k = np.asarray(w).reshape(self.shape)
        k = k if self.perm is None else np.transpose(k, np.argsort(self.perm))
        self.kernel.assign(k.astype(self.kernel.dtype))


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


class GroupedConvStage(ConvStage):
    """A grouped convolution (``Conv1D/2D/3D`` with ``groups=G > 1``): the input channels and the
    filters are split into ``G`` contiguous groups and group ``g``'s filters see only its
    ``cin/G`` channels, so the kernel is ``G`` matrices ``(prod(kernel_size)·cin/G, filters/G)``.
    ConvNeXt's depthwise convolutions are ``Conv2D(groups=channels)``.

    Args:
        kernel: the kernel variable ``(*kernel_size, cin/G, filters)``.
        bias: the bias variable ``(filters,)``, or None.
        strides: strides, one per spatial dimension.
        padding: ``"valid"``, ``"same"`` or ``"causal"``.
        dilation_rate: dilation, one per spatial dimension.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        groups: the layer's ``groups``.
    """

    def __init__(self, kernel, bias, strides, padding, dilation_rate, data_format, groups: int):
        super().__init__(kernel, bias, strides, padding, dilation_rate, data_format)
        self._groups = int(groups)

    @property
    def groups(self) -> int:
        return self._groups

    @property
    def units(self) -> int:
        return int(self.kernel.shape[-1]) // self._groups

    # the output is ConvStage's: keras.ops.conv infers the groups from the kernel's channels

    def _rows(self, x):
        p = conv_patches(x, self.kernel_size, **self.geometry)  # (..., taps · cin)
        taps, per_group = int(np.prod(self.kernel_size)), int(self.kernel.shape[-2])
        p = p.reshape(-1, taps, self._groups, per_group).transpose(0, 2, 1, 3)
        return p.reshape(-1, self._groups, taps * per_group)

    def matrix(self):
        k = to_numpy(self.kernel.value).astype(np.float64)
        return k.reshape(-1, self._groups, self.units).transpose(1, 0, 2)

    def assign(self, w):
        k = np.asarray(w).transpose(1, 0, 2)
        self.kernel.assign(k.reshape(tuple(self.kernel.shape)).astype(self.kernel.dtype))


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
