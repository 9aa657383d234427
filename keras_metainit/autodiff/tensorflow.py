"""TensorFlow's side of the seam: ``tf.GradientTape``.

A tape watches the parameters it is given; the gradients it returns are recorded by any tape
outside it, so the objectives' gradients can be differentiated again (a Hessian-vector product
is the gradient of a function of a gradient, MetaInit's scale gradient a third derivative).
``tf.stop_gradient`` blocks every tape, outer ones included: it is used only where no derivative
is wanted by any tape.

It also holds the staged run of :mod:`keras_metainit.shards` (an objective over a batch in parts:
micro-batches, ``tf.distribute`` replicas), which needs a tape that hides a computation from
itself while the tapes inside it record it, and control dependencies that run the parts one
after another.
"""
from __future__ import annotations

import contextlib
from typing import Any, List, Optional, Sequence

import tensorflow as tf

from keras_metainit._compat import is_eager_tensor

__all__ = ["value_and_grad", "values_and_grads", "stop_gradient", "softmax_logits",
           "compiled_loss", "staged_value_and_grad", "staged_values"]

_ZERO = tf.UnconnectedGradients.ZERO


def _dense(grads):
    # IndexedSlices (embeddings) to dense; a list of gradients or one
    if isinstance(grads, (list, tuple)):
        return [tf.convert_to_tensor(g) for g in grads]
    return tf.convert_to_tensor(grads)


def _identity(tree):
    return tree


def value_and_grad(f, params, has_aux: bool = False):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(params)
        out = f(params)
    value = out[0] if has_aux else out
    return out, _dense(tape.gradient(value, params, unconnected_gradients=_ZERO))


def values_and_grads(f, params, has_aux: bool = False):
    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
        tape.watch(params)
        out = f(params)
    values = out[0] if has_aux else out
    grads = [_dense(tape.gradient(v, params, unconnected_gradients=_ZERO)) for v in values]
    del tape
    return out, grads


stop_gradient = tf.stop_gradient


def softmax_logits(y_pred):
    """The input of the ``Softmax`` op that computed ``y_pred`` in a graph (as Keras's TensorFlow
    backend finds a softmax output's logits, ``_get_logits``), or None: the one form of the
    loss that only TensorFlow needs, so a softmax output's loss is a ``log_softmax`` of logits
    (exact at every order) where ``_keras_logits`` did not survive."""
    if hasattr(y_pred, "op") and not is_eager_tensor(y_pred) and y_pred.op.type == "Softmax":
        return y_pred.op.inputs[0]
    return None


def compiled_loss(fn, separate: bool = False):
    """``fn`` (the per-example loss) as a ``tf.function`` that retraces little (chunks of
    different sizes share one trace).

    With ``separate`` it is never inlined: TensorFlow then differentiates it function by
    function, so every gradient order lives in its own function body. Inlined, the oneDNN graph
    rewrite (``MklLayoutRewritePass``) may fuse a first-order ``BiasAddGrad`` with a
    ``Conv2DBackpropFilter`` of a higher order that reads the same incoming gradient but depends
    on that bias gradient, which creates a cycle ("N nodes in a cycle") in third-order graphs of
    convolutions with bias; :func:`keras_metainit.model_fn.make_loss_fn` asks for it on models
    with convolutions. Inlined, grappler optimizes across the gradient orders (the 8×256 MLP's
    MetaInit step ~20 % faster, ``benchmarks/step_cost.py``).
    """
    return tf.function(fn, reduce_retracing=True,
                       experimental_attributes={"_noinline": True} if separate else None)


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


def _call(call, s, part, total, after=None):
    """``fn`` on one part, started only after ``after``.

    The scales and the batch both wait for ``after``: every run of every part is then a distinct
    computation that starts when the previous one is done, so TensorFlow neither runs parts side
    by side nor merges a recomputation with an earlier run (which would keep that run's
    activations alive), and parameter-sized tensors of later parts are not made in advance.
    """
    s, batches = _after(after, (s, part[0]))
    return call(s, (batches, part[1]), total)


def _contribution(call, s, part, replay: _Replay, after=None):
    """The part's contribution to the first total ``replay`` does not know."""
    try:
        _call(call, s, part, replay, after)
    except _Stop as stop:
        return stop.contribution
    raise RuntimeError("The parts of a batch made different `total` calls.")


def _forward(call, s, parts, across, watch: bool):
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
                out = _call(call, s, parts[0], _Replay(known, tape), after)
        except _Stop as stop:
            acc = stop.contribution
            for part in parts[1:]:
                acc = _add(acc, _contribution(call, s, part, _Replay(known), acc))
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


def staged_value_and_grad(call, s, parts, across=None):
    """The objective and its gradient with respect to ``s`` over a batch in parts
    (:mod:`keras_metainit.shards` describes the stages).

    Args:
        call: ``call(s, (batches, offset), total) -> (value, constraint, metrics)``, the
            objective on one part with ``total`` as its shards' ``total``.
        s: the scales (a tensor).
        parts: this replica's pieces, ``(batches, offset)`` each.
        across: sums a nest over replicas (``ReplicaContext.all_reduce``); None on one replica.

    Returns:
        ``(value, grad, constraint, metrics)``, the same on every replica.
    """
    across = across or _identity
    known, (value, constraint, metrics), (grad, bars) = _forward(call, s, parts, across, True)
    for k in reversed(range(len(known))):
        grad_k, bars_k = None, None
        for part in parts:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(s)
                tape.watch(known[:k])
                after = bars[k] if grad_k is None else (grad_k, bars_k)
                contribution = _contribution(call, s, part, _Replay(known[:k], tape), after)
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


def staged_values(call, s, parts, across=None):
    """The objective's ``(value, constraint, metrics)`` over a batch in parts, without a
    gradient."""
    _, out, _ = _forward(call, s, parts, across or _identity, False)
    return out
