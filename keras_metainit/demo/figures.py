"""The demo's results shown: the plain-text table per scene with its verdict lines, and the figures.

:func:`format_table` and the verdicts are printed by :func:`~keras_metainit.demo.run_demo`;
:func:`write_plots` writes ``demo_accuracy.png``, ``training_curves.png`` and
``metainit_gq.png`` (matplotlib, imported when called).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence

from keras_metainit.demo.config import SCENES
from keras_metainit.demo.contenders import BAD_START

__all__ = ["format_table", "write_plots"]


def _gq_cell(row: Dict[str, Any]) -> str:
    before, after = row.get("gq_before"), row.get("gq_after")
    if before is None or after is None:
        return "-"
    return f"{before:.3g} -> {after:.3g}"


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The demo's results as a plain-text table, one line per contender.

    Columns: method, init s, GQ before -> after (the gradient quotient on one fixed batch of 128
    training examples, before and after ``meta_initialize``; ``-`` for rows without it), train s,
    final training loss, test accuracy (always the last column).
    """
    name_w = max([len("method")] + [len(r["init"]) for r in rows])
    gq_w = max([len("GQ before -> after")] + [len(_gq_cell(r)) for r in rows])
    header = (f"{'method':<{name_w}}  {'init s':>7}  {'GQ before -> after':<{gq_w}}  "
              f"{'train s':>8}  {'train loss':>11}  {'test acc':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['init']:<{name_w}}  {r['init_s']:>7.1f}  {_gq_cell(r):<{gq_w}}  "
            f"{r['train_s']:>8.1f}  {r['train_loss']:>11.3f}  {r['test_acc']:>9.3f}"
        )
    return "\n".join(lines)


def _verdict_lines(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """One line per fixed contender: its test accuracy against He's (and its start's), in words.

    A single seed: differences under about 0.05 are within the seed-to-seed spread measured in
    ``benchmarks/claims.py``.
    """
    acc = {r["init"]: r["test_acc"] for r in rows}
    he = acc.get("He")
    out = []
    for r in rows:
        name = r["init"]
        if name in ("He", "Keras default", BAD_START) or he is None:
            continue
        start = acc.get(BAD_START if r.get("scene") == "bad" else "Keras default")
        d = r["test_acc"] - he
        word = ("wins over He" if d > 0.05 else "loses to He" if d < -0.05 else "ties with He")
        fixed = "" if start is None else f", start {start:.3f} -> {r['test_acc']:.3f}"
        out.append(f"  {name:<22} {word} ({d:+.3f}{fixed})")
    return out


def write_plots(rows: Sequence[Dict[str, Any]], out: str) -> List[str]:
    """Write ``demo_accuracy.png``, ``training_curves.png`` and ``metainit_gq.png`` to ``out``;
    return their paths.

    Needs matplotlib (installed with the package); without it nothing is written and ``[]``
    returned.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figures (pip install matplotlib)")
        return []
    paths = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    scenes = [s for s in SCENES if any(r.get("scene", "default") == s for r in rows)]
    he = next((r["test_acc"] for r in rows if r["init"] == "He"), None)
    # 1. test accuracy per contender, one panel per scene
    fig, axes = plt.subplots(1, len(scenes), figsize=(5.5 * len(scenes), 4.2), squeeze=False)
    for ax, scene in zip(axes[0], scenes):
        part = [r for r in rows if r.get("scene", "default") == scene]
        colors = ["tab:blue" if r.get("gq_before") is not None else "tab:gray" for r in part]
        ax.bar(range(len(part)), [r["test_acc"] for r in part], color=colors)
        for i, r in enumerate(part):
            ax.text(i, r["test_acc"] + 0.01, f"{r['test_acc']:.2f}", ha="center", fontsize=7)
        if he is not None:
            ax.axhline(he, color="k", ls="--", lw=1, label=f"He {he:.3f}")
        ax.axhline(0.1, color="tab:red", lw=0.8, label="chance")
        ax.set_xticks(range(len(part)))
        ax.set_xticklabels([r["init"] for r in part], rotation=35, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("test accuracy")
        ax.set_title(SCENES[scene].split(" (")[0], fontsize=9)
        ax.legend(fontsize=7)
    save(fig, "demo_accuracy.png")
    # 2. training loss per step
    fig, axes = plt.subplots(1, len(scenes), figsize=(5.5 * len(scenes), 4.2), squeeze=False)
    for ax, scene in zip(axes[0], scenes):
        for r in rows:
            if r.get("scene", "default") != scene and r["init"] != "He":
                continue
            losses = r.get("loss_per_step") or r["loss_per_epoch"]
            ax.plot(range(1, len(losses) + 1), losses, lw=1, label=r["init"],
                    ls="--" if r["init"] == "He" and scene != "default" else "-")
        ax.set_xlabel("training step" if rows and rows[0].get("loss_per_step") else "epoch")
        ax.set_ylabel("training loss")
        ax.set_title(SCENES[scene].split(" (")[0], fontsize=9)
        ax.legend(fontsize=6)
    save(fig, "training_curves.png")
    # 3. MetaInit's objective per step
    gqs = [(r["init"], ((r.get("report") or {}).get("history") or {}).get("gq")) for r in rows
           if "MetaInit" in r["init"]]
    gqs = [(name, gq) for name, gq in gqs if gq]
    if gqs:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, gq in gqs:
            ax.plot(range(1, len(gq) + 1), gq, label=name)
        ax.set_yscale("log" if min(min(gq) for _, gq in gqs) > 0 else "linear")
        ax.set_xlabel("MetaInit step")
        ax.set_ylabel("gradient quotient (random batch)")
        ax.set_title("MetaInit: gradient quotient per step")
        ax.legend(fontsize=7)
        save(fig, "metainit_gq.png")
    return paths
