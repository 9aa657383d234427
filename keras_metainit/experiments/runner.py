"""A table of an experiment: every contender side by side, over seeds, with one budget.

:class:`Table` says what is run (the model builder, the data, the budget, the rows, the claims
judged on it, optionally a learning-rate grid); :func:`run_table` runs it and returns a plain
dictionary (JSON-ready): per row the values per seed, mean ± std (:mod:`.stats`), divergences
(:func:`~.training.diverged`), the runs that reach ``solved``, init and training seconds, the
loss curve averaged over seeds; and a verdict per claim by the one rule of :func:`.stats.compare`.
:func:`~.tables.format_table` prints it as markdown.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_metainit.experiments import stats
from keras_metainit.experiments.contenders import Contender
from keras_metainit.experiments.models import scale_kernels
from keras_metainit.experiments.tables import format_table
from keras_metainit.experiments.training import CE, Budget, Trainer

__all__ = ["Claim", "Table", "Session", "run_contender", "run_table", "format_table", "judge",
           "CURVE_POINTS"]

#: Points of each row's mean loss curve kept in the results.
CURVE_POINTS = 60


@dataclass(frozen=True)
class Claim:
    """A claim judged on a table: some row of ``candidates`` is above every row of ``against``
    by the verdict rule (:func:`~keras_metainit.experiments.stats.compare`).

    Attributes:
        text: the claim in words.
        candidates: the rows that claim to win (suite methods); absent rows are skipped.
        against: the rows they must beat (Keras default, He, AnyInit); absent rows are skipped.
        references: rows shown next to the verdict (the warmup or normalization the claim is
            about), not judged.
    """

    text: str
    candidates: Sequence[str]
    against: Sequence[str]
    references: Sequence[str] = ()


@dataclass
class Table:
    """What one table runs.

    Attributes:
        key: a short identifier (the JSON key).
        title: the table's title.
        build: the model builder, called as ``build(seed=seed, **arguments, **row.model)``.
        arguments: the builder's fixed keyword arguments.
        data: ``((x_train, y_train), (x_test, y_test))``.
        budget: the training budget of every row (a row may change it).
        contenders: the rows.
        claims: what is judged on the table.
        metric: ``"test_acc"`` (default) or another :class:`~.training.RunResult` field.
        solved: a run whose metric reaches this counts as solved (shown as a column).
        lrs: a learning-rate grid: each row's rate is the best of the grid on the first seed,
            then every seed is run at it (the sweep is kept in the results).
        loss: the training loss.
    """

    key: str
    title: str
    build: Callable[..., Any]
    arguments: Mapping[str, Any]
    data: Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]
    budget: Budget
    contenders: Sequence[Contender]
    claims: Sequence[Claim] = ()
    metric: str = "test_acc"
    solved: Optional[float] = None
    lrs: Sequence[float] = ()
    loss: Any = field(default=CE)


class Session:
    """What the tables of one run share: the compiled models (:class:`~.training.Trainer`) and
    the initialized weights of each row, model and seed, so that a row initialized once (a
    learned method costs tens of seconds) is trained at every rate of a sweep and in every table
    of the same model without running its initialization again.

    Args:
        cache_dir: also keep the initialized weights (with their seconds and report) in this
            folder, so that another process (a later run of other tables) reuses them.
    """

    def __init__(self, cache_dir: Optional[str] = None):
        self.trainer = Trainer()
        self.cache_dir = cache_dir
        self._inits: Dict[str, Tuple[List[np.ndarray], float, Any]] = {}

    def _path(self, key: str) -> Optional[str]:
        if not self.cache_dir:
            return None
        import hashlib

        return os.path.join(self.cache_dir, hashlib.sha1(key.encode()).hexdigest() + ".npz")

    def _load(self, key: str):
        path = self._path(key)
        if key not in self._inits and path and os.path.exists(path):
            with np.load(path, allow_pickle=False) as f:
                n = int(f["n"])
                self._inits[key] = ([f[f"w{i}"] for i in range(n)], float(f["init_s"]),
                                    json.loads(str(f["report"])))
        return self._inits.get(key)

    def _store(self, key: str, entry) -> None:
        self._inits[key] = entry
        path = self._path(key)
        if path:
            os.makedirs(self.cache_dir, exist_ok=True)
            weights, init_s, report = entry
            np.savez(path, n=len(weights), init_s=init_s,
                     report=json.dumps(report, default=_json_default),
                     **{f"w{i}": w for i, w in enumerate(weights)})

    def initialized(self, table: "Table", row: Contender, seed: int):
        """``(model, init seconds, report dictionary)``: ``row``'s model on ``seed``, built,
        (broken,) and initialized, or rebuilt with the weights of an earlier initialization
        (its seconds and report are the first run's)."""
        arguments = {**table.arguments, **row.model}
        key = repr((getattr(table.build, "__qualname__", table.build), sorted(
            (k, repr(v)) for k, v in arguments.items()), row.name, row.scale, seed,
            _fingerprint(table.data[0])))
        model = table.build(seed=seed, **arguments)
        cached = self._load(key) if row.init is not None else None
        if cached is not None:
            weights, init_s, report = cached
            model.set_weights(weights)
            return model, init_s, report
        if row.scale is not None:
            scale_kernels(model, row.scale)
        start = time.perf_counter()
        report = row.init(model, table.data[0], seed) if row.init else None
        init_s = time.perf_counter() - start
        to_dict = getattr(report, "to_dict", None)
        report = _short_report(to_dict()) if to_dict else None
        if row.init is not None:
            self._store(key, (model.get_weights(), init_s, report))
        return model, init_s, report


def _fingerprint(arrays) -> str:
    """The training data's identity for the init cache: shapes and a hash of a sample."""
    import hashlib

    h = hashlib.sha1()
    for a in arrays:
        a = np.asarray(a)
        h.update(repr((a.shape, str(a.dtype))).encode())
        h.update(np.ascontiguousarray(a[:64]).tobytes())
    return h.hexdigest()[:16]


def _json_default(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def run_contender(table: "Table", row: Contender, seed: int, session: Session,
                  budget: Optional[Budget] = None) -> Dict[str, Any]:
    """Build, (break,) initialize, train and evaluate one row on one seed.

    Returns:
        ``{"seed", "init_s", "report", **RunResult.to_dict()}``; ``report`` is the
        initialization's report as a dictionary (when it has ``to_dict``).
    """
    model, init_s, report = session.initialized(table, row, seed)
    budget = (budget or table.budget).replace(**row.budget)
    result = session.trainer.train(table.build, {**table.arguments, **row.model}, model,
                                   table.data[0], table.data[1], budget, loss=table.loss,
                                   seed=seed)
    return {"seed": seed, "init_s": init_s, "report": report, **result.to_dict()}


def _curve(runs: Sequence[Dict[str, Any]]) -> List[float]:
    """The mean over seeds of the per-step losses, at most :data:`CURVE_POINTS` points (a
    diverged run's non-finite steps are left out of the mean)."""
    n = max((len(r["losses"]) for r in runs), default=0)
    if n == 0:
        return []
    a = np.full((len(runs), n), np.nan)
    for i, r in enumerate(runs):
        a[i, :len(r["losses"])] = r["losses"]
    a[~np.isfinite(a)] = np.nan
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(a, axis=0)
    idx = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int))
    return [float(mean[i]) if np.isfinite(mean[i]) else None for i in idx]


