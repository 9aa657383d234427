"""The backend-neutral part of a learned-method run: what is tuned, the loop, the best-scales
guard, the write-back and the report's tensor table.

keras-tuner's split between ``BaseTuner`` (the search loop) and ``Tuner`` (how a trial runs) is
the model: :func:`drive` owns the loop and :class:`Run` what every run holds; a backend's module
(:mod:`keras_metainit.learned.tensorflow`, :mod:`keras_metainit.learned.jax`,
:mod:`keras_metainit.learned.torch`) owns how a step is compiled and run, and subclasses
:class:`Run` with the scales and state in its own form: ``tf.Variable``s written by a
``tf.function`` on TensorFlow; on JAX and torch values carried from step to step by one pure
step function (:class:`FunctionalRun`), compiled by ``jax.jit`` or run eagerly. The pieces of a
step every backend shares (:func:`scaled`, :func:`all_finite`, :func:`guarded_update`) are
written in ``keras.ops``.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import List

import keras
import numpy as np
from keras import ops

from keras_metainit import data as data_lib
from keras_metainit import shards
from keras_metainit.learned.guard import BestScales, output_spread
from keras_metainit.methods.base import LearnedMethod
from keras_metainit.model_fn import make_forward, make_loss_fn
from keras_metainit.report import InitReport, Progress

__all__ = ["Run", "FunctionalRun", "start", "drive", "select", "scaled", "all_finite",
           "guarded_update", "write_scales", "refuse_tensorflow_options"]

def _he_norm(shape) -> float:
    """Expected norm of a He-normal kernel of this shape, ``sqrt(2 · units)``.

    Every entry has variance ``2 / fan_in`` and there are ``fan_in · units`` of them (Dense:
    ``fan_in`` = inputs; ConvND: receptive field × input channels; ``units`` = ``shape[-1]``).
    """
    return math.sqrt(2.0 * shape[-1])


def select(model, method: LearnedMethod, report: InitReport):
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


class Run:
    """What every backend's run holds, made once: the tuned tensors (:func:`select`), their
    norms, the method's scale update, and the write-back.

    A backend's subclass adds ``scales`` (the current scales, read by ``.numpy()``), the update's
    state and the compiled step; :func:`drive` reads ``scales``, ``traces`` (counted by the step
    at trace time), :meth:`write_back` and the tensor table's fields (``variables``, ``norms``,
    ``tuned``).

    Args:
        model: the model.
        method: the learned method.
        loss_fn: the per-example loss (:func:`~keras_metainit.model_fn.make_loss_fn`).
        report: the report being filled (zero-norm tensors are noted in it).
        size: examples per batch of the step (the whole, global batch).
    """

    def __init__(self, model, method: LearnedMethod, loss_fn, report: InitReport, size: int):
        self.method, self.loss_fn, self.size = method, loss_fn, size
        self.forward = make_forward(model, method.training)
        self.variables, self.norms, self.tuned = select(model, method, report)
        self.base_norms = ops.convert_to_tensor([self.norms[i] for i in self.tuned], "float32")
        self.transform = method.transform()
        self.traces = 0

    def weights(self) -> list:
        """The trainable weights' current values, in ``model.trainable_variables`` order."""
        return [v.value for v in self.variables]

    def spread_at(self, scales, weights, x):
        """:func:`output_spread` of the model at ``scales`` on inputs ``x`` (the guard's check
        that the model still responds to its input); a backend compiles it as ``spread``."""
        return output_spread(self.forward(scaled(weights, self.tuned, scales), x))

    def write_back(self, scales: np.ndarray) -> None:
        write_scales(self.variables, self.tuned, scales)


class Scales:
    """The current scales of a :class:`FunctionalRun`, read like the TensorFlow runner's variable
    (``.numpy()``): the guard holds this object while its value changes."""

    def __init__(self, value):
        self.value = value

    def numpy(self) -> np.ndarray:
        return ops.convert_to_numpy(self.value)


