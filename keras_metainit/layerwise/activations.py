"""Activations: a layer's inputs where it is called, image patches, pooled variances.

A layer's input is read where the layer is called, as a forward hook would: its ``call`` is
wrapped for the duration of one forward pass of the whole model (``model(x, training=False)``),
the wrapper records the arguments, and the pass stops as soon as every needed call has been seen.
This works for Sequential, Functional and subclassed models, nested models and layers inside
blocks alike, and sees every call of a shared layer.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any, Callable, Iterable, List, Sequence, Tuple

import keras
import numpy as np
from keras import tree

from keras_metainit import autodiff as ad

__all__ = ["LayerwiseError", "conv_patches", "layer_inputs", "layer_input", "num_examples",
           "take", "pooled_variance"]

CHUNK = 256  # examples per forward call when reading activations


class LayerwiseError(ValueError):
    """A layer could not be set: non-finite activations or solution, zero variance, too few
    samples. The message names the layer; the model is restored before this is raised."""


def describe(layer) -> str:
    """``'name' (Kind)``, the way errors and warnings name a layer."""
    return f"'{layer.name}' ({type(layer).__name__})"


def num_examples(x) -> int:
    """Examples in a batch: the leading dimension of its first tensor (any nest)."""
    return int(tree.flatten(x)[0].shape[0])


def take(x, start: int, stop: int):
    """Examples ``start:stop`` of every tensor of a nest."""
    return tree.map_structure(lambda a: a[start:stop], x)


def to_numpy(t) -> np.ndarray:
    """A tensor, a variable or an array as NumPy, on any backend: read as a tensor first (a Keras
    variable's ``.value`` is a ``tf.Variable`` on TensorFlow, which NumPy 2 warns about converting
    itself: its ``__array__`` takes no ``copy`` keyword), then ``keras.ops.convert_to_numpy`` (a
    torch tensor in autograd's graph, or on a GPU, included)."""
    if isinstance(t, np.ndarray):
        return t
    if isinstance(t, keras.Variable):
        t = t.value
    if hasattr(t, "read_value"):  # a TensorFlow variable: its value as a tensor
        t = t.read_value()
    return np.asarray(keras.ops.convert_to_numpy(t))


def in_chunks(fn: Callable, x, chunk: int = CHUNK) -> np.ndarray:
    """``fn`` applied to slices of ``chunk`` examples, outputs concatenated (NumPy)."""
    n = num_examples(x)
    with ad.no_gradients():
        outs = [to_numpy(fn(take(x, i, i + chunk))) for i in range(0, n, chunk)]
    return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)


def pooled_variance(parts: Iterable[np.ndarray]) -> float:
    """The variance over all elements of several arrays taken together, in float64."""
    parts = [np.asarray(p, np.float64).reshape(-1) for p in parts]
    n = sum(p.size for p in parts)
    if n == 0:
        return float("nan")
    mean = sum(p.sum() for p in parts) / n
    return float(sum(np.sum((p - mean) ** 2) for p in parts) / n)


# ----------------------------------------------------------------------------------------------
# Reading a layer's inputs where it is called
# ----------------------------------------------------------------------------------------------
class _Enough(BaseException):
    """Stops a forward pass once every needed call was recorded (not an ``Exception``, so that no
    ``except Exception`` on the way rewrites it)."""


@contextlib.contextmanager
def intercept(layers: Sequence[keras.layers.Layer], record: Callable[[Any, tuple, dict, Any], None],
              stop_when: Callable[[], bool] = lambda: False):
    """Wrap the ``call`` of each layer for the duration of the context.

    Every call runs as before; ``record(layer, args, kwargs, output)`` is called after it, and the
    forward pass is stopped (silently, at the context's exit) as soon as ``stop_when()`` is true.
    Every wrapper is removed on exit, whatever happens.
    """
    saved: List[Tuple[Any, bool, Any]] = []

    def wrap(layer, call):
        def recording_call(*args, **kwargs):
            out = call(*args, **kwargs)
            record(layer, args, kwargs, out)
            if stop_when():
                raise _Enough()
            return out
        return recording_call

    try:
        for layer in layers:
            had = "call" in layer.__dict__
            saved.append((layer, had, layer.__dict__.get("call")))
            object.__setattr__(layer, "call", wrap(layer, layer.call))
        try:
            with ad.no_gradients():  # a forward pass that nothing differentiates
                yield
        except _Enough:
            pass
    finally:
        for layer, had, old in saved:
            if had:
                object.__setattr__(layer, "call", old)
            else:
                object.__delattr__(layer, "call")


