"""``InitReport``: what an initialization did, to print, plot and assert on."""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Dict, List, Optional

import keras
import numpy as np

__all__ = ["InitReport", "Progress", "resolve_verbose"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v or math.isinf(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


@dataclasses.dataclass
class InitReport:
    """The record of one ``meta_initialize`` call.

    Attributes:
        method: the method's name; ``config`` its hyperparameters.
        loss: the loss used and where it came from (argument, compiled, inferred).
        data: a description of the data source.
        history: per-step metrics, ``{"gq": [...], "loss": [...], ...}`` (learned methods).
        before, after: the headline metrics at the start and at the end, on the same batch.
        tensors: one row per weight tensor: name, shape, norm before/after, scale, whether tuned.
        layers: one row per layer for layer-wise methods (set or skipped, variances, ...).
        end_to_end_gain: product over tuned kernels of ``‖W‖ / sqrt(2·units)`` (the expected
            norm of a He-normal kernel), before and after: below 1 the net shrinks its signal.
        steps_run: steps taken; ``stopped_early`` why the run ended before ``steps``, if it did.
        kept_start: a learned run found no scales better than the start by its own objective on
            its probe batch and left the model unchanged (the notes say why).
        constraint_steps: steps that reduced the gradient-norm constraint instead of the objective.
        wall_time: seconds of the whole call (data, tracing, steps, write-back); ``traces``: how
            often the compiled step was traced.
        step_time: median seconds per step after the first (which traces and compiles); the
            steps are timed by blocks between two read-backs of their metrics, each step of a
            block its average.
        trace_time: seconds until the first step returned (the output spread's forward pass at
            the start and the first step: tracing and compiling dominate on large models).
        guard_time: seconds of the best-scales guard's checks after the steps (scoring the
            probe batch at most ten times, the last step among them); ``data_time``: seconds
            spent waiting for the next batch. Both are part of ``wall_time``, not of
            ``step_time``.
        notes: anything the user should know (precision, skipped tensors, restorations).
        stages: for a chain of methods (``method=["lsuv", "gradinit"]``), each stage's own
            report, in order; the fields above then hold the last learned stage's metrics and
            tensors and every stage's layer rows and notes.
    """

    method: str
    config: Dict[str, Any]
    loss: str = ""
    data: str = ""
    history: Dict[str, List[float]] = dataclasses.field(default_factory=dict)
    before: Dict[str, float] = dataclasses.field(default_factory=dict)
    after: Dict[str, float] = dataclasses.field(default_factory=dict)
    tensors: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    layers: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    end_to_end_gain: Dict[str, float] = dataclasses.field(default_factory=dict)
    steps_run: int = 0
    stopped_early: Optional[str] = None
    kept_start: bool = False
    constraint_steps: int = 0
    wall_time: float = 0.0
    step_time: float = float("nan")
    trace_time: float = float("nan")
    guard_time: float = 0.0
    data_time: float = 0.0
    traces: int = 0
    notes: List[str] = dataclasses.field(default_factory=list)
    stages: List["InitReport"] = dataclasses.field(default_factory=list)

    # ------------------------------------------------------------------ data
    def to_dict(self) -> Dict[str, Any]:
        """Everything in the report as plain Python types (JSON serializable)."""
        return dataclasses.asdict(self)

    @property
    def scales(self) -> Dict[str, float]:
        """Scale factor per tuned tensor, by name."""
        return {t["name"]: t["scale"] for t in self.tensors if t.get("tuned")}

    # ------------------------------------------------------------------ text
    def __str__(self) -> str:
        lines = [f"keras-metainit report: {self.method}"]
        for i, stage in enumerate(self.stages, 1):
            what = (f"{stage.steps_run} steps" if stage.tensors
                    else f"{sum(str(r.get('status', '')).startswith('set') for r in stage.layers)}"
                         f" layers set")
            lines.append(f"  stage {i}: {stage.method}, {what}, {stage.wall_time:.2f} s")
        lines.append(f"  loss: {self.loss}")
        lines.append(f"  data: {self.data}")
        lines.append(f"  steps: {self.steps_run}" + (f" (stopped early: {self.stopped_early})"
                                                    if self.stopped_early else ""))
        if self.constraint_steps:
            lines.append(f"  constraint steps: {self.constraint_steps}")
        lines.append(f"  time: {self.wall_time:.2f} s"
                     + (f" ({self.step_time * 1e3:.1f} ms/step" + (
                         f", first step {self.trace_time:.1f} s" if math.isfinite(self.trace_time)
                         else "") + ")" if self.step_time == self.step_time else ""))
        for key in self.before:
            lines.append(f"  {key}: {_fmt(self.before[key])} -> {_fmt(self.after.get(key, float('nan')))}")
        if self.end_to_end_gain:
            lines.append("  end-to-end gain vs He: "
                         f"{_fmt(self.end_to_end_gain.get('before'))} -> "
                         f"{_fmt(self.end_to_end_gain.get('after'))}")
        tuned = [r for r in self.tensors if r.get("tuned", True)]
        for title, rows in (("tensors", tuned), ("layers", self.layers)):
            if rows:
                lines.append(f"  {title}:")
                lines.extend("    " + r for r in _table(rows))
        if len(tuned) < len(self.tensors):
            lines.append(f"  ({len(self.tensors) - len(tuned)} tensors not tuned, unchanged: "
                         "see report.tensors)")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def print(self) -> None:
        """Print the report."""
        print(str(self))

    # ------------------------------------------------------------------ plot
    def plot(self, path: Optional[str] = None):
        """Draw the headline metric per step and the scale per tensor.

        Args:
            path: where to save the figure (PNG, PDF, ... by extension); None to only return it.

        Returns:
            The matplotlib ``Figure``.
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - optional extra
            raise ImportError("InitReport.plot needs matplotlib: pip install keras-metainit[plot]") from e
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for key, values in self.history.items():
            if key in ("constraint",):
                continue
            ax1.plot(np.arange(len(values)), values, label=key)
        ax1.set_xlabel("step")
        ax1.set_yscale("log" if self.history and all(
            v > 0 for vs in self.history.values() for v in vs) else "linear")
        ax1.set_title(f"{self.method}: metrics per step")
        if self.history:
            ax1.legend()
        rows = ([t for t in self.tensors if t.get("tuned")]
                or [r for r in self.layers if "var_after" in r])
        names = [r["name"] for r in rows]
        values = [r.get("scale", r.get("var_after", float("nan"))) for r in rows]
        ax2.bar(np.arange(len(rows)), values)
        ax2.axhline(1.0, color="k", lw=0.5)
        ax2.set_xticks(np.arange(len(rows)))
        ax2.set_xticklabels(names, rotation=90, fontsize=6)
        ax2.set_title("scale per tensor" if self.tensors else "output variance per layer")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def _table(rows: List[Dict[str, Any]]) -> List[str]:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return out


def resolve_verbose(verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"Argument `verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)


class Progress:
    """A Keras progress bar for verbose=1, one line per call for verbose=2, nothing for 0."""

    #: seconds between two updates of the bar: the run reads its metrics back from the device
    #: only then (and at the guard's checks), not at every step
    INTERVAL = 0.1

    def __init__(self, target: int, verbose: int, title: str, metrics=()):
        self.verbose = verbose
        self.last = -math.inf
        if verbose == 1:
            print(title)
            # stateful: show each metric's latest value, not a running average
            self.bar = keras.utils.Progbar(target, verbose=1, unit_name="step",
                                           stateful_metrics=list(metrics))

    def due(self) -> bool:
        """Whether the bar wants an update now (verbose=1, :attr:`INTERVAL` since the last)."""
        return self.verbose == 1 and time.perf_counter() - self.last >= self.INTERVAL

    def update(self, current: int, values: Dict[str, float]):
        self.last = time.perf_counter()
        if self.verbose == 1:
            self.bar.update(current, [(k, v) for k, v in values.items()], finalize=False)

    def done(self, report: InitReport, current: Optional[int] = None):
        if self.verbose == 1:
            self.bar.update(report.steps_run if current is None else current, finalize=True)
        elif self.verbose == 2:
            changes = ", ".join(f"{k} {report.before[k]:.4g} -> {report.after.get(k, float('nan')):.4g}"
                                for k in report.before)
            print(f"{report.method}: {report.steps_run} steps, {report.wall_time:.1f}s"
                  + (f", {changes}" if changes else ""))

