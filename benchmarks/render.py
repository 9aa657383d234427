"""Render the tables of README.md and docs/ from the benchmarks' results files; ``--check`` them.

Every table of measured figures in ``README.md`` and ``docs/**/*.md`` sits in a marked region::

    <!-- render: SOURCE [TABLE] [key=value ...] -->
    (generated Markdown: never edit by hand)
    <!-- /render -->

(the content starts on the line after the opening marker and ends on the line before the
closing one, with no blank lines: the form ``benchmarks/parity.py --render-docs`` writes too).

``SOURCE`` is a results file: a bare name means ``benchmarks/results/SOURCE.json``; a path (it
contains ``/``) is relative to the repository root, e.g. ``docs/img/demo/demo.json``. ``TABLE``
names the renderer (default: the file's name without ``.json``); ``key=value`` pairs go to it as
keyword strings. ``<!-- render:parity -->`` is ``benchmarks/results/parity.json`` rendered by
``render_parity``.

    python benchmarks/render.py            # rewrite every region from its results file
    python benchmarks/render.py --check    # exit 1 and print a diff if a committed region
                                           # differs from its render (CI, tests/test_render.py)

A region whose results file is not in the repository renders a placeholder that names the command
writing it (:data:`PRODUCERS`, else ``python benchmarks/<name>.py``), so no figure stands in the
docs without its file. A sentence of prose should not repeat a rendered figure: link to the table.

Adding a table: make the benchmark write its measurements with ``record.write`` (``--json PATH``,
default ``benchmarks/results/<name>.json``), then write

    def render_<name>(results: dict, **options: str) -> str:   # Markdown, no trailing newline

and register it in :data:`RENDERERS`. The benchmark prints the same table by calling its renderer
(``import render`` beside it), so each table's format is written once. ``meta`` (added by
``record.write``) is rendered as the provenance line under a table by :func:`provenance`.

Why here and not in ``scripts/``: the renderers are the output code of the benchmarks (each
script prints its table through its renderer), and they live next to the scripts and the results
files whose format they read. Standard library only (no TensorFlow): ``--check`` takes well under
a second.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import math
import re
import statistics
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
DEMO = "docs/img/demo/demo.json"

#: The command that writes a results file, where it is not ``python benchmarks/<name>.py``.
PRODUCERS: Dict[str, str] = {
    DEMO: "keras-metainit demo --out docs/img/demo",
    f"{RESULTS}/metainit_eps.json":
        "python benchmarks/metainit_eps.py --archs cnn8x16 mlp12x128 mlp20x64",
    f"{RESULTS}/depth.json":
        "python benchmarks/depth.py --lr 3e-4 --seeds-deepest 2 --plot docs/img/depth.png",
    f"{RESULTS}/zoo_small.json": "python benchmarks/zoo.py --quick",
    f"{RESULTS}/step_pieces_mlp.json": "python benchmarks/step_pieces.py --model mlp",
    f"{RESULTS}/step_pieces_cnn.json": "python benchmarks/step_pieces.py --model cnn",
    f"{RESULTS}/step_cost_backends.json": "python benchmarks/step_cost_backends.py --steps 10",
    f"{RESULTS}/large_models.json":
        "python benchmarks/step_cost_backends.py --backends tensorflow jax --models resnet "
        "efficientnet densenet nasnet --methods metainit --steps 1 --timeout 180 "
        "--json benchmarks/results/large_models.json",
    f"{RESULTS}/first_step_settings.json":
        "python benchmarks/step_cost_backends.py --backends tensorflow tensorflow-no-grappler "
        "tensorflow-xla --models resnet --methods metainit gradinit gradcosine --steps 1 "
        "--timeout 420 --json benchmarks/results/first_step_settings.json",
}

_BEGIN = re.compile(r"<!--\s*render:\s*(?P<args>.*?)\s*-->")
_END = re.compile(r"<!--\s*/render\s*-->")


class RenderError(Exception):
    """A region that cannot be rendered: bad marker, unknown table, a renderer that failed."""


# ---------------------------------------------------------------------------------------------
# formatting helpers shared by the renderers


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> str:
    """``mean ± sample std`` to 3 decimals (one value: ``± 0``); ``error`` if a value is NaN."""
    values = [float(v) for v in values]
    if not values or any(math.isnan(v) for v in values):
        return "error"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _num(value: Any, spec: str, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def provenance(results: Dict[str, Any]) -> str:
    """The line under a table: the command, date, commit, machine, versions, wall time, load."""
    meta = results.get("meta")
    if not meta:
        return ""
    versions = ", ".join(f"{name} {v}" for name, v in meta.get("versions", {}).items()
                         if name in ("tensorflow", "keras", "jax"))
    load = meta.get("load_average") or []
    parts = [f"`{meta['command']}`", meta["date"]]
    if meta.get("commit"):
        parts.append(f"at {meta['commit']}")
    parts += [meta["machine"], versions, f"{meta['wall_s']:.0f} s"]
    if len(load) == 3:
        parts.append(f"load average {load[0]:g} / {load[1]:g} / {load[2]:g} (1 / 5 / 15 min) at "
                     "the end")
    return "*" + "; ".join(p for p in parts if p) + ".*"


def with_provenance(body: str, results: Dict[str, Any]) -> str:
    line = provenance(results)
    return f"{body}\n\n{line}" if line else body


# ---------------------------------------------------------------------------------------------
# renderers: one per table kind; each takes the loaded results file and returns Markdown


def tables():
    """``keras_metainit/experiments/tables.py``, the one Markdown form of an experiment table
    (the demo's scenes, the regimes' tables), loaded by its path: no TensorFlow."""
    name = "_keras_metainit_experiments_tables"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "keras_metainit" / "experiments" / "tables.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def render_demo(results: Dict[str, Any], scene: str = "transformer") -> str:
    """One scene of ``keras-metainit demo``'s ``demo.json``: the rule's choice and reason, then
    the scene's table and verdict, as the demo prints them."""
    part = next((s for s in results["scenes"] if s["key"] == scene), None)
    if part is None:
        raise RenderError(f"demo.json has no scene {scene!r}")
    choice = part["choice"]
    return (f"`model.meta_initialize(data)` runs **{choice['method']}** here: {choice['reason']}."
            f"\n\n{tables().format_table(part, heading=False)}")


