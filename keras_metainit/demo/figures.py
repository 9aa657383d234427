"""The demo's figures, from its scenes' table results
(:func:`~keras_metainit.experiments.runner.run_table`):

- ``demo_accuracy.png``: per scene, each row's metric per seed (dots) and mean ± sample std
  (bar and error bar), with chance;
- ``training_curves.png``: per scene, each row's training loss per step, averaged over seeds;
- ``metainit_gq.png``: the gradient quotient before and after MetaInit per seed, where a scene
  ran it.

matplotlib is imported when called (:func:`keras_metainit.experiments.plots.pyplot`).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence

from keras_metainit.experiments import plots

__all__ = ["write_plots", "CHANCE"]

#: Chance level of each scene's metric.
CHANCE = {"transformer": 1 / 16, "mlp": 0.1}


def _color(kind: str) -> str:
    return {"suite": "tab:blue", "reference": "tab:green"}.get(kind, "tab:gray")


def write_plots(results: Sequence[Dict[str, Any]], out: str) -> List[str]:
    """Write the figures to ``out``; return their paths (``[]`` without matplotlib)."""
    plt = plots.pyplot()
    if plt is None or not results:
        return []
    paths = []
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for ax, res in zip(axes[0], results):
        rows = res["rows"]
        for i, r in enumerate(rows):
            ax.bar(i, r["mean"], yerr=r["std"], color=_color(r["kind"]), alpha=0.7, capsize=3)
            ax.plot([i] * len(r["values"]), r["values"], "k.", ms=4)
        if res["key"] in CHANCE:
            ax.axhline(CHANCE[res["key"]], color="tab:red", lw=0.8, label="chance")
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r["name"] for r in rows], rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(res["metric"].replace("_", " ") + f" ({len(res['seeds'])} seeds)")
        ax.set_title(res["key"] + ": " + res["verdicts"][0]["verdict"], fontsize=9)
    paths.append(plots.save_figure(fig, os.path.join(out, "demo_accuracy.png"), dpi=110))

    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for ax, res in zip(axes[0], results):
        for r in res["rows"]:
            curve = [v for v in r["curve"] if v is not None]
            if curve:
                ax.plot(range(len(curve)), curve, lw=1.2, label=r["name"])
        ax.set_xlabel(f"training progress ({res['budget']})", fontsize=7)
        ax.set_ylabel("training loss (mean over seeds)")
        ax.set_title(res["key"], fontsize=9)
        ax.legend(fontsize=6)
    paths.append(plots.save_figure(fig, os.path.join(out, "training_curves.png"), dpi=110))

    gq = [(res["key"], r) for res in results for r in res["rows"]
          if any(rep and rep.get("method") == "metainit" for rep in r["reports"])]
    if gq:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, r in gq:
            for rep in filter(None, r["reports"]):
                before, after = rep["before"].get("gq"), rep["after"].get("gq")
                if before is not None and after is not None:
                    ax.plot([0, 1], [before, after], "o-", color="tab:blue", lw=1)
            ax.set_title(f"MetaInit on {key}: gradient quotient before -> after, per seed",
                         fontsize=9)
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["before", "after"])
        ax.set_yscale("log")
        ax.set_ylabel("gradient quotient (MetaInit's objective)")
        paths.append(plots.save_figure(fig, os.path.join(out, "metainit_gq.png"), dpi=110))
    return paths
