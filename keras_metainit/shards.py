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

Models whose layers mix examples (``BatchNormalization`` on batch statistics, used by GradInit
and GradCosine) see each part's own statistics, as Keras's training does under a strategy.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import tensorflow as tf

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
    offset: Union[int, tf.Tensor]
    size: int
    total: Callable[[Any], Any] = _identity

    def mean(self, values: tf.Tensor) -> tf.Tensor:
        """This part's contribution to the whole batch's mean of per-example ``values``."""
        return tf.reduce_sum(values) / self.size

    @property
    def length(self) -> int:
        """Number of examples in this part (static)."""
        return int(tf.nest.flatten(self.batch)[0].shape[0])


def _batch_size(batch) -> int:
    n = tf.nest.flatten(batch)[0].shape[0]
    if n is None:
        raise ValueError("Objectives need batches of static size.")
    return int(n)


def whole(batch) -> Shard:
    """A batch held in one part: ``total`` is the identity."""
    if isinstance(batch, Shard):
        return batch
    return Shard(batch, 0, _batch_size(batch), _identity)


def split(batch, parts: int, offset: Union[int, tf.Tensor] = 0) -> List[Tuple[Any, Any]]:
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
    return [(tf.nest.map_structure(lambda t, i=i: t[i * m:(i + 1) * m], batch), offset + i * m)
            for i in range(parts)]


# ----------------------------------------------------------------------------------------------
# The staged run
# ----------------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised (at trace time) by ``total`` at the first total that is not known yet."""

    def __init__(self, contribution):
        super().__init__("stage boundary")
        self.contribution = contribution


class _Replay:
    """``total`` of a part in a staged run: the known totals, then a stop."""

    def __init__(self, known: Sequence[Any], tape: Optional[tf.GradientTape] = None):
        self.known, self.tape, self.calls = list(known), tape, 0

    def __call__(self, contribution):
        i, self.calls = self.calls, self.calls + 1
        if i >= len(self.known):
            raise _Stop(contribution)
        hide = self.tape.stop_recording() if self.tape is not None else contextlib.nullcontext()
        with hide:  # the stage's tape sees the known total only; inner tapes see the part
            own = tf.nest.map_structure(lambda c: c - tf.stop_gradient(c), contribution)
        return tf.nest.map_structure(tf.add, self.known[i], own)


def _add(a, b):
    return b if a is None else tf.nest.map_structure(tf.add, a, b)


def _after(deps, tree):
    """``tree`` (identity), computed only after ``deps``: parts run one after another."""
    deps = [d for d in tf.nest.flatten(deps) if d is not None]
    if not deps:
        return tree
    with tf.control_dependencies(deps):
        return tf.nest.map_structure(tf.identity, tree)


Objective = Callable[[tf.Tensor, Tuple[Shard, ...]], Tuple[tf.Tensor, tf.Tensor, dict]]
Part = Tuple[Tuple[Any, ...], Union[int, tf.Tensor]]  # (the step's batches, offset)


def _call(fn: Objective, s, part: Part, size: int, total, after=None):
    """``fn`` on one part, started only after ``after``.

    The scales and the batch both wait for ``after``: every run of every part is then a distinct
    computation that starts when the previous one is done, so TensorFlow neither runs parts side
    by side nor merges a recomputation with an earlier run (which would keep that run's
    activations alive), and parameter-sized tensors of later parts are not made in advance.
    """
    s, batches = _after(after, (s, part[0]))
    return fn(s, tuple(Shard(b, part[1], size, total) for b in batches))


def _contribution(fn: Objective, s, part: Part, size: int, replay: _Replay, after=None):
    """The part's contribution to the first total ``replay`` does not know."""
    try:
        _call(fn, s, part, size, replay, after)
    except _Stop as stop:
        return stop.contribution
    raise RuntimeError("The parts of a batch made different `total` calls.")


def _forward(fn: Objective, s, parts: Sequence[Part], size: int, across, watch: bool):
    """Stage by stage until a run completes; returns (known totals, outputs, ∂value/∂(s, T))."""
    known: List[Any] = []
    while True:
        after = known[-1] if known else None
        tape = tf.GradientTape(watch_accessed_variables=False) if watch else None
        try:
            with tape if tape is not None else contextlib.nullcontext():
                if tape is not None:
                    tape.watch(s)
                    tape.watch(known)
                out = _call(fn, s, parts[0], size, _Replay(known, tape), after)
        except _Stop as stop:
            acc = stop.contribution
            for part in parts[1:]:
                acc = _add(acc, _contribution(fn, s, part, size, _Replay(known), acc))
            known.append(across(acc))
            continue
        if not known and (len(parts) > 1 or across is not _identity):
            raise ValueError("The objective made no `shard.total` call, so its value cannot be "
                             "summed over replicas or micro-batches; write its batch "
                             "statistics as contributions passed through `shard.total`.")
        bars = None
        if tape is not None:
            bars = tape.gradient(out[0], [s, known],
                                 unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return known, out, bars


def value_and_grad(fn: Objective, s: tf.Tensor, parts: Sequence[Part], size: int,
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
    if len(parts) == 1 and across is None:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(s)
            value, constraint, metrics = _call(fn, s, parts[0], size, _identity)
        grad = tape.gradient(value, s, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return value, grad, constraint, metrics
    across = across or _identity
    known, (value, constraint, metrics), (grad, bars) = _forward(fn, s, parts, size, across, True)
    for k in reversed(range(len(known))):
        grad_k, bars_k = None, None
        for part in parts:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(s)
                tape.watch(known[:k])
                after = bars[k] if grad_k is None else (grad_k, bars_k)
                contribution = _contribution(fn, s, part, size, _Replay(known[:k], tape), after)
            g_s, g_known = tape.gradient(
                contribution, [s, known[:k]], output_gradients=bars[k],
                unconnected_gradients=tf.UnconnectedGradients.ZERO)
            grad_k, bars_k = _add(grad_k, g_s), _add(bars_k, g_known)
        if k:
            grad_k, bars_k = across((grad_k, bars_k))
            bars = _add(bars[:k], bars_k) + bars[k:]
        else:
            grad_k = across(grad_k)
        grad = grad + grad_k
    return value, grad, constraint, metrics


def values(fn: Objective, s: tf.Tensor, parts: Sequence[Part], size: int,
           across: Optional[Callable[[Any], Any]] = None):
    """The objective's ``(value, constraint, metrics)`` without a gradient."""
    if len(parts) == 1 and across is None:
        return _call(fn, s, parts[0], size, _identity)
    _, out, _ = _forward(fn, s, parts, size, across or _identity, False)
    return out
