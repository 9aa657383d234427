"""The learned-method runner: one compiled step (objective, its gradient with respect to one scale
per tuned tensor, the method's scale update), the strategy and micro-batch plumbing, the guard that
keeps the run's best scales, and the write-back.

The model's weights are evaluated at ``θ = s · W⁰`` through ``model.stateless_call``, so the model is
never touched during the run. Every candidate is scored by the method's own objective on one fixed
probe batch (the first), and the best scales the run reached are written back with ``assign`` at
the end; if none beats the start, the model is left unchanged and the report says so. A run that
diverges (a non-finite objective, gradient or scale) or is interrupted ends the same way, so the
weights are never worse than they started, and never NaN. Under a
``tf.distribute`` strategy each replica computes its part of the batch and the parts are summed
exactly; with ``micro_batches`` each replica's part is split again and run one piece at a time
(:mod:`keras_metainit.shards`). Either way the scales are those of one device on the whole batch.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_metainit import data as data_lib
from keras_metainit import methods as methods_lib
from keras_metainit import shards
from keras_metainit.model_fn import make_loss_fn
from keras_metainit.report import InitReport, Progress

__all__ = ["run_learned", "drive", "select", "step_dataset", "strategy_of", "scaled",
           "all_finite", "guarded_update", "write_scales"]


def _he_norm(shape) -> float:
    """Expected norm of a He-normal kernel of this shape, ``sqrt(2 · units)``.

    Every entry has variance ``2 / fan_in`` and there are ``fan_in · units`` of them (Dense:
    ``fan_in`` = inputs; ConvND: receptive field × input channels; ``units`` = ``shape[-1]``).
    """
    return math.sqrt(2.0 * shape[-1])



def select(model, method: methods_lib.LearnedMethod, report: InitReport):
    """``(variables, norms, tuned)``: the trainable variables, their norms (float64) and the
    indices of those the method tunes (nonzero norm); zero-norm tensors are noted in the report.

    Raises:
        ValueError: no tensor to tune.
    """
    variables = list(model.trainable_variables)
    norms = [float(np.linalg.norm(np.asarray(v.numpy(), np.float64))) for v in variables]
    skipped_zero = [v.path for v, n in zip(variables, norms) if method.tunes(v) and n == 0.0]
    tuned = [i for i, (v, n) in enumerate(zip(variables, norms)) if method.tunes(v) and n > 0.0]
    if not tuned:
        raise ValueError(
            f"The model has no tensor for {method.name} to tune: it needs "
            f"{method.tunes_description} and a nonzero norm. Trainable variables: "
            f"{[v.path for v in variables]}"
        )
    if skipped_zero:
        names = ", ".join(skipped_zero[:3]) + (", ..." if len(skipped_zero) > 3 else "")
        report.notes.append(f"skipped {len(skipped_zero)} tensor(s) of zero norm: {names}")
    return variables, norms, tuned


# -- the pieces of a step every backend's runner shares (keras.ops: traced by tf.function or jax.jit)
def scaled(weights, tuned, scales) -> list:
    """The weights with tensor ``tuned[j]`` multiplied by ``scales[j]`` (``θ = s · W⁰``)."""
    params = list(weights)
    for j, i in enumerate(tuned):
        params[i] = ops.cast(scales[j], params[i].dtype) * params[i]
    return params


def all_finite(batches):
    """Whether every floating tensor of the batches is finite (a bool tensor)."""
    floats = [t for t in keras.tree.flatten(batches)
              if "float" in keras.backend.standardize_dtype(t.dtype)]
    return ops.all(ops.stack([ops.all(ops.isfinite(t)) for t in floats])) if floats \
        else ops.convert_to_tensor(True)


def guarded_update(transform, value, grads, state, scales, base_norms, constraint, batch_ok):
    """``(ok, new_scales, new_state)``: the method's scale update and whether it may be written
    (a finite batch, objective, gradient and result)."""
    new_s, new_state = transform.update(grads, state, scales, base_norms, constraint)
    ok = (batch_ok & ops.isfinite(value) & ops.all(ops.isfinite(grads))
          & ops.all(ops.isfinite(new_s)))
    return ok, new_s, new_state


def write_scales(variables, tuned, scales: np.ndarray) -> None:
    """Multiply each tuned variable by its scale, in place (the end of a run)."""
    for j, i in enumerate(tuned):
        v = variables[i]
        v.assign(ops.cast(float(scales[j]), v.dtype) * v.value)


class _ScaleRun:
    """State and compiled functions of one learned-method run.

    Args:
        model: the model.
        method: the learned method.
        loss_fn: the per-example loss (:func:`make_loss_fn`).
        report: the report being filled.
        size: examples per batch of the step (the whole, global batch).
        strategy: a ``tf.distribute.Strategy`` to run the objective under, or None.
        micro_batches: parts each replica's batch is split into (one at a time).
    """

    def __init__(self, model, method: methods_lib.LearnedMethod, loss_fn, report: InitReport,
                 size: int, strategy=None, micro_batches: int = 1):
        self.method, self.loss_fn = method, loss_fn
        self.size, self.strategy, self.micro_batches = size, strategy, micro_batches
        self.variables, self.norms, self.tuned = select(model, method, report)
        norms = self.norms
        k = len(self.tuned)
        self.base_norms = tf.constant([norms[i] for i in self.tuned], tf.float32)
        self.scales = tf.Variable(tf.ones([k]), trainable=False, name="metainit_scales")
        self.transform = method.transform()
        self.state = {name: tf.Variable(t, trainable=False, name=f"metainit_{name}")
                      for name, t in self.transform.init(self.scales.value(), self.base_norms).items()}
        self.traces = 0

    def params_at(self, scales) -> List[tf.Tensor]:
        return scaled([v.value for v in self.variables], self.tuned, scales)

    def _objective(self, scales, shards_):
        return self.method.objective(self.loss_fn, self.params_at(scales), shards_)

    def _run(self, s, batches):
        """The objective over the whole batch and its gradient w.r.t. the scales.

        One device: the batch as it is, or in micro-batches. Under a strategy: each replica's
        part (in micro-batches), summed across replicas (:mod:`keras_metainit.shards`).

        Returns:
            ``(value, grad, constraint, metrics, batch_ok)``.
        """

        def local(batches, offset, across):
            bad = tf.cast(tf.logical_not(all_finite(batches)), tf.float32)
            batch_ok = (across(bad) if across else bad) == 0.0
            parts = shards.split(batches, self.micro_batches, offset)
            value, g, constraint, metrics = shards.value_and_grad(
                self._objective, s, parts, self.size, across)
            return value, g, constraint, metrics, batch_ok

        if self.strategy is None:
            return local(batches, 0, None)

        def replica(batches):
            ctx = tf.distribute.get_replica_context()
            n = int(tf.nest.flatten(batches)[0].shape[0])
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

    def step(self, batches, apply):
        """One compiled step: objective, its gradient w.r.t. the scales, and the guarded update,
        written only if ``apply`` (a bool tensor). With ``apply`` false the step is the guard's
        evaluation at the current scales: one traced function serves both (measured on
        ResNet50V2, batch 16: the same 144 s to the end of a 3-step run as with a separate
        value-only function, whose trace shared most of the step's), for the price of a
        gradient at every check."""
        self.traces += 1  # runs at trace time only
        s = self.scales.read_value()
        value, grads, constraint, metrics, batch_ok = self._run(s, batches)
        state = {k: v.read_value() for k, v in self.state.items()}
        ok, new_s, new_state = guarded_update(self.transform, value, grads, state, s,
                                              self.base_norms, constraint, batch_ok)
        write = ok & apply
        self.scales.assign(tf.where(write, new_s, s))
        for k, var in self.state.items():
            var.assign(tf.where(write, new_state[k], state[k]))
        return {**metrics, "value": value, "ok": ok, "batch_ok": batch_ok,
                "constraint": constraint}

    def write_back(self, scales: np.ndarray):
        write_scales(self.variables, self.tuned, scales)


def _compiled(fn, signature, report: InitReport):
    """``tf.function(fn)``, falling back to XLA where TensorFlow cannot instantiate the graph.

    A safety net: loss functions from :func:`make_loss_fn` avoid the known cause (see there), but
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


def step_dataset(dataset: tf.data.Dataset, method: methods_lib.LearnedMethod) -> tf.data.Dataset:
    """The stream of a learned method's steps: ``method.batches_per_step`` consecutive batches,
    passed through ``method.prepare`` (a tuple of batches per step)."""
    k = method.batches_per_step

    def prepare(*element):
        return tuple(method.prepare(tuple(tf.nest.map_structure(lambda t: t[i], element)
                                          for i in range(k))))

    return dataset.batch(k, drop_remainder=True).map(prepare)


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


def run_learned(model, method, dataset, loss_spec, steps, verbose, report, strategy=None,
                 micro_batches: int = 1, started: Optional[float] = None):
    loss_fn = make_loss_fn(model, loss_spec, training=method.training)
    steps_ds = step_dataset(dataset, method)
    size = int(tf.nest.flatten(steps_ds.element_spec)[0].shape[0])
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if size % (replicas * micro_batches):
        raise ValueError(
            f"A batch of {size} examples cannot be split into {replicas} replica(s) x "
            f"{micro_batches} micro-batch(es) of equal size; pass a `batch_size` that is a "
            f"multiple of {replicas * micro_batches}."
        )
    run = _ScaleRun(model, method, loss_fn, report, size, strategy, micro_batches)
    if strategy is not None:
        report.notes.append(f"distributed: {type(strategy).__name__}, {replicas} replica(s), "
                            f"global batch {size}")
        steps_ds = strategy.experimental_distribute_dataset(steps_ds)
    if micro_batches > 1:
        report.notes.append(f"micro-batches: {micro_batches} per replica, "
                            f"{size // (replicas * micro_batches)} examples each")
    it = iter(steps_ds)
    spec = steps_ds.element_spec
    compiled = _compiled(run.step, [spec, tf.TensorSpec([], tf.bool)], report)
    names = method.metric_names

    def evaluate(batches):
        out = compiled(batches, tf.constant(False))
        return out["value"], out["constraint"], {n: out[n] for n in names}, out["batch_ok"]

    return drive(run, method, it, lambda batches: compiled(batches, tf.constant(True)), evaluate,
                 steps, verbose, report, started)


def drive(run, method, it, step_fn, eval_fn, steps, verbose, report, started):
    """The run's loop, on every backend: steps, the best-scales guard, the write-back, the
    report. ``run`` holds ``scales`` (``.numpy()``), ``write_back``, ``traces`` and the tensor
    table's fields; ``step_fn(batches)`` returns the step's metrics with ``ok``, ``batch_ok``
    and ``constraint``; ``eval_fn(batches)`` returns ``(value, constraint, metrics, batch_ok)``.
    """
    probe = next(it)  # the fixed batch every candidate is scored on
    first = time.perf_counter()
    guard = _BestScales(eval_fn, probe, run.scales, steps)
    report.before = guard.before
    report.history = {n: [] for n in method.metric_names}
    progress = Progress(steps, verbose, f"{type(method).__name__}: {steps} steps",
                        method.metric_names)
    interrupted = bad_data = False
    step_times: List[float] = []
    try:
        batches = probe
        for t in range(steps):
            t0 = time.perf_counter()
            out = {n: np.asarray(v) for n, v in step_fn(batches).items()}
            step_times.append(time.perf_counter() - t0)
            if t == 0:
                report.trace_time = time.perf_counter() - first
            if not out["batch_ok"]:
                bad_data = True
                raise data_lib.DataError(
                    f"A batch of `data` contains NaN or Inf (step {t}); the model is unchanged."
                )
            if not out["ok"]:
                report.stopped_early = (f"non-finite objective, gradient or scale at step {t}; "
                                        "kept the best scales before it")
                warnings.warn(f"{type(method).__name__}: {report.stopped_early}.", RuntimeWarning,
                              stacklevel=3)
                break
            for n in method.metric_names:
                report.history[n].append(float(out[n]))
            report.constraint_steps += int(out["constraint"])
            report.steps_run = t + 1
            guard.after_step(t + 1)
            progress.update(t + 1, {n: float(out[n]) for n in method.metric_names})
            batches = next(it)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not bad_data and guard.improved:
            run.write_back(guard.scales)
        report.traces = run.traces
        # the first step includes tracing and compilation
        report.step_time = float(np.median(step_times[1:])) if len(step_times) > 1 else float("nan")
        report.after = guard.metrics
        report.kept_start = not guard.improved
        if interrupted:
            report.notes.append("interrupted: the best scales so far were written back"
                                if guard.improved else "interrupted: the model is unchanged")
        if report.kept_start and report.steps_run and not bad_data:
            report.notes.append(guard.kept_start_note(method.metric_names[0]))
        _tensor_table(run, guard.scales, report)
    report.wall_time = time.perf_counter() - started
    progress.done(report)
    return report


class _BestScales:
    """The run's guard: the best scales it reached, scored by the method's own objective on one
    fixed probe batch, and never worse than the start.

    A candidate is scored by ``(constraint, value)``: a point that violates the method's
    gradient-norm bound ranks below any point that satisfies it; then the smaller objective wins
    (for MetaInit the gradient quotient). A non-finite value never wins. The scales are scored at
    the start, every ``steps // 20`` steps and after the last step; the run writes the best, so a
    method whose steps make its objective worse leaves the model as it was.
    """

    CHECKS = 20

    def __init__(self, eval_fn, probe, scales: tf.Variable, steps: int):
        self.eval_fn, self.probe, self.variable = eval_fn, probe, scales
        self.every = max(1, steps // self.CHECKS)
        self.steps = steps
        score, metrics, batch_ok = self._score()
        if not batch_ok:
            raise data_lib.DataError("The first batch of `data` contains NaN or Inf.")
        self.start_score = self.best = score
        self.before = self.metrics = metrics
        self.scales = scales.numpy()
        self.last_metrics = metrics
        self.improved = False

    def _score(self):
        value, constraint, metrics, batch_ok = self.eval_fn(self.probe)
        value = float(value)
        metrics = {n: float(v) for n, v in metrics.items()}
        return ((bool(constraint), value if math.isfinite(value) else math.inf), metrics,
                bool(batch_ok))

    def after_step(self, done: int) -> None:
        """Score the current scales if a check falls on step ``done``; keep them if best."""
        if done % self.every and done != self.steps:
            return
        score, metrics, _ = self._score()
        self.last_metrics = metrics
        if score < self.best:
            self.best, self.metrics, self.scales = score, metrics, self.variable.numpy()
            self.improved = True

    def kept_start_note(self, headline: str) -> str:
        return (f"kept the start: no scales this run reached scored better than the start on the "
                f"probe batch ({headline} {self.before.get(headline, float('nan')):.4g} at the "
                f"start, {self.last_metrics.get(headline, float('nan')):.4g} at the last check); "
                "the model is unchanged")


def _tensor_table(run: _ScaleRun, scales: np.ndarray, report: InitReport) -> None:
    scale_of = {i: float(scales[j]) for j, i in enumerate(run.tuned)}
    gain_before, gain_after = 1.0, 1.0
    for i, v in enumerate(run.variables):
        s = scale_of.get(i, 1.0)
        report.tensors.append({
            "name": v.path, "shape": tuple(v.shape), "tuned": i in scale_of,
            "norm_before": run.norms[i], "norm_after": run.norms[i] * s, "scale": s,
        })
        if i in scale_of and len(v.shape) >= 2:
            he = _he_norm(tuple(v.shape))
            gain_before *= run.norms[i] / he
            gain_after *= run.norms[i] * s / he
    report.end_to_end_gain = {"before": gain_before, "after": gain_after}
