"""Layer-wise initialization: set each layer from its own input activations, in order.

This module holds the machinery of the layer-wise methods :class:`~keras_metainit.methods.LSUV`
and :class:`~keras_metainit.methods.Sylvester`. Both walk the top-level layers of a Sequential or
Functional model in order; for each ``Dense`` / ``Conv2D`` layer they read the layer's input
activations through a sub-model ``keras.Model(model.inputs, layer.input)`` (so every earlier layer
already has its new weights), set the layer, and move on. The shared pieces are one function each:

- :func:`layer_input` — a layer's input activations on a batch;
- :func:`conv_patches` — image patches in the order of a Keras ``Conv2D`` kernel, so that
  ``patches @ kernel.reshape(-1, filters)`` is the convolution;
- :func:`preactivation_variance` — the variance of a layer's output before its activation.

What is handled and what is skipped. ``Dense`` and ``Conv2D`` layers (and subclasses that keep
their ``call``) are set. Every other top-level layer that holds a weight of rank >= 2 (``Conv1D``,
``DepthwiseConv2D``, ``EinsumDense``, ``Embedding``, RNNs, nested models, weight-normalized
layers, ...) is skipped with a ``warnings.warn`` naming it, as are quantized, LoRA-enabled, grouped
or shared layers, and every layer of a subclassed model (it has no symbolic inputs to build
sub-models from). Layers without such weights (activations, pooling, normalization) are left
alone and not listed.

Safety. The batch is checked for NaN/Inf (:class:`~keras_metainit.data.DataError`); non-finite
input activations, a zero pre-activation variance or a non-finite solution raise
:class:`LayerwiseError` naming the layer. Whatever the error (or a ``KeyboardInterrupt``), every
layer the run touched is restored to its weights before the call: the model is unchanged, and a
NaN kernel is never written.

Every run returns one row (a dict) per listed layer: ``name``, ``kind``, ``status`` (``"set"``,
``"set: not converged ..."`` or ``"skipped: <reason>"``) and, for set layers, ``var_before`` (the
pre-activation variance with the layer's weights as they were, on its new inputs), ``var_after``
and ``seconds``; LSUV adds ``iterations``, Sylvester ``samples``, ``residual`` and ``ridge``.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import keras
import numpy as np
import scipy.linalg
import tensorflow as tf

from keras_metainit.data import DataError

__all__ = [
    "LayerwiseError", "SylvesterSolution", "layer_input", "conv_patches", "layer_rows",
    "preactivation", "preactivation_variance", "latent_code", "sylvester_solve", "run_lsuv",
    "run_sylvester", "RIDGE", "RCOND", "LABEL_NOISE",
]

#: Relative ridge of a singular or ill-conditioned Sylvester system: ``ρ = RIDGE · (tr(SSᵀ)/k +
#: λ·tr(XXᵀ)/d)``, i.e. ``RIDGE`` times the mean eigenvalue of the operator ``W ↦ SSᵀW + λWXXᵀ``.
RIDGE = 1e-6
#: The system counts as ill-conditioned when its smallest eigenvalue is below ``RCOND`` times its
#: largest (the operator's eigenvalues are the sums ``a_i + b_j`` of those of SSᵀ and λXXᵀ).
RCOND = 1e-10
#: Standard deviation of the noise added to the label code (``latent="labels"``).
LABEL_NOISE = 0.1
LATENTS = ("orthogonal", "random", "labels")

_SUPPORTED = (keras.layers.Dense, keras.layers.Conv2D)
_CHUNK = 256  # examples per forward call when reading activations
_MAX_DRAW_BYTES = 1 << 28  # Sylvester stops drawing examples beyond 256 MB of inputs


class LayerwiseError(ValueError):
    """A layer could not be set: non-finite activations or solution, zero variance, too few
    samples. The message names the layer; the model is restored before this is raised."""


class SylvesterSolution(NamedTuple):
    """The result of :func:`sylvester_solve`.

    Attributes:
        W: the solution, ``k × d`` (float64).
        ridge: the ridge ``ρ`` added to the operator (0.0 when none was needed).
        residual: ``‖A W + W B − C‖_F / ‖C‖_F`` of the *unregularized* equation (about
            ``ρ‖W‖/‖C‖`` when a ridge was added).
    """

    W: np.ndarray
    ridge: float
    residual: float


# ----------------------------------------------------------------------------------------------
# Shared machinery: activations, patches, variance
# ----------------------------------------------------------------------------------------------
def _describe(layer) -> str:
    return f"'{layer.name}' ({type(layer).__name__})"


def _model_input(model):
    """The model's symbolic input structure, or None for a subclassed model."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    if not isinstance(model, keras.Sequential):
        try:
            return model.input
        except (AttributeError, ValueError):
            pass
    return inputs[0] if len(inputs) == 1 else list(inputs)