def render_demo_run(results: Dict[str, Any]) -> str:
    """The settings and the wall time of the demo run in ``demo.json``."""
    cfg = results["config"]
    return (f"Seeds {cfg['seeds']} per contender; the Transformer scene: {cfg['layers']} blocks, "
            f"d {cfg['dim']}, Adam {cfg['adam_lr']:g}, {cfg['steps']} steps of batch "
            f"{cfg['batch_size']}; the MLP scene: {cfg['depth']} layers of width {cfg['width']}, "
            f"SGD {cfg['sgd_lr']:g}, {cfg['mlp_steps']} steps of batch 128. "
            f"{results['closing']} Wall time of the whole run: **{results['total_s']:.0f} s**.")


def render_demo_methods(results: Dict[str, Any]) -> str:
    """``demo.json`` by scene: what the default call picks, its figure against the analytic
    rows', and the verdict."""
    rows = []
    for part in results["scenes"]:
        by = {r["name"]: r for r in part["rows"]}
        call = by["default call"]
        rows.append([part["key"], part["choice"]["method"],
                     f"{call['mean']:.3f} ± {call['std']:.3f} ({call['init_s']:.1f} s)"]
                    + [f"{by[n]['mean']:.3f} ± {by[n]['std']:.3f}" if n in by else "-"
                       for n in ("Keras default", "He")]
                    + [part["verdicts"][0]["verdict"]])
    return table(["scene", "default call runs", "default call (init s)", "Keras default", "He",
                  "beats every analytic init"], rows)


