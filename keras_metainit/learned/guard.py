"""The best-scales guard of a learned-method run: the best scales the run reached, scored by the
method's own objective on one fixed probe batch, never worse than the start, never a model whose
outputs stopped responding to its input. :func:`keras_metainit.learned.core.drive` holds one.
"""
from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["BestScales", "output_spread", "CONSTANT_SPREAD", "DEAD_RATIO", "DEAD_SPREAD"]

#: The outputs are *constant* (every prediction the same) where their spread over the probe
#: batch is at most this times ``max(1, mean |output|)``: e.g. the logits of ~1e-11 that
#: MobileNetV3Small (weights=None, 32×32) starts with, or a 20-layer ReLU MLP at ×0.1 He (~1e-14).
CONSTANT_SPREAD = 1e-6
#: A candidate is *dead* where the start was not constant and its spread fell below both
#: ``DEAD_RATIO`` times the start's and ``DEAD_SPREAD`` (in output units: logits, predictions):
#: the model has stopped responding to its input (a classifier head driven to the norm floor
#: gives a uniform softmax for every input).
DEAD_RATIO = 1e-2
DEAD_SPREAD = 1e-2


def output_spread(outputs):
    """``(spread, magnitude)``: the standard deviation over the batch of every output unit,
    averaged over units and outputs, and the mean absolute output (scalar tensors)."""
    flat = [ops.reshape(ops.cast(t, "float32"), (ops.shape(t)[0], -1))
            for t in keras.tree.flatten(outputs)]
    spread = ops.mean(ops.stack([ops.mean(ops.std(t, axis=0)) for t in flat]))
    magnitude = ops.mean(ops.stack([ops.mean(ops.abs(t)) for t in flat]))
    return spread, magnitude



class BestScales:
    """The run's guard: the best scales it reached, scored by the method's own objective on one
    fixed probe batch, and never worse than the start.

    A candidate is scored by ``(dead, constraint, value)``: a point where the model has stopped
    responding to its input (*dead*: the spread of its outputs over the probe batch fell below
    :data:`DEAD_RATIO` of the start's and below :data:`DEAD_SPREAD`) ranks below any live one,
    however low its objective, so a run never writes back scales that leave the output constant
    where it was not; then a point that violates the method's gradient-norm bound ranks below
    any point that satisfies it; then the smaller objective wins (for MetaInit the gradient
    quotient). A non-finite value never wins. The scales are scored at the start (by the first
    step, which runs on the probe batch and computes the objective there), every
    ``ceil(steps / CHECKS)`` steps (the last step among them) and after the last step: at most
    :attr:`CHECKS` + 1 evaluations of the objective, without its gradient, whatever the number of
    steps, so the guard is a fixed cost of a run rather than a share of every step (MetaInit,
    8x256 MLP: an evaluation is about half a step; ``benchmarks/step_cost.py``). The run writes
    the best, so a method whose steps make its objective worse leaves the model as it was.
    """

    CHECKS = 10

    def __init__(self, eval_fn, probe, scales, steps: int, spread_fn):
        self.eval_fn, self.probe, self.variable = eval_fn, probe, scales
        self.spread_fn = spread_fn
        self.every = max(1, -(-steps // self.CHECKS))
        self.steps = steps
        self.start_spread, magnitude = spread_fn()
        self.no_signal = self.start_spread <= CONSTANT_SPREAD * max(1.0, magnitude)
        self.dead = None  # (step, spread) of the first dead candidate
        self.best = (False, False, math.inf)
        self.before = self.metrics = self.last_metrics = {}
        self.scales = scales.numpy()
        self.improved = False

    def start(self, out) -> dict:
        """Score the start from the first step's outputs (``value``, ``constraint`` and the
        metrics, computed on the probe batch at the start's scales before the step's update):
        the same computation as an evaluation, with no call of its own. Returns its metrics."""
        metrics = {n: float(out[n]) for n in out if n not in ("value", "ok", "batch_ok",
                                                                "constraint")}
        self.best = self._ranked(self.start_spread, out["value"], out["constraint"])
        self.before = self.metrics = self.last_metrics = metrics
        return metrics

    def _ranked(self, spread: float, value, constraint) -> tuple:
        value = float(value)
        return (self._is_dead(spread), bool(constraint), value if math.isfinite(value) else math.inf)

    def _is_dead(self, spread: float) -> bool:
        return not self.no_signal and not (
            spread >= DEAD_RATIO * self.start_spread or spread >= DEAD_SPREAD)

    def _score(self, spread: float):
        value, constraint, metrics, _ = self.eval_fn(self.probe)  # the probe was checked finite
        return self._ranked(spread, value, constraint), {n: float(v) for n, v in metrics.items()}

    def due(self, done: int) -> bool:
        """Whether a check falls after step ``done``."""
        return done % self.every == 0 or done == self.steps

    def after_step(self, done: int) -> None:
        """Score the current scales if a check falls on step ``done``; keep them if best."""
        if not self.due(done):
            return
        spread, _ = self.spread_fn()
        score, metrics = self._score(spread)
        if score[0] and self.dead is None:
            self.dead = (done, spread)
        self.last_metrics = metrics
        if score < self.best:
            self.best, self.metrics, self.scales = score, metrics, self.variable.numpy()
            self.improved = True

    def dead_note(self) -> str:
        step, spread = self.dead
        kept = ("the best responsive scales were written back" if self.improved
                else "the model is unchanged")
        return (f"kept responsive: from step {step} the outputs stopped responding to the input "
                f"(spread over the probe batch {self.start_spread:.3g} at the start, "
                f"{spread:.3g} then); such scales are never kept, {kept}")

    def kept_start_note(self, headline: str) -> str:
        return (f"kept the start: no scales this run reached scored better than the start on the "
                f"probe batch ({headline} {self.before.get(headline, float('nan')):.4g} at the "
                f"start, {self.last_metrics.get(headline, float('nan')):.4g} at the last check); "
                "the model is unchanged")
