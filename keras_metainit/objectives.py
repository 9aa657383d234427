"""The objectives of the learned initializations, as pure functions of ``(weights, batch)``.

Each function takes ``per_example_loss(params, batch) -> (B,)`` — built once from
``model.stateless_call`` by :func:`keras_metainit.model_fn.make_loss_fn` — a list of parameter tensors
(one per trainable variable, in ``model.trainable_variables`` order) and a batch: ``(x, y)``, or a
:class:`~keras_metainit.shards.Shard`, one part of a batch split over replicas or micro-batches.
Every batch statistic is a part's contribution, normalized by the whole batch, summed by
``shard.total``, so the values do not depend on the split (:mod:`keras_metainit.shards`). No
model state is read or written here, so every function can be differentiated again (the engine
differentiates them with respect to per-tensor scales), checked against a float64 reference, and
run inside ``tf.function`` and ``strategy.run``.

Nested ``tf.GradientTape`` note: ``tf.stop_gradient`` blocks every tape, outer ones included, so it
is used only where no derivative is wanted by any tape (the sign in the gradient quotient, the
direction of GradInit's look-ahead step).
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import tensorflow as tf

from keras_metainit.shards import whole

__all__ = [
    "gradient",
    "gradient_quotient",
    "chunk_bounds",
    "grad_cosine",
    "gradient_norm",
    "lookahead_loss",
]

PerExampleLoss = Callable[[Sequence[tf.Tensor], tuple], tf.Tensor]

_ZERO = tf.UnconnectedGradients.ZERO


def _sum_sq(tensors) -> tf.Tensor:
    return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])


def _dense(grads):
    return [tf.convert_to_tensor(g) for g in grads]  # IndexedSlices (embeddings) to dense


def gradient(per_example_loss: PerExampleLoss, params: List[tf.Tensor], batch) -> Tuple[tf.Tensor, list]:
    """Mean loss over the batch and its gradient with respect to ``params``.

    The gradient stays differentiable by any tape watching ``params`` from outside.

    Args:
        per_example_loss: ``per_example_loss(params, (x, y)) -> (B,)``.
        params: one tensor per trainable variable.
        batch: ``(x, y)`` or a :class:`~keras_metainit.shards.Shard`.

    Returns:
        ``(loss, grads)``.
    """
    shard = whole(batch)
    with tf.GradientTape() as tape:
        tape.watch(params)
        part = shard.mean(per_example_loss(params, shard.batch))
    grads = _dense(tape.gradient(part, params, unconnected_gradients=_ZERO))
    return shard.total((part, grads))


def gradient_quotient(
    per_example_loss: PerExampleLoss, params: List[tf.Tensor], batch, eps: float = 1e-5
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Gradient quotient of MetaInit (Dauphin & Schoenholz 2019, eq. 1, first-order form).

    ``GQ = mean_i | (g_i - (Hg)_i) / (g_i + eps * sign(g_i)) - 1 |`` over every scalar of every
    tensor in ``params`` (biases included), with ``Hg = grad(½‖g‖²)`` by double backprop and
    ``sign(0) = +1`` held constant.

    Returns:
        ``(gq, loss)``; ``gq`` is differentiable by an outer tape (third order overall).
    """
    shard = whole(batch)
    with tf.GradientTape() as outer:
        outer.watch(params)
        loss, g = gradient(per_example_loss, params, shard)
        half_sq = 0.5 * _sum_sq(g)
    hg = shard.total(_dense(outer.gradient(half_sq, params, unconnected_gradients=_ZERO)))
    total, count = 0.0, 0.0
    for gi, hi in zip(g, hg):
        sign = tf.stop_gradient(tf.where(gi >= 0, tf.ones_like(gi), -tf.ones_like(gi)))
        total += tf.reduce_sum(tf.abs((gi - hi) / (gi + eps * sign) - 1.0))
        count += tf.cast(tf.size(gi), gi.dtype)  # static or not (embedding gradients)
    return total / count, loss


