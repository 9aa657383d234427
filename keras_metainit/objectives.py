"""The objectives of the learned initializations, as pure functions of ``(weights, batch)``.

Each function takes ``per_example_loss(params, batch) -> (B,)`` — built once from
``model.stateless_call`` by :func:`keras_metainit.model_fn.make_loss_fn` — a list of parameter tensors
(one per trainable variable, in ``model.trainable_variables`` order) and a batch: ``(x, y)``, or a
:class:`~keras_metainit.shards.Shard`, one part of a batch split over replicas or micro-batches.
Every batch statistic is a part's contribution, normalized by the whole batch, summed by
``shard.total``, so the values do not depend on the split (:mod:`keras_metainit.shards`). No
model state is read or written here, so every function can be differentiated again (the engine
differentiates them with respect to per-tensor scales), checked against a float64 reference, and
run inside ``tf.function`` and ``strategy.run`` or ``jax.jit``.

Written once for every backend: derivatives through :mod:`keras_metainit.autodiff` (a gradient
there stays differentiable by an outer derivative), arithmetic through ``keras.ops``. A
stop-gradient blocks every derivative, outer ones included, so it is used only where none is
wanted (the sign in the gradient quotient, the direction of GradInit's look-ahead step).
"""
from __future__ import annotations

import math
from typing import Any, Callable, List, Sequence, Tuple

import keras
from keras import ops

from keras_metainit import autodiff as ad
from keras_metainit.shards import whole

__all__ = [
    "gradient",
    "gradient_quotient",
    "chunk_bounds",
    "grad_cosine",
    "gradient_norm",
    "lookahead_loss",
]

Tensor = Any  # a backend tensor (tf.Tensor, jax.Array)
PerExampleLoss = Callable[[Sequence[Tensor], tuple], Tensor]