class FunctionalRun(Run):
    """A run whose scales and update state are values carried from step to step by one pure
    step function of ``(scales, state, weights, batches)`` (JAX and torch). The trainable
    weights at the start are an argument of the step, not constants baked into it.

    Args:
        model: as :class:`Run`.
        method: as :class:`Run`.
        loss_fn: as :class:`Run`.
        report: as :class:`Run`.
        size: as :class:`Run`.
        compile: how the backend runs a pure function (``jax.jit``; on torch the function
            itself, its results detached).
        tracing: whether ``compile`` traces the step once (then the step counts its traces).
    """

    def __init__(self, model, method: LearnedMethod, loss_fn, report: InitReport, size: int,
                 compile, tracing: bool):
        super().__init__(model, method, loss_fn, report, size)
        self.tracing = tracing
        self.scales = Scales(ops.ones([len(self.tuned)], "float32"))
        self.state = self.transform.init(self.scales.value, self.base_norms)
        self._step = compile(self._step_fn)
        self._eval = compile(self._eval_fn)
        self._spread = compile(self.spread_at)

    def _objective(self, weights):
        def objective(s, shards_):
            out = self.method.objective(self.loss_fn, scaled(weights, self.tuned, s), shards_)
            # Python constants a method returns (MetaInit's constraint: False) as tensors
            return keras.tree.map_structure(ops.convert_to_tensor, out)

        return objective

    def _step_fn(self, scales, state, weights, batches):
        if self.tracing:
            self.traces += 1  # runs at trace time only
        value, grads, constraint, metrics = shards.value_and_grad(
            self._objective(weights), scales, [(batches, 0)], self.size)
        batch_ok = all_finite(batches)
        ok, new_s, new_state = guarded_update(self.transform, value, grads, state, scales,
                                              self.base_norms, constraint, batch_ok)
        keep = lambda new, old: ops.where(ok, new, old)  # noqa: E731
        return (keep(new_s, scales), keras.tree.map_structure(keep, new_state, state),
                {**metrics, "value": value, "ok": ok, "batch_ok": batch_ok,
                 "constraint": constraint})

    def _eval_fn(self, scales, weights, batches):
        value, constraint, metrics = shards.values(
            self._objective(weights), scales, [(batches, 0)], self.size)
        return value, constraint, metrics, all_finite(batches)

    # -- the runner's interface (drive) ----------------------------------------------------
    def place(self, batches):
        """A step's host batches as the step takes them (the backend's tensors)."""
        return keras.tree.map_structure(ops.convert_to_tensor, batches)

    def step(self, batches):
        self.scales.value, self.state, out = self._step(self.scales.value, self.state,
                                                        self.weights(), batches)
        return out

    def evaluate(self, batches):
        return self._eval(self.scales.value, self.weights(), batches)

    def spread(self, x):
        return tuple(float(ops.convert_to_numpy(v))
                     for v in self._spread(self.scales.value, self.weights(), x))

    def run(self, step_batches, steps: int, verbose: int, report: InitReport, started: float):
        """:func:`drive` over the placed steps of ``step_batches`` (an iterable of steps)."""
        it = (self.place(b) for b in step_batches)
        return drive(self, self.method, it, self.step, self.evaluate, steps, verbose, report,
                     started)


def refuse_tensorflow_options(strategy, micro_batches: int, backend: str,
                              alternative: str = "") -> None:
    """Refuse ``strategy`` and ``micro_batches`` off TensorFlow, naming what to use instead."""
    if strategy is not None:
        raise ValueError(f"`strategy` is a tf.distribute strategy, which needs the TensorFlow "
                         f"backend; the backend is {backend!r}.{alternative}")
    if micro_batches != 1:
        raise NotImplementedError(f"`micro_batches` needs the TensorFlow backend; on "
                                  f"{backend!r} pass micro_batches=1.{alternative}")


def start(model, method: LearnedMethod, batches, loss_spec):
    """``(loss_fn, steps)``: the per-example loss in the method's mode and the stream of the
    method's steps (:class:`~keras_metainit.batches.Steps`; ``steps.size`` examples per batch)."""
    return make_loss_fn(model, loss_spec, training=method.training), data_lib.Steps(batches, method)