def chunk_bounds(batch_size: int, splits: int = 4, overlap: float = 0.2) -> List[Tuple[int, int]]:
    """Chunk ``i`` spans ``[(1-r)·ℓ·i, (1+r)·ℓ·(i+1))``, ``ℓ = B/D``, clipped to the batch.

    This is the batch split of NIO's official code (METHODS §3); bounds are rounded down.
    """
    if splits < 2:
        raise ValueError(f"Argument `splits` must be >= 2. Received: splits={splits}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"Argument `overlap` must be in [0, 1). Received: overlap={overlap}")
    ell = batch_size / splits
    bounds = []
    for i in range(splits):
        lo = int((1 - overlap) * ell * i)
        hi = min(int((1 + overlap) * ell * (i + 1)), batch_size)
        if hi <= lo:
            raise ValueError(
                f"A batch of {batch_size} is too small for {splits} chunks; use a larger batch."
            )
        bounds.append((lo, hi))
    return bounds


def grad_cosine(
    per_example_loss: PerExampleLoss,
    params: List[tf.Tensor],
    batch,
    splits: int = 4,
    overlap: float = 0.2,
    examples_independent: bool = False,
) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """GradCosine of NIO (Yang et al. 2022), batch version with overlapping chunks.

    ``GC = Σ_{i≠j} <g_i, g_j> / (‖g_i‖‖g_j‖) / (D² − D)`` where ``g_i`` is the gradient of the
    mean loss over chunk ``i`` (:func:`chunk_bounds`).

    With ``examples_independent`` (no layer mixes examples, e.g. no BatchNormalization on batch
    statistics) each chunk is run forward on its own, so each chunk's backward pass costs its
    chunk, not the whole batch (about ``splits``× less); the values are the same.

    Returns:
        ``(gc, gn, norms, loss)``: the cosine, ``GN = mean_i ‖g_i‖``, the ``(D,)`` chunk-gradient
        norms and the batch's mean loss, all differentiable by an outer tape.
    """
    shard = whole(batch)
    bounds = chunk_bounds(shard.size, splits, overlap)
    n, offset = shard.length, shard.offset
    static = isinstance(offset, int)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(params)
        if examples_independent and static:
            # Each chunk's examples of this part run forward on their own (slices are static).
            parts, loss_part, covered = [], 0.0, offset
            for lo, hi in bounds:
                a, b = min(max(lo - offset, 0), n), min(max(hi - offset, 0), n)
                if b <= a:
                    parts.append(None)
                    continue
                per = per_example_loss(params, tf.nest.map_structure(lambda t: t[a:b], shard.batch))
                parts.append(tf.reduce_sum(per) / (hi - lo))
                new = max(covered - offset, a)  # each example counted once, in its first chunk
                loss_part += tf.reduce_sum(per[new - a:])
                covered = offset + b
        else:
            per = per_example_loss(params, shard.batch)
            position = offset + tf.range(n)
            parts = []
            for lo, hi in bounds:
                inside = tf.cast((position >= lo) & (position < hi), per.dtype)
                parts.append(tf.reduce_sum(inside * per) / (hi - lo))
            loss_part = tf.reduce_sum(per)
    part_grads = [[tf.zeros_like(p) for p in params] if c is None  # no example of the chunk here
                  else _dense(tape.gradient(c, params, unconnected_gradients=_ZERO)) for c in parts]
    del tape
    loss, grads = shard.total((shard.mean(loss_part), part_grads))
    flat = tf.stack([tf.concat([tf.reshape(g, [-1]) for g in gs], 0) for gs in grads])  # (D, P)
    norms = tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1))
    unit = flat / norms[:, None]
    gram = tf.matmul(unit, unit, transpose_b=True)
    d = float(splits)
    gc = (tf.reduce_sum(gram) - tf.linalg.trace(gram)) / (d * d - d)
    return gc, tf.reduce_mean(norms), norms, loss


def gradient_norm(grads, ord: int = 2) -> tf.Tensor:
    """Global norm of a list of gradients: ℓ2 (``ord=2``) or ℓ1 (``ord=1``)."""
    if ord == 1:
        return tf.add_n([tf.reduce_sum(tf.abs(g)) for g in grads])
    return tf.sqrt(_sum_sq(grads))


def lookahead_loss(
    per_example_loss: PerExampleLoss,
    params: List[tf.Tensor],
    grads: List[tf.Tensor],
    batch,
    eta: float = 0.1,
    step: str = "sgd",
    normalize: bool = True,
) -> tf.Tensor:
    """GradInit's objective: the loss on ``batch`` after one optimizer step, divided by ``eta``.

    ``L(S̃; θ − η·A[g]) / η`` with ``A[g] = g/‖g‖₂`` (``step="sgd"``, ``normalize=True``), ``g``
    (``normalize=False``) or ``sign(g)`` (``step="adam"``, Adam's first step). As in the reference
    code the step direction is held constant: the objective depends on the scales through ``θ``.

    Returns:
        The scalar objective.
    """
    if step == "adam":
        direction = [tf.sign(g) for g in grads]
    elif normalize:
        gn = gradient_norm(grads, 2)
        direction = [g / gn for g in grads]
    else:
        direction = list(grads)
    direction = [tf.stop_gradient(d) for d in direction]
    stepped = [p - eta * d for p, d in zip(params, direction)]
    shard = whole(batch)
    return shard.total(shard.mean(per_example_loss(stepped, shard.batch))) / eta