def _num_examples(x) -> int:
    return int(tf.nest.flatten(x)[0].shape[0])


def _take(x, m: int):
    return tf.nest.map_structure(lambda a: a[:m], x)


def _in_chunks(fn: Callable, x, chunk: int = _CHUNK) -> np.ndarray:
    """``fn`` applied to slices of ``chunk`` examples, outputs concatenated (NumPy)."""
    n = _num_examples(x)
    outs = [keras.ops.convert_to_numpy(fn(tf.nest.map_structure(lambda a: a[i:i + chunk], x)))
            for i in range(0, n, chunk)]
    return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)


def layer_input(model: keras.Model, layer: keras.layers.Layer, x, sub_model=None) -> np.ndarray:
    """The input activations of ``layer`` when ``model`` runs on ``x`` (inference mode).

    Args:
        model: a Sequential or Functional model containing ``layer`` at its top level.
        layer: the layer whose input to read.
        x: a batch of model inputs (array, tensor, or the model's input structure).
        sub_model: ``keras.Model(model.inputs, layer.input)`` if already built (it is built
            otherwise).

    Returns:
        The activations, a NumPy array with one row per example.

    Raises:
        ValueError: the model is subclassed (no symbolic inputs).

    Example:
        >>> h = layer_input(model, model.layers[2], x[:128])  # what layer 2 receives
    """
    if sub_model is None:
        inputs = _model_input(model)
        if inputs is None:
            raise ValueError(f"Model {model.name!r} is subclassed: it has no symbolic inputs to read "
                             f"the input of layer {_describe(layer)} from.")
        sub_model = keras.Model(inputs, layer.input)
    return _in_chunks(lambda c: sub_model(c, training=False), x)


def conv_patches(x, kernel_size: Tuple[int, int], strides: Tuple[int, int] = (1, 1),
                 padding: str = "valid", dilation_rate: Tuple[int, int] = (1, 1),
                 data_format: str = "channels_last") -> np.ndarray:
    """Image patches laid out like a Keras ``Conv2D`` kernel.

    The patch vector of each output position is ordered ``(kh, kw, cin)`` and flattened, the
    order of ``kernel.reshape(-1, filters)`` for a Keras kernel of shape ``(kh, kw, cin, filters)``,
    so that ``conv_patches(x, ...) @ kernel.reshape(-1, filters)`` equals the convolution (without
    bias) with the same strides, padding and dilation.

    Args:
        x: images ``(N, H, W, C)`` (or ``(N, C, H, W)`` with ``data_format="channels_first"``).
        kernel_size: ``(kh, kw)``.
        strides: ``(sh, sw)``.
        padding: ``"valid"`` or ``"same"``.
        dilation_rate: ``(dh, dw)``.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        Patches ``(N, Ho, Wo, kh·kw·C)`` (channels last whatever ``data_format``), NumPy.

    Example:
        >>> p = conv_patches(x, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
        >>> y = p @ conv.kernel.numpy().reshape(-1, conv.filters)   # == conv(x) without bias
    """
    if padding not in ("valid", "same"):
        raise ValueError(f"Argument `padding` must be 'valid' or 'same'. Received: padding={padding!r}")
    x = tf.convert_to_tensor(x)
    if data_format == "channels_first":
        x = tf.transpose(x, [0, 2, 3, 1])
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation_rate
    p = tf.image.extract_patches(x, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1],
                                 rates=[1, dh, dw, 1], padding=padding.upper())
    return p.numpy()


def _subsample(total: int, m: int, rng: np.random.Generator) -> np.ndarray:
    if total <= m:
        return np.arange(total)
    return np.sort(rng.choice(total, size=m, replace=False))


