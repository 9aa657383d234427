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
from typing import Any, Callable, List, Optional, Sequence, Tuple

import keras
import numpy as np
from keras import ops

from keras_metainit import autodiff as ad
from keras_metainit.shards import whole
from keras_metainit.validation import check

__all__ = [
    "gradient",
    "gradient_quotient",
    "hessian_gradient_fd",
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
    return shard.total(_part_gradient(per_example_loss, params, shard))


def _part_gradient(per_example_loss: PerExampleLoss, params: List[Tensor], shard) -> Tuple:
    """This part's contribution to :func:`gradient`: ``(loss, grads)`` before ``shard.total``."""
    return ad.value_and_grad(lambda p: shard.mean(per_example_loss(p, shard.batch)), params)


HVP_MODES = ("exact", "finite_difference")  # how gradient_quotient computes Hg
HVP_CHOICES = "'exact' or 'finite_difference'"


def gradient_quotient(
    per_example_loss: PerExampleLoss,
    params: List[Tensor],
    batch,
    eps: float = 1e-5,
    hvp: str = "exact",
    fd_step: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """Gradient quotient of MetaInit (Dauphin & Schoenholz 2019, eq. 1, first-order form).

    ``GQ = mean_i | (g_i - (Hg)_i) / (g_i + eps * sign(g_i)) - 1 |`` over every scalar of every
    tensor in ``params`` (biases included), with ``sign(0) = +1`` held constant. The
    Hessian-gradient product ``Hg`` is

    - ``hvp="exact"``: ``grad(½‖g‖²)`` by double backprop; ``gq``'s derivative by an outer
      derivative is then third order;
    - ``hvp="finite_difference"``: a central difference of the gradient along the unit gradient
      ``ĝ`` (:func:`hessian_gradient_fd`); ``gq``'s derivative is then second order.

    Args:
        per_example_loss: ``per_example_loss(params, (x, y)) -> (B,)``.
        params: one tensor per trainable variable.
        batch: ``(x, y)`` or a :class:`~keras_metainit.shards.Shard`.
        eps: the ε floor of the quotient's denominator.
        hvp: ``"exact"`` or ``"finite_difference"``.
        fd_step: for ``"finite_difference"``, the relative step ``c`` of
            :func:`hessian_gradient_fd` (default ``√ε_mach`` of the parameters' dtype).

    Returns:
        ``(gq, loss)``; ``gq`` is differentiable by an outer derivative.

    Examples:
        >>> import numpy as np, keras
        >>> from keras_metainit import losses, objectives
        >>> from keras_metainit.model_fn import make_loss_fn
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "tanh"),
        ...                           keras.layers.Dense(2)])
        >>> x = np.random.rand(8, 4).astype("float32"); y = np.random.randint(0, 2, 8)
        >>> loss_fn = make_loss_fn(model, losses.resolve_loss(model, "sparse_categorical_crossentropy"))
        >>> params = [v.value for v in model.trainable_variables]
        >>> gq, loss = objectives.gradient_quotient(loss_fn, params, (x, y), eps=1e-2,
        ...                                         hvp="finite_difference")
        >>> bool(gq >= 0)
        True

    Reference:
        Dauphin & Schoenholz, "MetaInit: Initializing learning by learning to initialize",
        NeurIPS 2019.
    """
    check(hvp in HVP_MODES, "hvp", hvp, HVP_CHOICES)
    shard = whole(batch)
    if hvp == "exact":
        def half_sq(p):
            loss, g = gradient(per_example_loss, p, shard)
            return 0.5 * _sum_sq(g), (loss, g)

        (_, (loss, g)), hg = ad.value_and_grad(half_sq, params, has_aux=True)
        hg = shard.total(hg)
    else:
        loss, g = gradient(per_example_loss, params, shard)
        hg = hessian_gradient_fd(per_example_loss, params, g, shard, fd_step)
    total, count = 0.0, 0.0
    for gi, hi in zip(g, hg):
        sign = ad.stop_gradient(ops.where(gi >= 0, ops.ones_like(gi), -ops.ones_like(gi)))
        total += ops.sum(ops.abs((gi - hi) / (gi + eps * sign) - 1.0))
        count += _count(gi, gi.dtype)
    return total / count, loss


def hessian_gradient_fd(
    per_example_loss: PerExampleLoss,
    params: List[Tensor],
    grads: List[Tensor],
    batch,
    step: Optional[float] = None,
) -> List[Tensor]:
    """``H·g`` by a central difference of the gradient along the unit gradient ``ĝ = g/‖g‖``.

    ``Hg ≈ ‖g‖ · (g(θ + r·ĝ) − g(θ − r·ĝ)) / 2r`` with ``r = c · (1 + ‖θ‖)``,
    ``c = √ε_mach`` (``ε_mach`` of the parameters' dtype) unless ``step`` gives it: the step of
    Stan's ``finite_diff_hessian_times_vector_auto``, ``√ε·(1 + ‖x‖)/‖v‖`` for ``v = g``, from
    Andrei (2009). ``ĝ`` and ``‖g‖`` stay differentiable (an outer
    derivative of ``Hg`` needs ``H·∂g`` as well as the third derivative along ``g``: both come
    from differentiating the two gradients at ``θ ± r·ĝ``, second order); ``r`` and the rescaling
    of ``g`` by its largest entry (which makes ``ĝ`` safe from the underflow of ``‖g‖²`` in
    float32, and is exactly cancelled) are held constant. ``g = 0`` gives ``Hg = 0``.

    Args:
        per_example_loss: ``per_example_loss(params, (x, y)) -> (B,)``.
        params: the point ``θ``, one tensor per trainable variable.
        grads: the whole batch's gradient ``g`` at ``θ`` (as :func:`gradient` returns it).
        batch: ``(x, y)`` or a :class:`~keras_metainit.shards.Shard`.
        step: the relative step ``c`` (default ``√ε_mach``).

    Returns:
        ``Hg``, one tensor per parameter tensor (the whole batch's, summed by ``shard.total``).

    Reference:
        Stan Math, ``stan/math/rev/functor/finite_diff_hessian_times_vector_auto.hpp``;
        N. Andrei, "Accelerated conjugate gradient algorithm with finite difference Hessian/vector
        product approximation for unconstrained optimization", J. Comput. Appl. Math. 230 (2009),
        doi:10.1016/j.cam.2008.12.024.
    """
    if step is None:
        step = math.sqrt(float(np.finfo(keras.backend.standardize_dtype(params[0].dtype)).eps))
    largest = ad.stop_gradient(ops.max(ops.stack([ops.max(ops.abs(g)) for g in grads])))
    largest = ops.where(largest > 0, largest, ops.ones_like(largest))
    unit = [g / largest for g in grads]
    # ‖g‖ / largest is in [1, √N] (an entry is ±1) unless g = 0, where 1 keeps every value and
    # derivative finite (unit = 0, Hg = 0)
    norm = ops.sqrt(ops.maximum(_sum_sq(unit), 1.0))
    unit = [u / norm for u in unit]
    r = ad.stop_gradient(step * (1.0 + ops.sqrt(_sum_sq(params))))
    shard = whole(batch)
    _, plus = _part_gradient(per_example_loss, [p + r * u for p, u in zip(params, unit)], shard)
    _, minus = _part_gradient(per_example_loss, [p - r * u for p, u in zip(params, unit)], shard)
    # One total of the difference: over parts (micro-batches, replicas) the cancellation happens
    # inside each part, in the parameters' dtype, and the run has one stage fewer.
    difference = shard.total([a - b for a, b in zip(plus, minus)])
    factor = largest * norm / (2.0 * r)
    return [factor * d for d in difference]


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
