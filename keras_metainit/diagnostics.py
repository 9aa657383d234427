"""Diagnostics a user prints, plots and asserts on: the gradient quotient and GradCosine of a model
on one batch."""
from __future__ import annotations

from typing import Any, Dict

import keras
import numpy as np
import tensorflow as tf

from keras_metainit import data as data_lib
from keras_metainit import objectives
from keras_metainit.model_fn import make_loss_fn

__all__ = ["gradient_quotient", "grad_cosine"]


def _batch_and_loss(model, batch, loss, training=False):
    x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
    if y is None:
        raise ValueError("Diagnostics need a labelled batch `(x, y)`.")
    x = tf.nest.map_structure(lambda a: tf.convert_to_tensor(a, keras.config.floatx())
                              if np.asarray(a).dtype.kind == "f" else tf.convert_to_tensor(a), x)
    data_lib.ensure_built(model, x)
    spec = data_lib.resolve_loss(model, loss, x)
    params = [v.value for v in model.trainable_variables]
    return (x, tf.convert_to_tensor(y)), _cached_loss_fn(model, spec, training), params


def _cached_loss_fn(model, spec: data_lib.LossSpec, training: bool):
    """:func:`make_loss_fn`, kept on the model: repeated diagnostics (say, every epoch) reuse
    its trace instead of tracing a new function each time. The key holds everything the
    function depends on: the loss, the label format, the mode and the model's variables."""
    fn = spec.fn
    try:
        config = repr(sorted(fn.get_config().items()))
    except Exception:  # a plain function or a loss without a config
        config = id(fn)
    key = (type(fn).__name__, getattr(fn, "__name__", None), config, spec.label_kind, training,
           tuple((id(v), v.trainable) for v in model.variables))
    cache = model.__dict__.get("_keras_metainit_loss_fns")
    if cache is None:
        cache = {}
        object.__setattr__(model, "_keras_metainit_loss_fns", cache)  # not tracked by Keras
    if key not in cache:
        cache[key] = make_loss_fn(model, spec, training)
    return cache[key]


def gradient_quotient(model: keras.Model, batch, loss: Any = None, eps: float = 1e-5) -> float:
    """The gradient quotient of ``model`` on one batch (MetaInit's objective).

    ``GQ = mean_i |(g_i - (Hg)_i) / (g_i + eps·sign(g_i)) - 1|`` over all trainable scalars, with
    ``Hg`` the Hessian-gradient product. 0 means one gradient step would not change the
    gradient (a locally linear landscape); large values flag a hard start.

    Args:
        model: a Keras model (normalization layers in inference mode, dropout off).
        batch: ``(x, y)`` arrays or tensors.
        loss: a Keras loss; default the compiled loss, else inferred.
        eps: the quotient's ε; 1e-5 is the paper's. ``MetaInit`` minimizes GQ with its own
            ``eps`` (default 1e-2, see there), so the GQ in its report differs from this value
            unless both use the same ε.

    Returns:
        GQ as a Python float.

    Example:
        >>> gq = keras_metainit.gradient_quotient(model, (x[:128], y[:128]))

    Reference:
        Dauphin & Schoenholz, NeurIPS 2019, eq. 1.
    """
    batch, loss_fn, params = _batch_and_loss(model, batch, loss)
    gq, _ = objectives.gradient_quotient(loss_fn, params, batch, eps)
    return float(gq)


def grad_cosine(model: keras.Model, batch, loss: Any = None, splits: int = 4,
                overlap: float = 0.2) -> Dict[str, float]:
    """GradCosine of ``model`` on one batch (NIO's objective).

    The mean pairwise cosine between the gradients of ``splits`` overlapping chunks of the batch
    (normalization layers on batch statistics, dropout off), and the mean chunk-gradient norm.

    Args:
        model: a Keras model.
        batch: ``(x, y)`` arrays or tensors; its size must allow ``splits`` chunks.
        loss: a Keras loss; default the compiled loss, else inferred.
        splits: number of chunks D.
        overlap: overlap ratio r of the chunks.

    Returns:
        ``{"gc": cosine, "gn": mean chunk-gradient norm}``.

    Reference:
        Yang et al., "Towards Theoretically Inspired Neural Initialization Optimization",
        NeurIPS 2022.
    """
    batch, loss_fn, params = _batch_and_loss(model, batch, loss, training=True)
    gc, gn, _, _ = objectives.grad_cosine(loss_fn, params, batch, splits, overlap,
                                          loss_fn.examples_independent)
    return {"gc": float(gc), "gn": float(gn)}