def layer_rows(layer: keras.layers.Layer, x_in: np.ndarray, max_samples: int,
               rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """The rows the layer's kernel multiplies: one input vector per output position.

    ``Dense``: the input's last axis (one row per example, or per position for inputs of rank
    > 2). ``Conv2D``: the patches of :func:`conv_patches` with the layer's geometry. Rows beyond
    ``max_samples`` are subsampled uniformly without replacement.

    Args:
        layer: a built ``Dense`` or ``Conv2D`` layer.
        x_in: its input activations (:func:`layer_input`).
        max_samples: the most rows to return.
        rng: the random generator of the subsampling.

    Returns:
        ``(rows, owner)``: rows ``(n, d)`` in float64 with ``d`` the kernel's fan-in, and the
        index of the example each row comes from, ``(n,)``.
    """
    n_ex = x_in.shape[0]
    if isinstance(layer, keras.layers.Dense):
        d = x_in.shape[-1]
        per = int(np.prod(x_in.shape[1:-1])) if x_in.ndim > 2 else 1
        flat = x_in.reshape(-1, d)
        idx = _subsample(len(flat), max_samples, rng)
        return flat[idx].astype(np.float64), (idx // per).astype(np.int64)
    geometry = dict(kernel_size=layer.kernel_size, strides=layer.strides, padding=layer.padding,
                    dilation_rate=layer.dilation_rate, data_format=layer.data_format)
    first = conv_patches(x_in[:1], **geometry)
    per, d = int(np.prod(first.shape[1:3])), first.shape[-1]
    idx = _subsample(n_ex * per, max_samples, rng)
    chunk = max(1, (1 << 24) // max(1, per * d))  # ~64 MB of float32 patches at a time
    rows = []
    for start in range(0, n_ex, chunk):
        lo, hi = np.searchsorted(idx, [start * per, min(n_ex, start + chunk) * per])
        if hi > lo:
            p = conv_patches(x_in[start:start + chunk], **geometry).reshape(-1, d)
            rows.append(p[idx[lo:hi] - start * per])
    return np.concatenate(rows).astype(np.float64), (idx // per).astype(np.int64)


@contextlib.contextmanager
def _linear(layer):
    """The layer's activation is the identity inside this context (restored on exit)."""
    saved = layer.activation
    object.__setattr__(layer, "activation", keras.activations.linear)
    try:
        yield
    finally:
        object.__setattr__(layer, "activation", saved)


def preactivation(layer: keras.layers.Layer, x_in) -> np.ndarray:
    """The layer's output before its activation, ``x_in @ kernel + bias`` (or the convolution).

    The layer runs with its activation replaced by the identity for the duration of the call;
    the layer is not changed.

    Args:
        layer: a built layer with an ``activation`` attribute (``Dense``, ``Conv2D``).
        x_in: its inputs.

    Returns:
        The pre-activations as a NumPy array.
    """
    with _linear(layer):
        return _in_chunks(lambda c: layer(c, training=False), x_in)


def preactivation_variance(layer: keras.layers.Layer, x_in) -> float:
    """Variance of the layer's pre-activation over all its elements (LSUV's ``Var(B_L)``).

    Args:
        layer: a built ``Dense`` or ``Conv2D`` layer.
        x_in: its inputs (one batch).

    Returns:
        The variance, computed in float64.

    Raises:
        LayerwiseError: the pre-activation is not finite.

    Example:
        >>> v = preactivation_variance(model.layers[1], layer_input(model, model.layers[1], x))
    """
    z = preactivation(layer, x_in).astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise LayerwiseError(f"The pre-activation of layer {_describe(layer)} contains NaN or Inf "
                             "(non-finite weights?).")
    return float(np.var(z))


# ----------------------------------------------------------------------------------------------
# Sylvester: latent codes and the solve
# ----------------------------------------------------------------------------------------------
def latent_code(latent: str, k: int, n: int, rng: np.random.Generator,
                labels: Optional[np.ndarray] = None, classes: Optional[int] = None,
                layer_name: str = "?") -> np.ndarray:
    """The latent code ``S`` (``k × n``) a layer of ``k`` units is fitted to.

    - ``"orthogonal"``: rows orthonormal and orthogonal to the all-ones vector, times ``√n``:
      every unit has mean 0 and variance exactly 1 over the samples and ``SSᵀ = n·I``. Needs
      ``n > k``.
    - ``"random"``: i.i.d. standard normal.
    - ``"labels"``: unit ``j`` codes class ``j mod C``: its row is the indicator of that class,
      standardized over the samples (mean 0, variance 1; a class absent from the samples gives
      zeros), plus ``LABEL_NOISE`` (0.1) standard normal noise so that units coding the same
      class differ and ``SSᵀ`` is nonsingular when ``n ≥ k``.

    Args:
        latent: ``"orthogonal"``, ``"random"`` or ``"labels"``.
        k: units of the layer (rows of ``S``).
        n: samples (columns of ``S``).
        rng: the random generator.
        labels: integer class of every sample, ``(n,)`` (``latent="labels"`` only).
        classes: number of classes ``C`` (default ``labels.max() + 1``).
        layer_name: the layer, for error messages.

    Returns:
        ``S``, float64 ``(k, n)``.

    Raises:
        LayerwiseError: ``latent="orthogonal"`` with ``n <= k``.
        ValueError: unknown ``latent``, or ``latent="labels"`` without labels.
    """
    if latent == "orthogonal":
        if n <= k:
            raise LayerwiseError(
                f"latent='orthogonal' needs more samples than units: layer '{layer_name}' has "
                f"k={k} units but only n={n} samples (no {k} orthonormal zero-mean codes exist in "
                f"{n} dimensions). Pass more data (or raise `max_samples`), or use latent='random' "
                "or 'labels', which work with fewer samples than units."
            )
        g = rng.standard_normal((n, k))
        g -= g.mean(axis=0, keepdims=True)  # orthogonal to the all-ones vector: zero-mean units
        q, r = np.linalg.qr(g)
        q *= np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
        return math.sqrt(n) * q.T
    if latent == "random":
        return rng.standard_normal((k, n))
    if latent == "labels":
        if labels is None:
            raise ValueError("latent='labels' needs the class of every sample. Received: labels=None")
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        c = int(classes) if classes is not None else int(labels.max()) + 1
        s = np.zeros((k, n))
        for j in range(k):
            ind = (labels == j % c).astype(np.float64)
            p = ind.mean()
            if 0.0 < p < 1.0:
                s[j] = (ind - p) / math.sqrt(p * (1.0 - p))
        return s + LABEL_NOISE * rng.standard_normal((k, n))
    raise ValueError(f"Argument `latent` must be one of {LATENTS}. Received: latent={latent!r}")


def sylvester_solve(X: np.ndarray, S: np.ndarray, lam: float = 1.0) -> SylvesterSolution:
    """Solve ``(S Sᵀ) W + W (λ X Xᵀ) = (1+λ) S Xᵀ`` for ``W`` in float64.

    This is the stationarity condition of ``min_W ‖X − WᵀS‖² + λ‖WX − S‖²`` (encoding plus
    decoding loss), solved by Bartels–Stewart (``scipy.linalg.solve_sylvester``).

    - ``n ≥ d``: the equation is solved as it stands (``d × d`` on the right).
    - ``n < d`` (fewer samples than inputs): the solution lies in the span of the samples,
      ``W = M Xᵀ`` with ``(SSᵀ) M + M (λ XᵀX) = (1+λ) S``, an ``n × n`` system on the right:
      cheaper, and exact even when ``SSᵀ`` is singular (``n < k``), where it gives the
      minimum-norm minimizer.

    The operator's eigenvalues are the sums ``a_i + b_j`` of the eigenvalues of ``SSᵀ`` and of
    the right-hand matrix (``λXXᵀ`` or ``λXᵀX``), so with ``SSᵀ`` positive definite the solution
    is unique even when ``XXᵀ`` is singular (constant pixels). When the smallest sum is below
    ``RCOND`` (1e-10) times the largest (both matrices singular: e.g. fewer samples than units
    *and* repeated or zero samples), a ridge ``ρ·W`` is added to the left-hand side with
    ``ρ = RIDGE · (tr(SSᵀ)/k + λ·tr(XXᵀ)/d)``, ``RIDGE = 1e-6``: the solution then minimizes
    the objective plus ``ρ‖W‖²``.

    Args:
        X: inputs, ``d × n`` (one column per sample).
        S: latent code, ``k × n``.
        lam: the weight ``λ ≥ 0`` of the decoding loss.

    Returns:
        A :class:`SylvesterSolution` ``(W, ridge, residual)`` with ``W`` of shape ``k × d``.

    Raises:
        ValueError: mismatched shapes, non-finite inputs, or a system that even a ridge cannot
            make solvable (``X`` and ``S`` both zero); a non-finite solution.

    Example:
        >>> sol = sylvester_solve(X, S, lam=1.0)
        >>> kernel = sol.W.T            # a Dense kernel (d, k)

    Reference:
        Das, Bhalgat & Porikli, "Data-driven Weight Initialization with Sylvester Solvers", 2021.
    """
    X = np.asarray(X, np.float64)
    S = np.asarray(S, np.float64)
    if X.ndim != 2 or S.ndim != 2 or X.shape[1] != S.shape[1]:
        raise ValueError(f"`X` (d × n) and `S` (k × n) must share n. Received: X.shape={X.shape}, "
                         f"S.shape={S.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(S))):
        raise ValueError("`X` and `S` must be finite; they contain NaN or Inf.")
    if lam < 0:
        raise ValueError(f"Argument `lam` must be >= 0. Received: lam={lam!r}")
    (k, n), d = S.shape, X.shape[0]
    a, c = S @ S.T, (1.0 + lam) * (S @ X.T)
    in_span = n < d
    b, rhs = (lam * (X.T @ X), (1.0 + lam) * S) if in_span else (lam * (X @ X.T), c)
    # Conditioning: eigenvalues of A; those of B (PSD) only when A alone does not settle it.
    ea = np.linalg.eigvalsh(a)
    lo_b, hi_b = 0.0, float(np.trace(b))  # bounds of B's spectrum
    if not ea[0] > RCOND * (ea[-1] + hi_b):
        eb = np.linalg.eigvalsh(b)
        lo_b, hi_b = eb[0], eb[-1]
    ridge = 0.0
    if not ea[0] + lo_b > RCOND * (ea[-1] + hi_b):
        ridge = RIDGE * (np.trace(a) / k + np.trace(b) / d)  # tr(XXᵀ) = tr(XᵀX)
        if not ridge > 0:
            raise ValueError("The Sylvester system is singular and cannot be regularized: `X` and `S` "
                             "are both zero.")
    m = scipy.linalg.solve_sylvester(a + ridge * np.eye(k), b, rhs)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"The Sylvester solve gave a non-finite solution (ridge={ridge:.3g}).")
    w = m @ X.T if in_span else m
    lhs = a @ w + lam * ((w @ X) @ X.T)
    c_norm = np.linalg.norm(c)
    residual = float(np.linalg.norm(lhs - c) / (c_norm if c_norm > 0 else 1.0))
    return SylvesterSolution(w, float(ridge), residual)


# ----------------------------------------------------------------------------------------------
# The layer walk shared by both methods
# ----------------------------------------------------------------------------------------------
def _kernel_variable(layer):
    v = getattr(layer, "_kernel", None)
    return v if v is not None else layer.kernel


def _unsupported(layer, model) -> Optional[str]:
    """Why the layer cannot be set, or None."""
    if isinstance(layer, keras.Model) or (
            not isinstance(layer, _SUPPORTED) and getattr(layer, "_layers", None)):
        return "nested model or layer with sublayers: its layers are not reached"
    if not isinstance(layer, _SUPPORTED):
        return f"unsupported layer kind {type(layer).__name__} (only Dense and Conv2D)"
    base = keras.layers.Dense if isinstance(layer, keras.layers.Dense) else keras.layers.Conv2D
    if type(layer).call is not base.call:
        return f"{type(layer).__name__} overrides {base.__name__}.call"
    if getattr(layer, "quantization_mode", None):
        return f"quantized ({layer.quantization_mode})"
    if getattr(layer, "lora_enabled", False):
        return "LoRA enabled"
    if isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) != 1:
        return f"grouped convolution (groups={layer.groups})"
    if not layer.built:
        return "not built"
    nodes = _calls_in(model, layer)
    if nodes > 1:
        return f"shared layer (called {nodes} times)"
    return None


def _calls_in(model, layer) -> int:
    """How often ``layer`` is called in ``model``'s graph (a loaded or rebuilt model leaves
    extra inbound nodes on its layers that belong to no graph of this model)."""
    graph = getattr(model, "_functional", None) or model
    by_depth = getattr(graph, "_nodes_by_depth", None)
    if by_depth is None:
        return len(getattr(layer, "_inbound_nodes", []))
    return sum(node.operation is layer for nodes in by_depth.values() for node in nodes)


class _Entry(NamedTuple):
    index: int  # position in model.layers
    layer: Any
    reason: Optional[str]  # None: handled
    sub_model: Any


def _plan(model, method: str) -> List[_Entry]:
    """The top-level layers with weights of rank >= 2: handled or skipped (with a warning)."""
    inputs = _model_input(model)
    entries = []
    for i, layer in enumerate(model.layers):
        if not any(len(w.shape) >= 2 for w in layer.weights):
            continue
        reason, sub = _unsupported(layer, model), None
        if reason is None and inputs is None:
            reason = f"subclassed model {model.name!r}: no symbolic inputs to read activations from"
        if reason is None:
            try:
                sub = keras.Model(inputs, layer.input)
            except Exception as e:  # noqa: BLE001 - any graph error means: cannot reach it
                reason = f"its input is not reachable from the model's inputs ({e})"
        if reason is not None:
            warnings.warn(f"{method}: skipped layer {_describe(layer)}: {reason}.", UserWarning,
                          stacklevel=6)
        entries.append(_Entry(i, layer, reason, sub))
    if entries and all(e.reason for e in entries):
        warnings.warn(f"{method}: no layer of model {model.name!r} could be set; the model is "
                      "unchanged.", UserWarning, stacklevel=6)
    return entries


def _check_finite_batch(x) -> None:
    for a in tf.nest.flatten(x):
        a = np.asarray(a)
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise DataError("A batch of `data` contains NaN or Inf; the model is unchanged.")


def _draw(dataset, n_examples: int) -> Tuple[Any, Any, int]:
    """Examples from the stream until ``n_examples`` distinct ones, the data is exhausted (a
    batch brings nothing new) or ``_MAX_DRAW_BYTES`` of inputs are held (beyond the first
    batch). Returns ``(x, y, first_batch_size)`` as NumPy structures."""
    it = iter(dataset)
    xs, ys, seen, first, held = [], [], set(), None, 0
    while True:
        try:
            x, y = next(it)
        except StopIteration:
            break
        x = tf.nest.map_structure(lambda t: np.asarray(t), x)
        y = tf.nest.map_structure(lambda t: np.asarray(t), y)
        _check_finite_batch(x)
        n = _num_examples(x)
        first = n if first is None else first
        leaves = [a.reshape(n, -1) for a in tf.nest.flatten(x)]
        keep = []
        for i in range(n):
            key = hashlib.blake2b(b"".join(a[i].tobytes() for a in leaves), digest_size=16).digest()
            if key not in seen:
                seen.add(key)
                keep.append(i)
        if not keep:
            break
        keep = np.asarray(keep)
        xs.append(tf.nest.map_structure(lambda a: a[keep], x))
        ys.append(tf.nest.map_structure(lambda a: a[keep], y))
        held += sum(a[keep].nbytes for a in leaves)
        if len(seen) >= n_examples or held >= _MAX_DRAW_BYTES:
            break
    if not xs:
        raise DataError("`data` yielded no batch.")
    cat = lambda *a: np.concatenate(a)  # noqa: E731
    x = tf.nest.map_structure(cat, *xs) if len(xs) > 1 else xs[0]
    y = tf.nest.map_structure(cat, *ys) if len(ys) > 1 else ys[0]
    return x, y, first


def _snapshot(entries: List[_Entry]) -> List[Tuple[Any, np.ndarray]]:
    return [(v, v.numpy()) for e in entries if e.reason is None for v in e.layer.weights]


def _restore(snapshot) -> None:
    for v, value in snapshot:
        v.assign(value)


def _walk(model, dataset, method: str, progress, n_examples: Callable[[List[_Entry]], int],
          examples_for: Callable[[_Entry, int, int], int],
          set_layer: Callable[[_Entry, np.ndarray, np.ndarray], Dict[str, Any]]
          ) -> List[Dict[str, Any]]:
    """Plan, draw the batch once, set the handled layers in order; restore everything on error."""
    entries = _plan(model, method)
    handled = [e for e in entries if e.reason is None]
    rows: List[Dict[str, Any]] = []
    x = y = None
    if handled:
        x, y, first = _draw(dataset, n_examples(handled))
        total = _num_examples(x)
    snapshot = _snapshot(entries)
    try:
        for e in entries:
            row = {"name": e.layer.name, "kind": type(e.layer).__name__}
            if e.reason is not None:
                rows.append({**row, "status": f"skipped: {e.reason}"})
                if progress is not None:
                    progress.update(e.index + 1, {})
                continue
            start = time.perf_counter()
            m = examples_for(e, total, first)
            xe = _take(x, m)
            x_in = layer_input(model, e.layer, xe, e.sub_model)
            if not np.all(np.isfinite(x_in)):
                raise LayerwiseError(
                    f"The input activations of layer {_describe(e.layer)} contain NaN or Inf "
                    "(an earlier layer has non-finite weights, or overflows); the model is "
                    "unchanged."
                )
            row.update(set_layer(e, x_in, _take(y, m)))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            if progress is not None:
                progress.update(e.index + 1, {"var": float(row.get("var_after", float("nan")))})
    except BaseException:
        _restore(snapshot)
        raise
    return rows


def _rows_per_example(layer) -> Optional[int]:
    """Kernel rows one example gives the layer (1 for a Dense on vectors); None if unknown."""
    try:
        if isinstance(layer, keras.layers.Dense):
            dims = layer.input.shape[1:-1]
        else:
            shape = layer.output.shape
            dims = shape[1:3] if layer.data_format == "channels_last" else shape[2:4]
        if any(s is None for s in dims):
            return None
        return int(np.prod(dims)) if len(dims) else 1
    except Exception:  # noqa: BLE001
        return None


# ----------------------------------------------------------------------------------------------
# LSUV
# ----------------------------------------------------------------------------------------------
def run_lsuv(model: keras.Model, dataset, *, tol: float = 0.1, max_iter: int = 10,
             orthogonal: bool = True, seed: int = 0, progress=None) -> List[Dict[str, Any]]:
    """LSUV on ``model`` in place (see :class:`keras_metainit.methods.LSUV`).

    Args:
        model: a built Sequential or Functional model.
        dataset: an iterable of ``(x, y)`` batches; one batch is drawn and used for every layer.
        tol: stop when ``|Var − 1| < tol``.
        max_iter: most rescalings per layer.
        orthogonal: pre-initialize every handled kernel with ``keras.initializers.Orthogonal``
            (columns = output units) and zero its bias.
        seed: seed of the orthonormal pre-initialization (layer ``i`` uses ``seed + i``).
        progress: an object with ``update(current, values)``, or None.

    Returns:
        One row per listed layer (see the module docstring), with ``iterations``.

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016.
    """

    def set_layer(e: _Entry, x_in, _y) -> Dict[str, Any]:
        layer = e.layer
        kernel = _kernel_variable(layer)
        var_before = preactivation_variance(layer, x_in)
        if orthogonal:
            init = keras.initializers.Orthogonal(seed=int(seed) + e.index)
            kernel.assign(keras.ops.cast(init(tuple(kernel.shape)), kernel.dtype))
            if layer.bias is not None:
                layer.bias.assign(keras.ops.zeros_like(layer.bias))
        var, iterations = preactivation_variance(layer, x_in), 0
        while abs(var - 1.0) >= tol and iterations < max_iter:
            if not var > 0.0:
                raise LayerwiseError(
                    f"The pre-activation of layer {_describe(layer)} has variance {var} on the "
                    "batch: it cannot be rescaled to 1 (are its inputs all zero?)."
                )
            kernel.assign(kernel.value / keras.ops.cast(math.sqrt(var), kernel.dtype))
            iterations += 1
            var = preactivation_variance(layer, x_in)
        status = "set"
        if abs(var - 1.0) >= tol:
            status = f"set: not converged after {max_iter} iterations"
            warnings.warn(f"LSUV: layer {_describe(layer)} did not reach |Var - 1| < {tol} in "
                          f"{max_iter} iterations (Var = {var:.4g}); a large bias?", UserWarning,
                          stacklevel=6)
        return {"status": status, "var_before": var_before, "var_after": var,
                "iterations": iterations}

    return _walk(model, dataset, "LSUV", progress,
                 n_examples=lambda handled: 1,
                 examples_for=lambda e, total, first: total,
                 set_layer=set_layer)


# ----------------------------------------------------------------------------------------------
# Sylvester
# ----------------------------------------------------------------------------------------------
def _class_labels(y: np.ndarray, label_kind: str, units: Optional[int]) -> Tuple[np.ndarray, int]:
    """Integer classes and their number C, from labels in the loss's format."""
    if label_kind == "sparse":
        labels = y.reshape(-1).astype(np.int64)
        return labels, max(int(units or 0), int(labels.max()) + 1)
    if label_kind == "onehot":
        return np.argmax(y.reshape(len(y), -1), axis=-1), int(y.reshape(len(y), -1).shape[-1])
    if label_kind == "binary" and y.reshape(len(y), -1).shape[-1] == 1:
        return (y.reshape(-1) > 0.5).astype(np.int64), 2
    raise ValueError(
        "Sylvester(latent='labels') needs class labels (a sparse or categorical cross-entropy, "
        f"or a binary loss with one output unit). Received labels for a {label_kind!r} loss of "
        f"shape {tuple(y.shape)}."
    )


def run_sylvester(model: keras.Model, dataset, loss_spec=None, *, latent: str = "orthogonal",
                  lam: float = 1.0, max_samples: int = 4096, rescale: bool = True, seed: int = 0,
                  progress=None) -> List[Dict[str, Any]]:
    """Sylvester initialization of ``model`` in place (see :class:`keras_metainit.methods.Sylvester`).

    Args:
        model: a built Sequential or Functional model.
        dataset: an iterable of ``(x, y)`` batches.
        loss_spec: the :class:`~keras_metainit.data.LossSpec` (its ``label_kind`` and
            ``random_labels`` matter for ``latent="labels"``).
        latent: ``"orthogonal"``, ``"random"`` or ``"labels"``.
        lam: weight of the decoding loss.
        max_samples: most input rows per layer.
        rescale: scale each kernel to unit pre-activation variance.
        seed: seed of the codes and the subsampling.
        progress: an object with ``update(current, values)``, or None.

    Returns:
        One row per listed layer (see the module docstring), with ``samples``, ``residual`` and
        ``ridge``.

    Raises:
        ValueError: ``latent="labels"`` with random labels or labels that are not classes.

    Reference:
        Das, Bhalgat & Porikli, "Data-driven Weight Initialization with Sylvester Solvers", 2021.
    """
    units = None
    if latent == "labels":
        if loss_spec is not None and loss_spec.random_labels:
            raise ValueError(
                "Sylvester(latent='labels') needs labelled data, but the data has no labels: the "
                "engine drew random ones. Pass `data=(x, y)` (or a dataset of (x, y)), or use "
                "latent='orthogonal' or 'random'."
            )
        try:
            units = int(model.outputs[0].shape[-1])
        except Exception:  # noqa: BLE001
            units = None
    label_kind = getattr(loss_spec, "label_kind", "sparse")
    rng = np.random.default_rng(int(seed))

    def n_examples(handled: List[_Entry]) -> int:
        need = 1
        for e in handled:
            per = _rows_per_example(e.layer)
            if per is not None:
                need = max(need, -(-max_samples // per))
        return need

    def examples_for(e: _Entry, total: int, first: int) -> int:
        per = _rows_per_example(e.layer)
        if per is None:
            return min(total, first)
        return min(total, max(first, -(-max_samples // per)))

    def set_layer(e: _Entry, x_in, y) -> Dict[str, Any]:
        layer = e.layer
        kernel = _kernel_variable(layer)
        shape = tuple(kernel.shape)
        k = shape[-1]
        var_before = preactivation_variance(layer, x_in)
        rows, owner = layer_rows(layer, x_in, max_samples, rng)
        n = rows.shape[0]
        labels = classes = None
        if latent == "labels":
            labels, classes = _class_labels(tf.nest.flatten(y)[0], label_kind, units)
            labels = labels[owner]
        s = latent_code(latent, k, n, rng, labels=labels, classes=classes, layer_name=layer.name)
        try:
            sol = sylvester_solve(rows.T, s, lam)
        except ValueError as err:
            raise LayerwiseError(f"Sylvester: layer {_describe(layer)}: {err} The layer is "
                                 "unchanged.") from err
        new = sol.W.T.reshape(shape)
        if not np.all(np.isfinite(new)):
            raise LayerwiseError(f"Sylvester: the kernel of layer {_describe(layer)} is not "
                                 "finite. The layer is unchanged.")
        kernel.assign(new.astype(kernel.dtype))
        if layer.bias is not None:
            layer.bias.assign(keras.ops.zeros_like(layer.bias))
        var_after = preactivation_variance(layer, x_in)
        if rescale:  # bias zero: one division gives unit variance on the batch
            if not var_after > 0:
                raise LayerwiseError(
                    f"Sylvester: the solved kernel of layer {_describe(layer)} gives "
                    f"pre-activation variance {var_after} on the batch; it cannot be rescaled."
                )
            kernel.assign(kernel.value / keras.ops.cast(math.sqrt(var_after), kernel.dtype))
            var_after = preactivation_variance(layer, x_in)
        status = "set" if sol.ridge == 0 else "set (ridge)"
        return {"status": status, "samples": n, "var_before": var_before, "var_after": var_after,
                "residual": sol.residual, "ridge": sol.ridge}

    return _walk(model, dataset, "Sylvester", progress, n_examples, examples_for, set_layer)
