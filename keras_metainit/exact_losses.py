"""Keras losses evaluated per example, with higher-order derivatives that are exact on every
backend and every kernel path: :func:`per_example`.

Keras's cross-entropies end, on TensorFlow, in the fused ``SoftmaxCrossEntropyWithLogits`` ops
(sparse and dense; also ``from_logits=False``, which passes ``log(p)`` or a softmax's input as
logits), and on torch in ``F.cross_entropy``. Their first derivative is right, but TensorFlow's
registered higher-order gradients are not reliable where the softmax saturates: on its Eigen
kernels (CPUs without AVX-512, or ``TF_ENABLE_ONEDNN_OPTS=0``) a 12-layer ReLU MLP started at 3×
He (logits ~1e6) measured a gradient quotient of 1.14e9 where the exact value is 8.69e7, and a
third-order scale gradient of −8.7e15 where central differences give +8.6e7 — every tensor's sign
flipped, so MetaInit's sign steps grew the net without end (``benchmarks/saturation.py``). Here
the softmax cross-entropies are written once in ``keras.ops`` with ``log_softmax``: a composition
of primitive ops that every backend's autodiff differentiates exactly, at any order; the values
equal Keras's to float32 rounding.

A softmax *output* (``from_logits=False``) is read from its logits where they can be found, as
Keras's own losses do: the ``_keras_logits`` that ``keras.activations.softmax`` attaches to its
result (TensorFlow and torch tensors take it; JAX arrays do not), or, on TensorFlow inside a
graph, the input of the ``Softmax`` op (:func:`keras_metainit.autodiff.softmax_logits`, the only
TensorFlow-specific piece, kept on TensorFlow's side of the seam). Elsewhere the probabilities
are clipped and logged, as Keras's JAX backend does.

:func:`per_example` is the one place the suite evaluates a Keras loss without reduction.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import keras
from keras import ops

from keras_metainit import autodiff as ad

__all__ = ["per_example"]

Tensor = Any  # a backend tensor


def _softmax_ce(fn) -> Optional[Tuple[str, dict]]:
    """``("sparse" | "categorical", kwargs)`` if ``fn`` is one of Keras's softmax cross-entropies
    in a form this module computes exactly, else None."""
    if isinstance(fn, keras.losses.Loss):
        inner, kwargs = getattr(fn, "fn", None), dict(getattr(fn, "_fn_kwargs", None) or {})
    else:
        inner, kwargs = fn, {}
    if inner is keras.losses.sparse_categorical_crossentropy:
        kind = "sparse"
        if kwargs.get("ignore_class") is not None:
            return None
    elif inner is keras.losses.categorical_crossentropy:
        kind = "categorical"
    else:
        return None
    if kwargs.get("axis", -1) != -1:
        return None
    return kind, kwargs


def _log_probs(y_pred: Tensor, from_logits: bool) -> Optional[Tensor]:
    """Log-probabilities by ``log_softmax`` of the logits, as Keras forms them (a softmax output
    contributes its input's logits where they can be found), or None for probabilities."""
    logits = getattr(y_pred, "_keras_logits", None)
    if logits is None and not from_logits:
        logits = ad.softmax_logits(y_pred)
    if logits is not None:
        return ops.log_softmax(ops.cast(logits, y_pred.dtype), axis=-1)
    if from_logits:
        return ops.log_softmax(y_pred, axis=-1)
    return None


def per_example(fn: Any, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """The unreduced loss ``fn(y_true, y_pred)``, with Keras's softmax cross-entropies computed
    by ``log_softmax`` (equal values, exact higher-order derivatives on every backend).

    Args:
        fn: a ``keras.losses.Loss`` or a loss function ``fn(y_true, y_pred)``.
        y_true: targets, already cast to ``y_pred``'s dtype (as ``Loss.__call__`` does).
        y_pred: the model's output.

    Returns:
        The loss without reduction (one value per example, or per position).

    Examples:

    ```python
    import keras
    from keras_metainit.exact_losses import per_example

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = keras.ops.convert_to_tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    labels = keras.ops.convert_to_tensor([0.0, 2.0])
    per = per_example(loss, labels, logits)  # one value per example, shape (2,)
    ```
    """
    ce = _softmax_ce(fn)
    if ce is None:
        return fn.call(y_true, y_pred) if isinstance(fn, keras.losses.Loss) else fn(y_true, y_pred)
    kind, kwargs = ce
    log_p = _log_probs(y_pred, bool(kwargs.get("from_logits", False)))
    eps = keras.config.epsilon()
    classes = int(y_pred.shape[-1])
    if kind == "sparse":
        if log_p is None:  # probabilities: Keras takes log(clip(p)) as logits
            log_p = ops.log_softmax(ops.log(ops.clip(y_pred, eps, 1.0 - eps)), axis=-1)
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape) and labels.shape[-1] == 1:
            labels = ops.squeeze(labels, -1)
        # a one-hot mask, not a gather: exact at every order on every backend
        y_true = ops.one_hot(labels, classes, dtype=log_p.dtype)
    else:
        smoothing = float(kwargs.get("label_smoothing", 0.0) or 0.0)
        if smoothing:
            y_true = y_true * (1.0 - smoothing) + smoothing / classes
        if log_p is None:  # probabilities: normalized and clipped, as Keras does
            p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
            log_p = ops.log(ops.clip(p, eps, 1.0 - eps))
    return -ops.sum(y_true * log_p, axis=-1)