def render_regimes(results: Dict[str, Any], regime: str = "", table: str = "") -> str:
    """``benchmarks/regimes.py``'s tables: every regime's, one regime's (``regime=KEY``) or one
    table (``table=KEY``), each with the run that measured it."""
    parts = []
    for reg in results["regimes"]:
        if regime and reg["key"] != regime:
            continue
        for t in reg["tables"]:
            if table and t["key"] != table:
                continue
            run = t.get("run", {})
            parts.append(f"**{reg['number']}. {reg['title']}**: {t['title']} "
                         f"(*`{run.get('command', '?')}`, {run.get('date', '?')}, at "
                         f"{run.get('commit', '?')}; {t['wall_s']:.0f} s*)\n\n"
                         + tables().format_table(t, heading=False))
    if not parts:
        what = f"--regimes {regime}" if regime else ""
        return (f"*Not in the committed results: `python benchmarks/regimes.py {what}`".rstrip()
                + " measures it; then `python benchmarks/render.py` renders it here.*")
    return with_provenance("\n\n".join(parts), results)


def render_regimes_summary(results: Dict[str, Any]) -> str:
    """Every claim's verdict in ``benchmarks/regimes.py``'s results, with each regime's wall
    time and the seeds."""
    rows = []
    for reg in results["regimes"]:
        for t in reg["tables"]:
            for v in t["verdicts"]:
                rows.append([f"{reg['number']}. {reg['title']}", t["key"], len(t["seeds"]),
                             v["claim"], f"**{v['verdict']}**", ", ".join(v["winners"]) or "-"])
    walls = "; ".join(f"{reg['number']}. {reg['key']} {reg['wall_s']:.0f} s"
                      for reg in results["regimes"])
    return (table(["regime", "table", "seeds", "claim", "verdict", "winners"], rows)
            + f"\n\nWall time per regime: {walls}; total {results['wall_s']:.0f} s.")


def render_regimes_best(results: Dict[str, Any]) -> str:
    """Per table of ``benchmarks/regimes.py``'s results: the best row of the suite, the best
    analytic init and the best reference (normalization, warmup), each with mean ± std, its
    divergences and (where the table has a threshold) the runs that solved it: the call to make
    in each regime."""
    def best(rows, kinds):
        rows = [r for r in rows if r["kind"] in kinds]
        if not rows:
            return "-"
        r = max(rows, key=lambda r: (r["mean"], -r["diverged"]))
        solved = f", {r['solved']}/{r['n']} solved" if r.get("solved") is not None else ""
        return (f"{r['name']}: {r['mean']:.3f} ± {r['std']:.3f} "
                f"({r['diverged']}/{r['n']} diverged{solved})")

    rows = [[f"{reg['number']}. {reg['title']}", t["key"], best(t["rows"], ("suite",)),
             best(t["rows"], ("analytic",)), best(t["rows"], ("reference",))]
            for reg in results["regimes"] for t in reg["tables"]]
    return table(["regime", "table", "best of the suite", "best analytic init",
                  "reference"], rows)


def render_saturation(results: Dict[str, Any]) -> str:
    """``benchmarks/saturation.py``: GQ and its third-order derivative on both CPU kernel paths."""
    def signed(values):
        return " ".join(f"{v:+.2g}" for v in values)

    rows = []
    for r in results["rows"]:
        run = r.get("metainit")
        rows.append([r["path"], r["form"], f"{r['gq']:.3g}", signed(r["autodiff"]),
                     signed(r["differences"]),
                     f"{run['before']:.3g} → {run['after']:.3g}" if run else ""])
    return with_provenance(table(
        ["kernel path", "cross-entropy", "GQ at x3", "dGQ/ds autodiff (first, middle, last)",
         "central differences", "MetaInit now: GQ before → after"], rows), results)


def render_memory(results: Dict[str, Any]) -> str:
    """``benchmarks/memory.py``: MetaInit's peak memory against the number of micro-batches."""
    batch = results["config"]["batch"]
    rows = [[r["micro"], batch // r["micro"], f"{r['peak_mb']:.0f}",
             f"{r['peak_mb'] - r['base_mb']:.0f}", f"{r['tf_peak_mb']:.0f}", f"{r['step_s']:.2f}",
             f"{r['gq_after']:.6g}"] for r in results["rows"]]
    return with_provenance(table(
        ["micro-batches", "examples per part", "peak RSS (MB)", "RSS above the model (MB)",
         "TensorFlow allocator peak (MB)", "s per step", "GQ after"], rows), results)


