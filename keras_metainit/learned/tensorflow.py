"""The learned-method runner on TensorFlow: the step compiled by ``tf.function`` (XLA where the plain
graph cannot be instantiated), ``tf.distribute`` strategies and micro-batches.

The loop, the guard and the write-back are :func:`keras_metainit.learned.core.drive`'s. Under a
``tf.distribute`` strategy each replica computes its part of the batch and the parts are summed
exactly; with ``micro_batches`` each replica's part is split again and run one piece at a time
(:mod:`keras_metainit.shards`). Either way the scales are those of one device on the whole batch.
"""
from __future__ import annotations

from typing import List, Optional

import tensorflow as tf

from keras_metainit import shards
from keras_metainit.learned.core import (Run, all_finite, drive, guarded_update, scaled,
                                         start)
from keras_metainit.methods.base import LearnedMethod
from keras_metainit.report import InitReport

__all__ = ["run", "TensorFlowRun", "strategy_of"]


class TensorFlowRun(Run):
    """One learned-method run on TensorFlow: the scales and the update's state are
    ``tf.Variable``s, written by the compiled :meth:`step`.

    Args:
        model: the model.
        method: the learned method.
        loss_fn: the per-example loss (:func:`~keras_metainit.model_fn.make_loss_fn`).
        report: the report being filled.
        size: examples per batch of the step (the whole, global batch).
        strategy: a ``tf.distribute.Strategy`` to run the objective under, or None.
        micro_batches: parts each replica's batch is split into (one at a time).
    """

    def __init__(self, model, method: LearnedMethod, loss_fn, report: InitReport,
                 size: int, strategy=None, micro_batches: int = 1):
        super().__init__(model, method, loss_fn, report, size)
        self.strategy, self.micro_batches = strategy, micro_batches
        self.scales = tf.Variable(tf.ones([len(self.tuned)]), trainable=False,
                                  name="metainit_scales")
        self.state = {name: tf.Variable(t, trainable=False, name=f"metainit_{name}")
                      for name, t in self.transform.init(self.scales.value(), self.base_norms).items()}
        self._spread = tf.function(
            lambda x: self.spread_at(self.scales.read_value(), self.weights(), x))

    def spread(self, x):
        return tuple(float(v) for v in self._spread(x))

    def params_at(self, scales) -> List[tf.Tensor]:
        return scaled(self.weights(), self.tuned, scales)

    def _objective(self, scales, shards_):
        return self.method.objective(self.loss_fn, self.params_at(scales), shards_)

    def _run(self, s, batches, grad: bool = True):
        """The objective over the whole batch and (``grad``) its gradient w.r.t. the scales.

        One device: the batch as it is, or in micro-batches. Under a strategy: each replica's
        part (in micro-batches), summed across replicas (:mod:`keras_metainit.shards`).

        Returns:
            ``(value, grad, constraint, metrics, batch_ok)``; ``grad`` None without ``grad``.
        """

        def local(batches, offset, across):
            bad = tf.cast(tf.logical_not(all_finite(batches)), tf.float32)
            batch_ok = (across(bad) if across else bad) == 0.0
            parts = shards.split(batches, self.micro_batches, offset)
            if not grad:
                value, constraint, metrics = shards.values(self._objective, s, parts, self.size,
                                                           across)
                return value, None, constraint, metrics, batch_ok
            value, g, constraint, metrics = shards.value_and_grad(
                self._objective, s, parts, self.size, across)
            return value, g, constraint, metrics, batch_ok

        if self.strategy is None:
            return local(batches, 0, None)

        def replica(batches):
            ctx = tf.distribute.get_replica_context()
            # each replica's part of the global batch (its static shape is unknown: the
            # distributed dataset is read from a generator)
            n = self.size // ctx.num_replicas_in_sync
            rid = ctx.replica_id_in_sync_group
            static = tf.get_static_value(rid)
            offset = int(static) * n if static is not None else rid * n
            across = None
            if ctx.num_replicas_in_sync > 1:
                across = lambda tree: ctx.all_reduce(tf.distribute.ReduceOp.SUM, tree)  # noqa: E731
            return local(batches, offset, across)

        out = self.strategy.run(replica, args=(batches,))
        # every replica holds the same (reduced) results
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def step(self, batches):
        """One compiled step: objective, its gradient w.r.t. the scales, and the guarded update
        (written only where it is finite)."""
        self.traces += 1  # runs at trace time only
        s = self.scales.read_value()
        value, grads, constraint, metrics, batch_ok = self._run(s, batches)
        state = {k: v.read_value() for k, v in self.state.items()}
        ok, new_s, new_state = guarded_update(self.transform, value, grads, state, s,
                                              self.base_norms, constraint, batch_ok)
        self.scales.assign(tf.where(ok, new_s, s))
        for k, var in self.state.items():
            var.assign(tf.where(ok, new_state[k], state[k]))
        return {**metrics, "value": value, "ok": ok, "batch_ok": batch_ok,
                "constraint": constraint}

    def evaluate(self, batches):
        """The guard's evaluation at the current scales: the objective without its gradient
        (``(value, constraint, metrics, batch_ok)``), compiled on its own. It costs a trace of
        its own (the objective's, one derivative order below the step's) and saves the scale
        gradient at every check: MetaInit on the 8x256 MLP, an evaluation is about half a step
        (``benchmarks/step_cost.py``)."""
        value, _, constraint, metrics, batch_ok = self._run(self.scales.read_value(), batches,
                                                            grad=False)
        return value, constraint, metrics, batch_ok


