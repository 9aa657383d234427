"""Exact objectives over a batch held in parts: replicas of a strategy, micro-batches, or both.

Every objective in :mod:`keras_metainit.objectives` reads its batch through a :class:`Shard`: the
part of the batch it holds, where that part starts in the whole batch, the whole batch's size,
and ``total``, which sums a contribution over all parts. Objectives write every batch statistic
as a sum of per-part contributions normalized by the *whole* batch (the mean loss is
``total(sum(part's losses) / size)``, a gradient is the gradient of that contribution), and use
only totals after that. Their values therefore do not depend on how the batch is split.

On one part (:func:`whole`), ``total`` is the identity and :func:`value_and_grad` differentiates
the objective directly: nothing is added to the compiled step.

On several parts, the objective is a function of its totals, ``T_k = Σ_p c_k,p(s, T_<k)``: the
gradient quotient, for instance, needs the whole batch's gradient ``g`` (``T_1``) before any part
can contribute its Hessian-gradient product ``H_p g`` (``T_2``). :func:`value_and_grad` then
runs in stages, which is reverse-mode differentiation with the totals as checkpoints:

1. forward, for ``k = 1, 2, ...``: every part runs the objective with the totals known so far
   and stops at its ``k``-th ``total`` call; the contributions are summed (over the parts here,
   and across replicas by ``across``) into ``T_k``; when a run reaches the end, the value and
   ``∂value/∂T`` are known;
2. backward, for ``k = K ... 1``: every part runs again up to its ``k``-th total under a tape and
   pulls the cotangent ``T̄_k`` back to the scales and to the earlier totals ``T̄_<k``.

Inside a part, a known total is ``T + (c − stop_gradient(c))``, with the difference hidden from
the stage's own tape: its value is ``T``, the objective's inner tapes see the part's own
contribution ``c`` (so a part's Hessian-vector product is ``H_p T``, exact because the totals
are linear in the parts), and the stage's tape sees ``T`` as an input. The parts run one after
another (each waits for the previous one's result), so only one part's activations are alive at
a time: that is what micro-batches are for. The result equals the single-part computation up to
floating-point summation order; it costs about twice the direct step.

The staged run needs a tape that can hide a computation from itself while tapes inside it record
it, so it lives with TensorFlow's autodiff (:func:`keras_metainit.autodiff.tensorflow.staged`).
On JAX the batch is held in one part: under a ``keras.distribution`` layout the compiled step
sees the whole batch and XLA sums the replicas' contributions itself, exactly.

Models whose layers mix examples (``BatchNormalization`` on batch statistics, used by GradInit
and GradCosine) see each part's own statistics, as Keras's training does under a strategy.
"""
from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import keras
from keras import ops

from keras_metainit import autodiff as ad

__all__ = ["Shard", "whole", "split", "value_and_grad", "values"]


def _identity(tree):
    return tree


class Shard(NamedTuple):
    """One part of a batch.

    Attributes:
        batch: this part's ``(x, y)``.
        offset: position of the part's first example in the whole batch (an int, or a scalar
            int tensor under strategies whose replica ids are not static).
        size: number of examples in the whole batch.
        total: ``total(tree) -> tree``, the sum of a contribution (a nest of float tensors) over
            all parts; every part must make the same ``total`` calls in the same order.
    """

    batch: Any
    offset: Union[int, Any]
    size: int
    total: Callable[[Any], Any] = _identity

    def mean(self, values: Any) -> Any:
        """This part's contribution to the whole batch's mean of per-example ``values``."""
        return ops.sum(values) / self.size

    @property
    def length(self) -> int:
        """Number of examples in this part (static)."""
        return int(keras.tree.flatten(self.batch)[0].shape[0])


def _batch_size(batch) -> int:
    n = keras.tree.flatten(batch)[0].shape[0]
    if n is None:
        raise ValueError("Objectives need batches of static size.")
    return int(n)


def whole(batch) -> Shard:
    """A batch held in one part: ``total`` is the identity."""
    if isinstance(batch, Shard):
        return batch
    return Shard(batch, 0, _batch_size(batch), _identity)


def split(batch, parts: int, offset: Union[int, Any] = 0) -> List[Tuple[Any, Any]]:
    """Split a batch into ``parts`` equal, contiguous ``(batch, offset)`` pieces.

    Args:
        batch: a nest of tensors with a static leading dimension divisible by ``parts``.
        parts: number of pieces.
        offset: position of ``batch`` in the whole batch (a replica's place).

    Raises:
        ValueError: the batch size is not a multiple of ``parts``.
    """
    if parts == 1:
        return [(batch, offset)]
    n = _batch_size(batch)
    if n % parts:
        raise ValueError(f"A batch of {n} examples cannot be split into {parts} equal parts; "
                         "choose a batch size that is a multiple of the number of parts "
                         "(micro-batches × replicas).")
    m = n // parts
    return [(keras.tree.map_structure(lambda t, i=i: t[i * m:(i + 1) * m], batch), offset + i * m)
            for i in range(parts)]


# ----------------------------------------------------------------------------------------------
# The objective over the parts
# ----------------------------------------------------------------------------------------------
Objective = Callable[[Any, Tuple[Shard, ...]], Tuple[Any, Any, dict]]
Part = Tuple[Tuple[Any, ...], Union[int, Any]]  # (the step's batches, offset)


def _runner(fn: Objective, size: int):
    """``call(s, part, total)``: ``fn`` on one part, its batches read through :class:`Shard`."""

    def call(s, part: Part, total):
        return fn(s, tuple(Shard(b, part[1], size, total) for b in part[0]))

    return call


def _staged():
    if ad.BACKEND != "tensorflow":
        raise NotImplementedError(
            f"A batch in several parts (micro-batches, tf.distribute replicas) needs the "
            f"TensorFlow backend; on {ad.BACKEND!r} pass micro_batches=1 (a keras.distribution "
            "layout splits the batch over devices by itself).")
    from keras_metainit.autodiff import tensorflow as tf_ad
    return tf_ad


def value_and_grad(fn: Objective, s, parts: Sequence[Part], size: int,
                   across: Optional[Callable[[Any], Any]] = None):
    """The objective and its gradient with respect to the scales ``s``.

    Args:
        fn: ``fn(s, shards) -> (value, constraint, metrics)``; ``shards`` holds one
            :class:`Shard` per batch of the step; every batch statistic goes through
            ``shard.total`` and the value depends on the parts only through totals.
        s: the scales (a tensor).
        parts: this replica's pieces, ``(batches, offset)`` each.
        size: examples per batch in the whole (global) batch.
        across: sums a nest over replicas (``ReplicaContext.all_reduce``); None on one replica.

    Returns:
        ``(value, grad, constraint, metrics)``, the same on every replica.
    """
    call = _runner(fn, size)
    if len(parts) == 1 and across is None:
        def packed(s_):
            value, constraint, metrics = call(s_, parts[0], _identity)
            return value, (constraint, metrics)

        (value, (constraint, metrics)), grad = ad.value_and_grad(packed, s, has_aux=True)
        return value, grad, constraint, metrics
    return _staged().staged_value_and_grad(call, s, parts, across)


def values(fn: Objective, s, parts: Sequence[Part], size: int,
           across: Optional[Callable[[Any], Any]] = None):
    """The objective's ``(value, constraint, metrics)`` without a gradient."""
    call = _runner(fn, size)
    if len(parts) == 1 and across is None:
        return call(s, parts[0], _identity)
    return _staged().staged_values(call, s, parts, across)