def drive(run, method, it, step_fn, eval_fn, steps, verbose, report, started,
          inputs_of=lambda batches: batches[0][0]):
    """The run's loop, on every backend: steps, the best-scales guard, the write-back, the
    report. ``run`` holds ``scales`` (``.numpy()``), ``write_back``, ``traces``, ``spread(x)``
    (:meth:`Run.spread_at` at the current scales, as floats) and the tensor table's fields;
    ``step_fn(batches)`` returns the step's metrics with ``ok``, ``batch_ok`` and
    ``constraint``; ``eval_fn(batches)`` returns ``(value, constraint, metrics, batch_ok)``;
    ``inputs_of(batches)`` gives the model inputs of a step's first batch, on which the guard
    checks that the model still responds to its input.
    """
    probe = next(it)  # the fixed batch every candidate is scored on, and the first step's
    first = time.perf_counter()
    probe_inputs = inputs_of(probe)
    guard = BestScales(eval_fn, probe, run.scales, steps, lambda: run.spread(probe_inputs))
    if guard.no_signal:
        note = (f"no signal: the outputs do not depend on the input (their spread over the probe "
                f"batch is {guard.start_spread:.2g}: every prediction is the same); scaling "
                f"tensors recovers from this slowly if at all, a layer-wise method such as LSUV "
                f"fixes it (method='lsuv', or method=['lsuv', '{method.name}'])")
        report.notes.append(note)
        warnings.warn(f"{type(method).__name__}: {note}.", UserWarning, stacklevel=3)
    report.history = {n: [] for n in method.metric_names}
    progress = Progress(steps, verbose, f"{type(method).__name__}: {steps} steps",
                        method.metric_names)
    interrupted = bad_data = False
    step_times: List[float] = []  # seconds per step after the first, by block
    pending: list = []  # the steps' outputs since the last read-back, on the device
    stopped = None  # why the run stops early
    try:
        batches, block = probe, time.perf_counter()
        for t in range(steps):
            pending.append(step_fn(batches))
            done = t + 1
            # The outputs stay on the device (no host round-trip per step) until the first step
            # (trace time, the start's score), a check of the guard, the progress bar's next
            # update or the last step; the steps between are judged in order then. A step whose
            # write was refused (not ok) changed nothing, and those after it in the block are
            # dropped with it: the guard holds the best scales as they were scored.
            if t == 0 or guard.due(done) or progress.due():
                outs = [{n: ops.convert_to_numpy(v) for n, v in o.items()} for o in pending]
                now = time.perf_counter()
                if t == 0:
                    report.trace_time = now - first
                else:
                    step_times += [(now - block) / len(outs)] * len(outs)
                for k, out in enumerate(outs, done - len(outs)):
                    if not out["batch_ok"]:
                        bad_data = True
                        raise data_lib.DataError(f"A batch of `data` contains NaN or Inf (step "
                                                 f"{k}); the model is unchanged.")
                    if k == 0:  # the first step's objective, on the probe at the start's scales
                        report.before = guard.start(out)
                    if not out["ok"]:
                        stopped = (f"non-finite objective, gradient or scale at step {k}; kept "
                                   "the best scales before it")
                        break
                    for n in method.metric_names:
                        report.history[n].append(float(out[n]))
                    report.constraint_steps += int(out["constraint"])
                    report.steps_run = k + 1
                pending = []
                if stopped:
                    report.stopped_early = stopped
                    warnings.warn(f"{type(method).__name__}: {stopped}.", RuntimeWarning,
                                  stacklevel=3)
                    break
                t1 = time.perf_counter()
                guard.after_step(done)
                report.guard_time += time.perf_counter() - t1
                progress.update(done, {n: report.history[n][-1] for n in method.metric_names})
                block = time.perf_counter()
            t3 = time.perf_counter()
            batches = next(it)
            report.data_time += time.perf_counter() - t3
            block += time.perf_counter() - t3  # the wait for a batch is not a step's time
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not bad_data and guard.improved:
            run.write_back(guard.scales)
        report.traces = run.traces
        # the steps after the first (which traces and compiles)
        report.step_time = float(np.median(step_times)) if step_times else float("nan")
        report.after = guard.metrics
        report.kept_start = not guard.improved
        if interrupted:
            report.notes.append("interrupted: the best scales so far were written back"
                                if guard.improved else "interrupted: the model is unchanged")
        if guard.dead is not None:
            report.notes.append(guard.dead_note())
        if report.kept_start and report.steps_run and not bad_data:
            report.notes.append(guard.kept_start_note(method.metric_names[0]))
        _tensor_table(run, guard.scales, report)
    report.wall_time = time.perf_counter() - started
    progress.done(report)
    return report


def _tensor_table(run: Run, scales: np.ndarray, report: InitReport) -> None:
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