def _add_n(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _sum_sq(tensors) -> Tensor:
    return _add_n([ops.sum(ops.square(t)) for t in tensors])


def _count(t, dtype):
    """Number of elements of ``t`` (static when the shape is known)."""
    if all(d is not None for d in t.shape):
        return float(math.prod(t.shape))
    return ops.cast(ops.size(t), dtype)  # embedding gradients of unknown size


def gradient(per_example_loss: PerExampleLoss, params: List[Tensor], batch) -> Tuple[Tensor, list]:
    """Mean loss over the batch and its gradient with respect to ``params``.

    The gradient stays differentiable by any outer derivative with respect to ``params``.

    Args:
        per_example_loss: ``per_example_loss(params, (x, y)) -> (B,)``.
        params: one tensor per trainable variable.
        batch: ``(x, y)`` or a :class:`~keras_metainit.shards.Shard`.

    Returns:
        ``(loss, grads)``.
    """
    shard = whole(batch)
    part, grads = ad.value_and_grad(
        lambda p: shard.mean(per_example_loss(p, shard.batch)), params)
    return shard.total((part, grads))


def gradient_quotient(
    per_example_loss: PerExampleLoss, params: List[Tensor], batch, eps: float = 1e-5
) -> Tuple[Tensor, Tensor]:
    """Gradient quotient of MetaInit (Dauphin & Schoenholz 2019, eq. 1, first-order form).

    ``GQ = mean_i | (g_i - (Hg)_i) / (g_i + eps * sign(g_i)) - 1 |`` over every scalar of every
    tensor in ``params`` (biases included), with ``Hg = grad(½‖g‖²)`` by double backprop and
    ``sign(0) = +1`` held constant.

    Returns:
        ``(gq, loss)``; ``gq`` is differentiable by an outer derivative (third order overall).
    """
    shard = whole(batch)

    def half_sq(p):
        loss, g = gradient(per_example_loss, p, shard)
        return 0.5 * _sum_sq(g), (loss, g)

    (_, (loss, g)), hg = ad.value_and_grad(half_sq, params, has_aux=True)
    hg = shard.total(hg)
    total, count = 0.0, 0.0
    for gi, hi in zip(g, hg):
        sign = ad.stop_gradient(ops.where(gi >= 0, ops.ones_like(gi), -ops.ones_like(gi)))
        total += ops.sum(ops.abs((gi - hi) / (gi + eps * sign) - 1.0))
        count += _count(gi, gi.dtype)
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
    params: List[Tensor],
    batch,
    splits: int = 4,
    overlap: float = 0.2,
    examples_independent: bool = False,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """GradCosine of NIO (Yang et al. 2022), batch version with overlapping chunks.

    ``GC = Σ_{i≠j} <g_i, g_j> / (‖g_i‖‖g_j‖) / (D² − D)`` where ``g_i`` is the gradient of the
    mean loss over chunk ``i`` (:func:`chunk_bounds`).

    With ``examples_independent`` (no layer mixes examples, e.g. no BatchNormalization on batch
    statistics) each chunk is run forward on its own, so each chunk's backward pass costs its
    chunk, not the whole batch (about ``splits``× less); the values are the same.

    Returns:
        ``(gc, gn, norms, loss)``: the cosine, ``GN = mean_i ‖g_i‖``, the ``(D,)`` chunk-gradient
        norms and the batch's mean loss, all differentiable by an outer derivative.
    """
    shard = whole(batch)
    bounds = chunk_bounds(shard.size, splits, overlap)
    n, offset = shard.length, shard.offset
    static = isinstance(offset, int)
    present: List[int] = []  # the chunks with examples in this part (known when traced)

    def chunks(p):
        if examples_independent and static:
            # Each chunk's examples of this part run forward on their own (slices are static).
            parts, loss_part, covered = [], 0.0, offset
            for k, (lo, hi) in enumerate(bounds):
                a, b = min(max(lo - offset, 0), n), min(max(hi - offset, 0), n)
                if b <= a:
                    continue  # no example of the chunk here
                per = per_example_loss(p, keras.tree.map_structure(lambda t: t[a:b], shard.batch))
                parts.append(ops.sum(per) / (hi - lo))
                present.append(k)
                new = max(covered - offset, a)  # each example counted once, in its first chunk
                loss_part += ops.sum(per[new - a:])
                covered = offset + b
        else:
            per = per_example_loss(p, shard.batch)
            position = offset + ops.arange(n)
            parts = []
            for k, (lo, hi) in enumerate(bounds):
                inside = ops.cast(ops.logical_and(position >= lo, position < hi), per.dtype)
                parts.append(ops.sum(inside * per) / (hi - lo))
                present.append(k)
            loss_part = ops.sum(per)
        return parts, loss_part

    (_, loss_part), found = ad.values_and_grads(chunks, params, has_aux=True)
    by_chunk = dict(zip(present, found))
    part_grads = [by_chunk.get(k) or [ops.zeros_like(p) for p in params]
                  for k in range(len(bounds))]
    loss, grads = shard.total((shard.mean(loss_part), part_grads))
    # The (D, D) Gram matrix of the chunk gradients, summed tensor by tensor: no (D, P) copy of
    # every gradient is made, nor a normalized one (benchmarks/step_cost.py, MLP 8x256: the
    # step 42 -> 32.5 ms, peak memory 89 -> 45 MB; docs/benchmarks.md "Cost of a step").
    gram = _add_n([_gram([gs[t] for gs in grads]) for t in range(len(params))])
    norms = ops.sqrt(ops.diagonal(gram))
    cosines = gram / (norms[:, None] * norms[None, :])
    d = float(splits)
    gc = (ops.sum(cosines) - ops.trace(cosines)) / (d * d - d)
    return gc, ops.mean(norms), norms, loss


def _gram(tensors) -> Tensor:
    """``(D, D)`` inner products of ``D`` tensors of one shape."""
    stacked = ops.stack([ops.reshape(t, [-1]) for t in tensors])
    return ops.matmul(stacked, ops.transpose(stacked))


def gradient_norm(grads, ord: int = 2) -> Tensor:
    """Global norm of a list of gradients: ℓ2 (``ord=2``) or ℓ1 (``ord=1``)."""
    if ord == 1:
        return _add_n([ops.sum(ops.abs(g)) for g in grads])
    return ops.sqrt(_sum_sq(grads))


def lookahead_loss(
    per_example_loss: PerExampleLoss,
    params: List[Tensor],
    grads: List[Tensor],
    batch,
    eta: float = 0.1,
    step: str = "sgd",
    normalize: bool = True,
) -> Tensor:
    """GradInit's objective: the loss on ``batch`` after one optimizer step, divided by ``eta``.

    ``L(S̃; θ − η·A[g]) / η`` with ``A[g] = g/‖g‖₂`` (``step="sgd"``, ``normalize=True``), ``g``
    (``normalize=False``) or ``sign(g)`` (``step="adam"``, Adam's first step). As in the reference
    code the step direction is held constant: the objective depends on the scales through ``θ``.

    Returns:
        The scalar objective.
    """
    if step == "adam":
        direction = [ops.sign(g) for g in grads]
    elif normalize:
        gn = gradient_norm(grads, 2)
        direction = [g / gn for g in grads]
    else:
        direction = list(grads)
    direction = [ad.stop_gradient(d) for d in direction]
    stepped = [p - eta * d for p, d in zip(params, direction)]
    shard = whole(batch)
    return shard.total(shard.mean(per_example_loss(stepped, shard.batch))) / eta
