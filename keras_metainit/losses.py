"""Per-example losses whose higher-order derivatives are exact on every CPU kernel path.

Keras's cross-entropies end in TensorFlow's fused ``SoftmaxCrossEntropyWithLogits`` ops (sparse and
dense; also ``from_logits=False``, which passes ``log(p)`` or a softmax's input as logits). Their
first derivative is right, but their registered higher-order gradients are not reliable where the
softmax saturates: on TensorFlow's Eigen kernels (CPUs without AVX-512, or
``TF_ENABLE_ONEDNN_OPTS=0``) a 12-layer ReLU MLP started at 3× He (logits ~1e6) measured a gradient
quotient of 1.14e9 where the exact value is 8.69e7, and a third-order scale gradient of −8.7e15
where central differences give +8.6e7 — every tensor's sign flipped, so MetaInit's sign steps
grew the net without end (``benchmarks/saturation.py``). Written with ``log_softmax`` the same
loss is a composition of primitive ops that autodiff differentiates exactly, at any order and on
every kernel path; the values equal Keras's to float32 rounding.

:func:`per_example` is the one place the suite evaluates a Keras loss without reduction.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import keras
import tensorflow as tf

__all__ = ["per_example"]


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


def _log_probs(y_pred: tf.Tensor, from_logits: bool) -> tf.Tensor:
    """Log-probabilities as Keras's TensorFlow backend forms them (``_get_logits``), by
    ``log_softmax``: a softmax output contributes its input's logits."""
    logits = getattr(y_pred, "_keras_logits", None)
    if logits is None and not from_logits and hasattr(y_pred, "op") \
            and not isinstance(y_pred, tf.__internal__.EagerTensor) and y_pred.op.type == "Softmax":
        logits = y_pred.op.inputs[0]
    if logits is not None:
        return tf.nn.log_softmax(tf.cast(logits, y_pred.dtype))
    if from_logits:
        return tf.nn.log_softmax(y_pred)
    return None


def per_example(fn: Any, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """The unreduced loss ``fn(y_true, y_pred)``, with Keras's softmax cross-entropies computed
    by ``log_softmax`` (equal values, exact higher-order derivatives).

    Args:
        fn: a ``keras.losses.Loss`` or a loss function ``fn(y_true, y_pred)``.
        y_true: targets, already cast to ``y_pred``'s dtype (as ``Loss.__call__`` does).
        y_pred: the model's output.

    Returns:
        The loss without reduction (one value per example, or per position).
    """
    ce = _softmax_ce(fn)
    if ce is None:
        return fn.call(y_true, y_pred) if isinstance(fn, keras.losses.Loss) else fn(y_true, y_pred)
    kind, kwargs = ce
    from_logits = bool(kwargs.get("from_logits", False))
    log_p = _log_probs(y_pred, from_logits)
    eps = keras.config.epsilon()
    if kind == "sparse":
        if log_p is None:  # probabilities: Keras takes log(clip(p)) as logits
            log_p = tf.nn.log_softmax(tf.math.log(tf.clip_by_value(y_pred, eps, 1.0 - eps)))
        labels = tf.cast(y_true, tf.int32)
        if labels.shape.rank == y_pred.shape.rank and labels.shape[-1] == 1:
            labels = tf.squeeze(labels, -1)
        return -tf.gather(log_p, labels, batch_dims=labels.shape.rank)
    smoothing = float(kwargs.get("label_smoothing", 0.0) or 0.0)
    if smoothing:
        classes = tf.cast(tf.shape(y_pred)[-1], y_true.dtype)
        y_true = y_true * (1.0 - smoothing) + smoothing / classes
    if log_p is None:  # probabilities: normalized and clipped, as Keras does (no fused op)
        p = y_pred / tf.reduce_sum(y_pred, -1, keepdims=True)
        log_p = tf.math.log(tf.clip_by_value(p, eps, 1.0 - eps))
    return -tf.reduce_sum(y_true * log_p, -1)