def _summary(table: Table, row: Contender, runs: List[Dict[str, Any]], lr: float,
             sweep: Optional[Dict[str, float]]) -> Dict[str, Any]:
    values = [float(r[table.metric]) for r in runs]
    mean, std = stats.mean_std(values)
    out = {
        "name": row.name, "kind": row.kind, "lr": lr, "n": len(runs), "values": values,
        "mean": mean, "std": std, "diverged": sum(bool(r["diverged"]) for r in runs),
        "init_s": float(np.mean([r["init_s"] for r in runs])),
        "train_s": float(np.mean([r["seconds"] for r in runs])),
        "train_loss": [r["train_loss"] for r in runs],
        "first_loss": [r["losses"][0] if r["losses"] else None for r in runs],
        "curve": _curve(runs),
        "reports": [r["report"] for r in runs],
    }
    if table.solved is not None:
        out["solved"] = sum(v >= table.solved for v in values)
    if sweep is not None:
        out["sweep"] = sweep
    return out


def _short_report(report: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The figures of an initialization report worth keeping per run: before/after metrics,
    their history per step, steps run, constraint steps, the end-to-end gain."""
    if not report:
        return None
    keep = ("method", "steps_run", "before", "after", "stopped_early", "constraint_steps",
            "end_to_end_gain", "history")
    return {k: report[k] for k in keep if k in report}


def judge(claim: Claim, rows: Mapping[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A claim's verdict from the rows' per-seed values.

    Returns:
        ``{"claim", "verdict", "winners", "text"}``; ``verdict`` is ``"holds"`` when some
        candidate is above every row of ``against`` (the verdict rule), ``"does not hold"``
        otherwise, ``"not run"`` without candidates or rows to beat.
    """
    cands = [c for c in claim.candidates if c in rows]
    against = [a for a in claim.against if a in rows]
    if not cands or not against:
        return {"claim": claim.text, "verdict": "not run", "winners": [],
                "text": "no candidate or no row to beat in this table"}
    winners, parts = [], []
    for c in cands:
        cmps = {a: stats.compare(rows[c]["values"], rows[a]["values"]) for a in against}
        if all(cm.above for cm in cmps.values()):
            winners.append(c)
    best = max(cands, key=lambda c: rows[c]["mean"])
    shown = winners or [best]
    for c in shown:
        cells = "; ".join(f"{cm} {a} {stats.fmt(rows[a]['values'])}" for a, cm in (
            (a, stats.compare(rows[c]["values"], rows[a]["values"])) for a in against))
        parts.append(f"{c} {stats.fmt(rows[c]['values'])} is {cells}")
    for r in claim.references:
        if r in rows:
            cm = stats.compare(rows[shown[0]]["values"], rows[r]["values"])
            parts.append(f"{shown[0]} is {cm} the reference {r} {stats.fmt(rows[r]['values'])}")
    return {"claim": claim.text, "verdict": "holds" if winners else "does not hold",
            "winners": winners, "text": "; ".join(parts)}


def run_table(table: Table, seeds: Sequence[int], session: Optional[Session] = None,
              log: Callable[[str], None] = print,
              on_row: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Run every row of ``table`` on every seed (after its rate sweep, with ``lrs``).

    Args:
        table: what to run.
        seeds: the seeds (:func:`~keras_metainit.experiments.stats.seeds`).
        session: the compiled models and initializations shared with other tables (default:
            a new one).
        log: where progress lines go.
        on_row: called with the table's result so far (``"partial": True``) after each row, to
            keep what is done when a long run is stopped.

    Returns:
        ``{"key", "title", "budget", "metric", "solved", "seeds", "rows": [summary per row],
        "verdicts": [...], "wall_s"}``.
    """
    session = session or Session()
    start = time.perf_counter()
    summaries: Dict[str, Dict[str, Any]] = {}
    for row in table.contenders:
        lr, sweep, done = table.budget.lr, None, {}
        if table.lrs:
            sweep = {}
            for rate in table.lrs:
                done[rate] = run = run_contender(table, row, seeds[0], session,
                                                 table.budget.replace(lr=rate))
                sweep[f"{rate:g}"] = float(run[table.metric])
                log(f"  {table.key} | {row.name} | lr {rate:g} seed {seeds[0]}: "
                    f"{table.metric} {run[table.metric]:.3f}")
            lr = max(table.lrs, key=lambda r: (sweep[f"{r:g}"], -r))
        runs = []
        for seed in seeds:
            run = (done[lr] if seed == seeds[0] and lr in done else
                   run_contender(table, row, seed, session, table.budget.replace(lr=lr)))
            runs.append(run)
            log(f"  {table.key} | {row.name} | seed {seed}: {table.metric} "
                f"{run[table.metric]:.3f}{' DIVERGED' if run['diverged'] else ''} "
                f"(init {run['init_s']:.1f} s, train {run['seconds']:.1f} s)")
        summaries[row.name] = _summary(table, row, runs, lr, sweep)
        if on_row is not None:
            on_row(_result(table, seeds, summaries, start, partial=True))
    return _result(table, seeds, summaries, start)


def _result(table: "Table", seeds: Sequence[int], summaries: Dict[str, Dict[str, Any]],
            start: float, partial: bool = False) -> Dict[str, Any]:
    out = {
        "key": table.key, "title": table.title, "budget": table.budget.describe(),
        "metric": table.metric, "solved": table.solved, "seeds": list(seeds),
        "lrs": list(table.lrs),
        "rows": list(summaries.values()),
        "claims": [asdict(c) for c in table.claims],
        "verdicts": [judge(c, summaries) for c in table.claims],
        "wall_s": time.perf_counter() - start,
    }
    if partial:
        out["partial"] = True
    return out
