"""The one Markdown form of an experiment table (a
:func:`~keras_metainit.experiments.runner.run_table` result), as ``benchmarks/regimes.py`` and
the demo print it and ``benchmarks/render.py`` renders it into the docs.

Standard library only, and no import of the package: ``benchmarks/render.py`` loads this file by
its path, without TensorFlow.
"""
from __future__ import annotations

from typing import Any, Dict, List

__all__ = ["format_table", "verdict_lines"]


def verdict_lines(result: Dict[str, Any]) -> List[str]:
    """One Markdown list item per claim judged on the table."""
    return [f"- VERDICT ({v['claim']}): **{v['verdict']}** — {v['text']}"
            for v in result["verdicts"]]


def format_table(result: Dict[str, Any], heading: bool = True) -> str:
    """A table result as Markdown: a heading (``heading``), the budget and seeds, one row per
    contender (mean ± sample std of the metric over seeds, divergences, the runs that reached
    ``solved`` where the table has it, each row's best rate where it has a sweep, init and
    training seconds per run), then its verdicts."""
    solved = result.get("solved") is not None
    sweep = bool(result.get("lrs"))
    head = ["contender", "kind", f"{result['metric']} (mean ± std)", "diverged"]
    head += ["solved"] * solved + ["best lr"] * sweep + ["init s", "train s"]
    lines = [f"### {result['title']}", ""] if heading else []
    lines += [f"{result['budget']}; seeds {result['seeds']}", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [r["name"], r["kind"], f"{r['mean']:.3f} ± {r['std']:.3f}",
                 f"{r['diverged']}/{r['n']}"]
        if solved:
            cells.append(f"{r['solved']}/{r['n']}")
        if sweep:
            cells.append(f"{r['lr']:g}")
        cells += [f"{r['init_s']:.1f}" if r["init_s"] >= 0.05 else "-", f"{r['train_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if result.get("partial"):
        lines += ["", "*Partial: the run stopped after these rows; the table's other rows were "
                      "not run.*"]
    if result["verdicts"]:
        lines += [""] + verdict_lines(result)
    return "\n".join(lines)