def _compiled(fn, signature, report: InitReport):
    """``tf.function(fn)``, falling back to XLA where TensorFlow cannot instantiate the graph.

    A safety net: loss functions from :func:`~keras_metainit.model_fn.make_loss_fn` avoid the known cause (see there), but
    a graph that oneDNN's rewrite still turns cyclic ("N nodes in a cycle" at instantiation) is
    compiled by XLA instead, which does not run that pass. The fallback happens at the first call,
    before any state is written, and is noted in the report.
    """
    plain = tf.function(fn, input_signature=signature)
    chosen = []

    def call(*args):
        if not chosen:
            try:
                out = plain(*args)
                chosen.append(plain)
                return out
            except tf.errors.InvalidArgumentError as e:
                if "cycle" not in str(e):
                    raise
                chosen.append(tf.function(fn, input_signature=signature, jit_compile=True))
                note = ("compiled with XLA: TensorFlow could not instantiate the plain graph "
                        "(a known 'nodes in a cycle' failure of higher-order convolution graphs)")
                if note not in report.notes:
                    report.notes.append(note)
        return chosen[0](*args)

    return call


def _tf_dataset(step_batches) -> tf.data.Dataset:
    """The steps as a ``tf.data.Dataset`` (for ``tf.distribute`` and the step's signature): the
    same NumPy steps every backend reads, their signature from the first."""
    first = next(iter(step_batches))
    spec = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, tf.as_dtype(a.dtype)), first)
    return tf.data.Dataset.from_generator(lambda: iter(step_batches),
                                          output_signature=spec).prefetch(2)


def strategy_of(model, strategy):
    """The strategy to run under: the argument, the enclosing scope's, or the model's."""
    if strategy is not None:
        return strategy
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    for v in model.variables:
        value = getattr(v, "value", None)
        if isinstance(value, tf.distribute.DistributedValues):
            return value.distribute_strategy
    return None


def run(model, method, dataset, loss_spec, steps, verbose, report, strategy=None,
        micro_batches: int = 1, started: Optional[float] = None):
    """:func:`keras_metainit.learned.run_learned` on the TensorFlow backend (the same arguments;
    ``strategy`` None means :func:`strategy_of` the model)."""
    strategy = strategy_of(model, strategy)
    loss_fn, step_batches = start(model, method, dataset, loss_spec)
    size = step_batches.size
    steps_ds = _tf_dataset(step_batches)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if size % (replicas * micro_batches):
        raise ValueError(
            f"A batch of {size} examples cannot be split into {replicas} replica(s) x "
            f"{micro_batches} micro-batch(es) of equal size; pass a `batch_size` that is a "
            f"multiple of {replicas * micro_batches}."
        )
    run = TensorFlowRun(model, method, loss_fn, report, size, strategy, micro_batches)
    if strategy is not None:
        report.notes.append(f"distributed: {type(strategy).__name__}, {replicas} replica(s), "
                            f"global batch {size}")
        steps_ds = strategy.experimental_distribute_dataset(steps_ds)
    if micro_batches > 1:
        report.notes.append(f"micro-batches: {micro_batches} per replica, "
                            f"{size // (replicas * micro_batches)} examples each")
    it = iter(steps_ds)
    spec = steps_ds.element_spec
    step = _compiled(run.step, [spec], report)
    evaluate = _compiled(run.evaluate, [spec], report)

    def inputs_of(batches):  # a step's first batch's x, whole (every replica's part)
        x = batches[0][0]
        if strategy is None:
            return x
        return tf.nest.map_structure(
            lambda t: tf.concat(strategy.experimental_local_results(t), 0), x)

    return drive(run, method, it, step, evaluate, steps, verbose, report, started, inputs_of)