def first_input(args: tuple, kwargs: dict):
    """The tensor a kernel layer multiplies: its first positional argument (or ``inputs=``)."""
    return args[0] if args else kwargs.get("inputs", next(iter(kwargs.values()), None))


def layer_inputs(model: keras.Model, layer: keras.layers.Layer, x, calls: int = 1,
                 chunk: int = CHUNK) -> List[np.ndarray]:
    """The inputs of ``layer`` when ``model`` runs on ``x`` in inference mode, one array per call.

    The model runs forward (``model(x, training=False)``, in slices of ``chunk`` examples) with
    the layer's ``call`` intercepted; each pass stops after the layer's ``calls``-th call, so the
    layers after it are not computed.

    Args:
        model: any Keras model (Sequential, Functional or subclassed) that calls ``layer``,
            directly or inside a nested model or block.
        layer: the layer whose input to read.
        x: a batch of model inputs: an array, a tensor, or any nest of them.
        calls: how many calls of the layer to record (more than 1 for a shared layer).
        chunk: examples per forward pass.

    Returns:
        One NumPy array per recorded call, each with one row per example.

    Raises:
        LayerwiseError: the model called the layer fewer than ``calls`` times.

    Examples:
        >>> import keras, numpy as np
        >>> from keras_metainit.layerwise import layer_inputs
        >>> shared = keras.layers.Dense(8, "tanh")
        >>> inp = keras.Input((8,))
        >>> model = keras.Model(inp, shared(shared(inp)))  # one layer, called twice
        >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
        >>> first, second = layer_inputs(model, shared, x, calls=2)
        >>> bool(np.allclose(first, x)), bool(np.allclose(second, shared(x), atol=1e-6))
        (True, True)
    """
    parts: List[List[np.ndarray]] = [[] for _ in range(calls)]
    for start in range(0, num_examples(x), chunk):
        seen: List[np.ndarray] = []

        def record(_layer, args, kwargs, _out):
            if len(seen) < calls:
                seen.append(to_numpy(first_input(args, kwargs)))

        with intercept([layer], record, stop_when=lambda: len(seen) >= calls):
            model(take(x, start, start + chunk), training=False)
        if len(seen) < calls:
            raise LayerwiseError(f"Layer {describe(layer)} was called {len(seen)} time(s) by the "
                                 f"forward pass of model {model.name!r}, not {calls}.")
        for part, a in zip(parts, seen):
            part.append(a)
    return [p[0] if len(p) == 1 else np.concatenate(p, axis=0) for p in parts]


def layer_input(model: keras.Model, layer: keras.layers.Layer, x) -> np.ndarray:
    """The input of ``layer`` at its first call when ``model`` runs on ``x`` (inference mode).

    Args:
        model: any Keras model that calls ``layer`` (see :func:`layer_inputs`).
        layer: the layer whose input to read.
        x: a batch of model inputs (array, tensor, or any nest of them).

    Returns:
        The activations, a NumPy array with one row per example.

    Examples:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu"),
        ...                           keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
        >>> from keras_metainit.layerwise import layer_input
        >>> layer_input(model, model.layers[1], x).shape  # what the last Dense receives
        (32, 16)
    """
    return layer_inputs(model, layer, x, calls=1)[0]