def render_step_pieces(results: Dict[str, Any]) -> str:
    """``benchmarks/step_pieces.py``: each piece's median ms over rounds, × a training step."""
    times = results["times_ms"]
    base = median(times["training step"])
    rows = [[name, f"{median(ts):.1f}", f"{median(ts) / base:.2f}"] for name, ts in times.items()]
    return with_provenance(table(["piece", "ms", "× training step"], rows), results)


def _median_run(runs: List[Dict[str, Any]]) -> Tuple[Dict[str, Any], List[float]]:
    """The run of median ratio to its training step (an odd number of runs: one of them)."""
    ratios = [r["ms"] / r["train_ms"] for r in runs]
    order = sorted(range(len(runs)), key=ratios.__getitem__)
    return runs[order[len(runs) // 2]], ratios


def render_step_cost(results: Dict[str, Any]) -> str:
    """``benchmarks/step_cost.py``: ms per step, ratio to a training step, first step, memory."""
    rows = []
    for name, entry in results["models"].items():
        label, train = entry["label"], entry["train"]
        if "error" in train:
            rows.append([label, "training step", f"error: {train['error']}", "", "", "", "", ""])
            continue
        rows.append([label, "training step", f"{train['ms']:.1f}", "1.0", "", "",
                     f"1.0 ({train['peak_mb']:.0f} MB)", "1.0"])
        for method, runs in entry["methods"].items():
            errors = [r for r in runs if "error" in r]
            if errors:
                rows.append([label, method, f"error: {errors[0]['error']}", "", "", "", "", ""])
                continue
            r, ratios = _median_run(runs)
            target = entry["targets"].get(method)
            spread = (f", {min(ratios):.2f}–{max(ratios):.2f} in {len(runs)} runs"
                      if len(runs) > 1 else "")
            xla = " (XLA fallback)" if any("XLA" in n for n in r.get("notes", [])) else ""
            rows.append([label, method + xla, f"{r['ms']:.1f}",
                         f"{r['ms'] / r['train_ms']:.2f} ({r['train_ms']:.1f}{spread})",
                         _target(target), f"{r['trace_s']:.1f}",
                         f"{r['peak_mb'] / train['peak_mb']:.2f} ({r['peak_mb']:.0f} MB)",
                         _wall(r)])
    return with_provenance(table(
        ["model", "step", "ms/step", "ratio to a training step (its ms, range)", "target",
         "first step s", "peak memory ratio", "wall per step: ratio (guard, input)"], rows),
        results)


def _target(target) -> str:
    """A target as the results hold it: a phrase (``"wall ≤ 4×"``), or a number, a bound on
    the compiled step's ratio (results written before the wall targets)."""
    if isinstance(target, str):
        return target
    return f"≤ {target:g}" if target else ""


def _wall(run: Dict[str, Any]) -> str:
    """The wall time per step of ``meta_initialize`` as a ratio to the training step, with the
    guard's and the input's shares; ``-`` for a run that did not measure it."""
    if "wall_ms" not in run:
        return "-"
    return (f"{run['wall_ms'] / run['train_ms']:.2f} ({run['guard_share']:.0%}, "
            f"{run['data_share']:.0%})")


NAMES = {"tensorflow": "TF", "jax": "JAX", "torch": "torch",
         "tensorflow-no-grappler": "TF, grappler off", "tensorflow-xla": "TF, XLA"}


def render_step_cost_backends(results: Dict[str, Any]) -> str:
    """``benchmarks/step_cost_backends.py``: per backend, ms per step, its ratio to a training
    step on that backend (in the same process) and the first step's seconds; the device each
    backend ran on below the table."""
    backends = results["backends"]
    head, rows = ["model", "step"], []
    for b in backends:
        head += [f"{NAMES.get(b, b)} ms", f"{NAMES.get(b, b)} ratio",
                 f"{NAMES.get(b, b)} first step s"]
    for model, label in results["models"].items():
        for step in ["training step"] + results["methods"]:
            cells = []
            for b, out in backends.items():
                row = out.get(model, {}).get(step) if "error" not in out else None
                if row is None or "error" in row:
                    cells += [(row or out).get("error", "not run"), "-", "-"]
                elif step == "training step":
                    cells += [f"{row['ms']:.1f}", "1.0", "-"]
                else:
                    cells += [f"{row['ms']:.1f}", f"{row['ms'] / row['train_ms']:.2f}",
                              f"{row['first_s']:.1f}"]
            rows.append([label, step] + cells)
    devices = "; ".join(f"{NAMES.get(b, b)}: {out.get('device', out.get('error', '?'))}"
                        for b, out in backends.items())
    return with_provenance(table(head, rows) + f"\n\nDevices: {devices}.", results)


def _grouped(runs: Iterable[Dict[str, Any]],
             key: Callable[[Dict[str, Any]], Tuple]) -> "OrderedDict":
    """The runs in groups of equal ``key``, in the order each group first appears."""
    groups: "OrderedDict[Tuple, List[Dict[str, Any]]]" = OrderedDict()
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return groups


def render_metainit_eps(results: Dict[str, Any]) -> str:
    """``benchmarks/metainit_eps.py``: accuracy, GQ ratio, end-to-end gain per arch, start, ε."""
    rows = []
    for (arch, start, eps), runs in _grouped(
            results["runs"], lambda r: (r["arch"], r["start"], r["eps"])).items():
        ratios = [r["gq_ratio"] for r in runs if r.get("gq_ratio") is not None]
        gains = [r["gain"] for r in runs if r.get("gain")]
        gain = ("-" if not gains else
                f"{math.exp(statistics.fmean(math.log(g) for g in gains)):.3g}")
        rows.append([arch, start, "-" if eps is None else f"{eps:g}",
                     mean_std([r["test_acc"] for r in runs]),
                     f"{statistics.fmean(ratios):.3g}" if ratios else "-", gain])
    return with_provenance(table(
        ["arch", "start", "eps", "test acc (mean ± std)", "GQ after/before", "end-to-end gain"],
        rows), results)


def render_depth(results: Dict[str, Any]) -> str:
    """``benchmarks/depth.py``: test accuracy per depth and kernel initializer in WN MLPs."""
    inits, labels = results["inits"], results["labels"]
    groups = _grouped(results["runs"], lambda r: (r["depth"], r["init"]))
    rows = []
    for depth in results["depths"]:
        n = len(groups.get((depth, inits[0]), []))
        rows.append([depth, n] + [mean_std([r["test_acc"] for r in groups.get((depth, i), [])])
                                  for i in inits])
    return with_provenance(table(["depth", "seeds"] + [labels[i] for i in inits], rows), results)


def render_init_cost(results: Dict[str, Any]) -> str:
    """``benchmarks/init_cost.py``: each initialization's seconds and its share of training runs."""
    train = results["train_s"]
    head = ["method", "init s", "report.wall_time s"] + [
        f"share of {t['epochs']}-epoch run ({t['subset']})" for t in train]
    rows = [[r["label"], f"{r['init_s']:.1f}", _num(r.get("wall_time_s"), ".1f")]
            + [f"{100 * r['init_s'] / t['s']:.0f} %" for t in train] for r in results["rows"]]
    training = "; ".join(f"{t['subset']} ({t['images']} images) {t['epochs']} epochs {t['s']:.1f} s"
                         for t in train)
    return with_provenance(
        table(head, rows) + f"\n\nTraining (fit + evaluate, median of {results['repeats']}): "
        f"{training}.", results)


def render_zoo(results: Dict[str, Any], kind: str = "learned") -> str:
    """``benchmarks/zoo.py``: the learned methods' rows (``kind=learned``) or the layer-wise
    methods' (``kind=layerwise``)."""
    learned = kind == "learned"
    rows = [r for r in results["rows"] if (r["method"] not in ("lsuv", "sylvester")) == learned]
    if learned:
        head = ["model", "method", "first step s", "ms/step", "× fit",
                "objective before → after", "finite / status"]
        body = [[r["model"], r["method"], _num(r.get("trace s"), ".1f"),
                 _num(r.get("ms/step"), ".1f"), _num(r.get("x fit"), ".2f"),
                 r.get("objective", "-").replace(" -> ", " → "),
                 f"{r.get('finite', '-')} / {r['status']}"] for r in rows]
    else:
        head = ["model", "method", "whole run s", "layers set", "finite / status"]
        body = [[r["model"], r["method"], _num(r.get("trace s"), ".1f"), r.get("objective", "-"),
                 f"{r.get('finite', '-')} / {r['status']}"] for r in rows]
    return with_provenance(table(head, body), results)


def _slashed(values: Iterable[float], spec: str) -> str:
    return " / ".join(format(v, spec) for v in values)


def _range(values: Sequence[float], spec: str) -> str:
    """The median, and the range when the values differ."""
    values = list(values)
    if len(values) == 1:
        return format(values[0], spec)
    return f"{median(values):{spec}} ({min(values):{spec}}–{max(values):{spec}})"


_HVP_LABELS = {"exact": "exact", "finite_difference": "finite difference"}


def render_metainit_hvp(results: Dict[str, Any], part: str = "point") -> str:
    """``benchmarks/metainit_hvp.py``: MetaInit's exact Hessian-gradient product against the
    finite-difference one. ``part``: ``point`` (GQ and its scale gradient at one point, per
    step of the difference), ``agreement`` (runs from the same seeds: scales and GQ against the
    exact runs' seed spread), ``cost`` (those runs' step and first step), ``pieces`` (the
    compiled objectives timed interleaved) or ``resnet``."""
    section = results[{"agreement": "run", "cost": "run"}.get(part, part)]
    if part == "point":
        rows = []
        for name, entry in section["models"].items():
            for r in entry["rows"]:
                rows.append([entry["label"], f"{entry['exact_gq']:.4g}",
                             f"{r['step_x_sqrt_eps']:g}", f"{r['gq']:.4g}",
                             f"{r['gq_rel_error']:.1e}", f"{r['grad_cosine']:.5f}",
                             f"{r['grad_rel_error']:.1e}"])
        body = table(["model", "exact GQ", "step / √ε_mach", "finite-difference GQ",
                      "GQ rel. error", "scale-gradient cosine", "scale-gradient rel. error"],
                     rows)
    elif part == "agreement":
        rows = []
        for name, entry in section["models"].items():
            m = entry["summary"]
            rows.append([entry["label"], _slashed(m["scales_fd_vs_exact"], ".2f"),
                         _slashed(m["scales_exact_seed_spread"], ".2f"),
                         _slashed(m["gq_last10_fd_vs_exact"], ".3f"),
                         _slashed(m["gq_last10_exact_seed_spread"], ".3f"),
                         _slashed(m["exact_gq_after"]["exact"], ".4f"),
                         _slashed(m["exact_gq_after"]["finite_difference"], ".4f")])
        body = table(["model, steps", "scales: FD vs exact, same seed (per seed)",
                      "scales: exact vs exact, seed pairs",
                      "GQ, last 10 steps: FD vs exact", "GQ, last 10 steps: exact seed pairs",
                      "exact GQ after: exact runs", "exact GQ after: FD runs"], rows)
        body += ("\n\nScales: the largest relative difference over the tuned tensors; GQ: the "
                 "relative difference of each run's own GQ averaged over its last 10 steps; exact "
                 "GQ after: the exact GQ (ε = 1e-2) at the scales written back, on one fixed "
                 "random probe batch.")
    elif part == "cost":
        rows = []
        for name, entry in section["models"].items():
            for hvp, label in _HVP_LABELS.items():
                runs = [r for k, r in entry["runs"].items() if k.split("/")[0] == hvp]
                rows.append([entry["label"], label, _range([r["step_ms"] for r in runs], ".1f"),
                             _range([r["ratio"] for r in runs], ".2f"),
                             _range([r["trace_s"] for r in runs], ".1f")])
        body = table(["model", "Hg", "ms/step", "× training step", "first step s"], rows)
        body += ("\n\nThe median over the seeds (range): `report.step_time` against a training "
                 "step timed right after it in the same process (median of five short timings).")
    elif part == "pieces":
        rows = []
        for name, entry in section["models"].items():
            base = median(entry["times_ms"]["training step"])
            for piece, ts in entry["times_ms"].items():
                rows.append([entry["label"], piece, f"{median(ts):.1f}", f"{median(ts) / base:.2f}",
                             f"{entry['first_call_s'][piece]:.1f}"])
        body = table(["model", "piece", "ms", "× training step", "first call s"], rows)
    else:  # resnet
        rows = []
        for hvp, label in _HVP_LABELS.items():
            r = section[hvp]
            rows.append([label, "error: " + r["error"]] + [""] * 3 if "error" in r else
                        [label, f"{r['step_ms'] / 1e3:.1f}", f"{r['train_ms'] / 1e3:.2f}",
                         f"{r['ratio']:.2f}", f"{r['trace_s']:.0f}"])
        body = table(["Hg", "s/step", "training step s", "× training step", "first step s"],
                     rows)
    return with_provenance(body, section)


def _sibling(name: str):
    """The module ``benchmarks/<name>.py``, imported when one of its tables is rendered."""
    spec = importlib.util.spec_from_file_location(f"_benchmarks_{name}",
                                                  Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def render_parity(results: Dict[str, Any]) -> str:
    """``benchmarks/parity.py``'s tables, by its own ``render_markdown`` (NumPy, no PyTorch)."""
    return _sibling("parity").render_markdown(results)


def render_transformer_scales(results: Dict[str, Any]) -> str:
    """``benchmarks/transformer_scales.py``: per learned method on regime 2's Post-LN
    Transformer, its objective before and after, the steps spent on its constraint, whether the
    start was kept, and the geometric mean of the scales by tensor group."""
    groups = list(results["rows"][0]["scales"]) if results["rows"] else []

    def objective(before, after):
        return "; ".join(f"{k} {before[k]:.4g} → {after[k]:.4g}" for k in before if k in after)

    rows = [[r["method"], objective(r["before"], r["after"]),
             f"{r['constraint_steps']}/{r['steps_run']}", "yes" if r["kept_start"] else "no",
             *[f"{r['scales'].get(g, float('nan')):.3g}" for g in groups]]
            for r in results["rows"]]
    body = (f"From Keras's default init, seed {results['seed']}.\n\n"
            + table(["method", "objective before → after", "constraint steps", "kept start",
                     *[f"scale: {g}" for g in groups]], rows))
    return with_provenance(body, results)


#: Table name → renderer. A renderer takes the loaded results file (and the region's key=value
#: options as strings) and returns Markdown.
RENDERERS: Dict[str, Callable[..., str]] = {
    "demo": render_demo,
    "demo_run": render_demo_run,
    "demo_methods": render_demo_methods,
    "regimes": render_regimes,
    "regimes_summary": render_regimes_summary,
    "regimes_best": render_regimes_best,
    "transformer_scales": render_transformer_scales,
    "saturation": render_saturation,
    "memory": render_memory,
    "step_pieces": render_step_pieces,
    "step_cost": render_step_cost,
    "step_cost_backends": render_step_cost_backends,
    "metainit_eps": render_metainit_eps,
    "depth": render_depth,
    "init_cost": render_init_cost,
    "zoo": render_zoo,
    "parity": render_parity,
    "metainit_hvp": render_metainit_hvp,
}


# ---------------------------------------------------------------------------------------------
# regions


@dataclass
class Region:
    """One marked region of a file: its marker's arguments and the span of its content."""

    source: str  # results file, relative to the repository root
    table: str
    options: Dict[str, str]
    start: int  # content span in the file's text
    end: int
    line: int  # line of the opening marker


def source_path(name: str) -> str:
    """A marker's SOURCE as a path relative to the repository root."""
    return name if "/" in name else f"{RESULTS}/{name}.json"


def producer(source: str) -> Optional[str]:
    """The command that writes ``source``: :data:`PRODUCERS`, or ``benchmarks/<name>.py``'s."""
    if source in PRODUCERS:
        return PRODUCERS[source]
    path = Path(source)
    if path.parent.as_posix() == RESULTS and (ROOT / "benchmarks" / f"{path.stem}.py").exists():
        return f"python benchmarks/{path.stem}.py"
    return None


def find_regions(text: str, where: str = "<text>") -> List[Region]:
    """The marked regions of ``text``, in order; a marker without its pair is an error."""
    regions = []
    pos = 0
    while True:
        begin = _BEGIN.search(text, pos)
        stray = _END.search(text, pos)
        if begin is None:
            if stray is not None:
                raise RenderError(f"{where}:{text.count(chr(10), 0, stray.start()) + 1}: "
                                  "<!-- /render --> without an opening marker")
            return regions
        line = text.count("\n", 0, begin.start()) + 1
        if stray is not None and stray.start() < begin.start():
            raise RenderError(f"{where}:{text.count(chr(10), 0, stray.start()) + 1}: "
                              "<!-- /render --> without an opening marker")
        end = _END.search(text, begin.end())
        nested = _BEGIN.search(text, begin.end())
        if end is None or (nested is not None and nested.start() < end.start()):
            raise RenderError(f"{where}:{line}: <!-- render: {begin['args']} --> is not closed "
                              "by <!-- /render --> before the next region")
        words = begin["args"].split()
        if not words:
            raise RenderError(f"{where}:{line}: a render marker names no results file")
        source = source_path(words[0])
        positional = [w for w in words[1:] if "=" not in w]
        options = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        if len(positional) > 1:
            raise RenderError(f"{where}:{line}: expected <!-- render: SOURCE [TABLE] "
                              f"[key=value ...] -->, got {begin['args']!r}")
        table_name = positional[0] if positional else Path(source).stem
        regions.append(Region(source, table_name, options, begin.end(), end.start(), line))
        pos = end.end()


def placeholder(region: Region) -> str:
    """The text of a region whose results file is not in the tree: the command that writes it."""
    command = producer(region.source)
    if command is None:
        raise RenderError(f"no results file {region.source} and no known command writes it "
                          f"(add it to PRODUCERS in benchmarks/render.py)")
    return (f"*Not measured in this tree: `{region.source}` is not in the repository. "
            f"`{command}` writes it; then `python benchmarks/render.py` renders this table.*")


def render_region(region: Region, root: Path = ROOT) -> str:
    """The Markdown of one region (without the blank lines around it).

    A results file not in the tree renders its placeholder (a renderer may be added with the
    file); a file that is there needs its renderer.
    """
    path = root / region.source
    if not path.exists():
        return placeholder(region)
    if region.table not in RENDERERS:
        raise RenderError(f"no renderer {region.table!r}: add `def render_{region.table}"
                          f"(results: dict) -> str` to RENDERERS in benchmarks/render.py")
    results = json.loads(path.read_text())
    try:
        return RENDERERS[region.table](results, **region.options).strip("\n")
    except RenderError:
        raise
    except Exception as exc:  # the results file and its renderer disagree
        raise RenderError(f"render_{region.table} failed on {region.source}: "
                          f"{type(exc).__name__}: {exc}") from exc


def render_text(text: str, root: Path = ROOT, where: str = "<text>") -> str:
    """``text`` with every region's content replaced by its render."""
    out, pos = [], 0
    for region in find_regions(text, where):
        try:
            body = render_region(region, root)
        except RenderError as exc:
            raise RenderError(f"{where}:{region.line}: {exc}") from None
        out += [text[pos:region.start], "\n", body, "\n"]
        pos = region.end
    out.append(text[pos:])
    return "".join(out)


def doc_files(root: Path = ROOT) -> List[Path]:
    """README.md and every Markdown file under docs/."""
    return [root / "README.md"] + sorted((root / "docs").rglob("*.md"))


def run(root: Path = ROOT, check: bool = False, out=sys.stdout) -> int:
    """Render (or, with ``check``, compare) every file; 0 when nothing differs or was rewritten."""
    stale = []
    try:
        rendered = {path: render_text(path.read_text(), root, str(path.relative_to(root)))
                    for path in doc_files(root)}
    except RenderError as exc:
        print(f"error: {exc}", file=out)
        return 2
    for path, new in rendered.items():
        old = path.read_text()
        if new == old:
            continue
        name = str(path.relative_to(root))
        stale.append(name)
        if check:
            out.writelines(difflib.unified_diff(
                old.splitlines(True), new.splitlines(True), f"{name} (committed)",
                f"{name} (rendered)"))
        else:
            path.write_text(new)
            print(f"rendered {name}", file=out)
    if check and stale:
        print(f"\n{len(stale)} file(s) differ from their render: {', '.join(stale)}. "
              "Run `python benchmarks/render.py` and commit.", file=out)
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 with a diff if a region differs from its "
                             "render")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run(args.root.resolve(), args.check)


if __name__ == "__main__":
    sys.exit(main())