# ----------------------------------------------------------------------------------------------
# Patches
# ----------------------------------------------------------------------------------------------
def conv_patches(x, kernel_size: Sequence[int], strides: Sequence[int] = (1, 1),
                 padding: str = "valid", dilation_rate: Sequence[int] = (1, 1),
                 data_format: str = "channels_last") -> np.ndarray:
    """Image patches laid out like a Keras convolution kernel.

    The patch vector of each output position is ordered ``(*kernel_size, cin)`` and flattened,
    the order of ``kernel.reshape(-1, filters)`` for a Keras kernel of shape
    ``(*kernel_size, cin, filters)``, so that ``conv_patches(x, ...) @ kernel.reshape(-1,
    filters)`` equals the convolution (without bias) with the same strides, padding and
    dilation, for any number of spatial dimensions; ``padding="causal"`` (1D) pads on the left.
    NumPy windows (exact: no arithmetic), on every backend.

    Args:
        x: inputs ``(N, *spatial, C)`` (or ``(N, C, *spatial)`` with ``data_format="channels_first"``).
        kernel_size: the kernel's spatial size, e.g. ``(kh, kw)``.
        strides: the strides, one per spatial dimension.
        padding: ``"valid"``, ``"same"`` or (1D) ``"causal"``.
        dilation_rate: the dilation, one per spatial dimension.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        Patches ``(N, *spatial_out, prod(kernel_size)·C)`` (channels last whatever
        ``data_format``), NumPy.

    Examples:
        >>> import keras, numpy as np
        >>> from keras_metainit.layerwise import conv_patches
        >>> conv = keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False)
        >>> x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype("float32")
        >>> y = conv(x)
        >>> p = conv_patches(x, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
        >>> p.shape
        (2, 4, 4, 27)
        >>> bool(np.allclose(p @ conv.kernel.numpy().reshape(-1, conv.filters), y, atol=1e-5))
        True
    """
    if padding not in ("valid", "same", "causal"):
        raise ValueError("Argument `padding` must be 'valid', 'same' or 'causal'. "
                         f"Received: padding={padding!r}")
    x = to_numpy(x)
    rank = len(kernel_size)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    widths = [(0, 0)] * x.ndim
    for d, (n, k, st, dil) in enumerate(zip(x.shape[1:-1], kernel_size, strides, dilation_rate)):
        span = dil * (k - 1) + 1  # the dilated kernel's extent
        if padding == "causal":
            widths[d + 1] = (span - 1, 0)
        elif padding == "same":  # TensorFlow's rule: the extra row or column at the end
            total = max((-(-n // st) - 1) * st + span - n, 0)
            widths[d + 1] = (total // 2, total - total // 2)
    x = np.pad(x, widths)
    spatial = tuple(range(1, rank + 1))
    spans = [dil * (k - 1) + 1 for k, dil in zip(kernel_size, dilation_rate)]
    # (N, *positions, C, *spans): every window; then the strides and the dilated taps
    p = np.lib.stride_tricks.sliding_window_view(x, spans, axis=spatial)
    p = p[(slice(None),) + tuple(slice(None, None, st) for st in strides) + (slice(None),)
          + tuple(slice(None, None, dil) for dil in dilation_rate)]
    # (N, *positions, *kernel_size, C), flattened in the kernel's (*kernel_size, cin) order
    p = np.moveaxis(p, rank + 1, -1)
    return np.ascontiguousarray(p).reshape(p.shape[:rank + 1] + (-1,))


def depthwise_patches(x, kernel_size, strides, padding, dilation_rate,
                      data_format="channels_last") -> np.ndarray:
    """Per-channel patches ``(N, *spatial_out, C, prod(kernel_size))``: channel ``c``'s patch
    vector is what channel ``c`` of a depthwise kernel multiplies."""
    p = conv_patches(x, kernel_size, strides, padding, dilation_rate, data_format)
    taps = int(np.prod(kernel_size))
    p = p.reshape(p.shape[:-1] + (taps, p.shape[-1] // taps))
    return np.swapaxes(p, -1, -2)


def subsample(total: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``m`` of ``total`` items, uniformly without replacement (all if fewer)."""
    if total <= m:
        return np.arange(total)
    return np.sort(rng.choice(total, size=m, replace=False))


def finite_or_raise(parts: Iterable[np.ndarray], layer, what: str) -> None:
    """Raise :class:`LayerwiseError` naming ``layer`` unless every array is finite."""
    if not all(np.all(np.isfinite(p)) for p in parts):
        raise LayerwiseError(f"The {what} of layer {describe(layer)} contain NaN or Inf "
                             "(an earlier layer has non-finite weights, or overflows); the model "
                             "is unchanged.")


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def warn(message: str) -> None:
    """``warnings.warn(message, UserWarning)`` attributed to the first caller outside this
    package, whatever the call depth (``skip_file_prefixes`` on Python >= 3.12)."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, UserWarning, skip_file_prefixes=(_PACKAGE_DIR,))
        return
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
