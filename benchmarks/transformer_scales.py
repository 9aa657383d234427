"""What each learned method does to the Post-LN Transformer of regime 2, tensor group by group.

From Keras's default init of the regime's 6-block Post-LN encoder (``benchmarks/regimes/
transformer.py``), each learned method runs on the training data of the reverse task and its
report is summarized: the objective before -> after, the constraint steps, and the geometric mean
of the per-tensor scales by group (token embedding, positions, attention query/key/value/output,
FFN, the output layer). Training afterwards is regime 2's business; this script says why a method
moves the net or not.

Usage: python benchmarks/transformer_scales.py [--seed 0] [--methods ...] [--json PATH]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras_metainit  # noqa: E402,F401
import record  # noqa: E402
from keras_metainit.experiments import contenders as C  # noqa: E402
from keras_metainit.experiments import data, models  # noqa: E402
from regimes import transformer as regime  # noqa: E402

GROUPS = (("embedding", "token embedding"), ("position", "positions"), ("query", "attention q"),
          ("key", "attention k"), ("value", "attention v"), ("attention_output", "attention out"))


def group(name: str) -> str:
    """The tensor group of a variable path (``.../query/kernel`` -> ``attention q``)."""
    for needle, label in GROUPS:
        if needle in name:
            return label
    return "dense (FFN, output)"


def rows(cfg):
    gradinit = dict(steps=cfg["gradinit_steps"], step="adam")
    return [C.suite("metainit", steps=cfg["metainit_steps"]),
            C.suite("gradinit", eta=1e-3, **gradinit),
            C.suite("gradinit", steps=cfg["gradinit_steps"],
                    label="GradInit (defaults: η 0.1, SGD step)"),
            C.suite("gradcosine", steps=cfg["gradcosine_steps"])]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+", help="row name prefixes (default: every method)")
    record.add_argument(p, "transformer_scales")
    args = p.parse_args(argv)
    cfg = regime.FULL
    arguments = {k: cfg[k] for k in ("layers", "dim", "ffn", "heads", "vocab", "length")}
    train = data.sequence_task("reverse", cfg["steps"] * cfg["batch"], vocab=cfg["vocab"],
                               length=cfg["length"], seed=100)
    out = []
    for row in C.keep(rows(cfg), args.methods):
        model = models.transformer(seed=args.seed, **arguments)
        report = row.init(model, train, args.seed)
        scales = defaultdict(list)
        for t in report.tensors:
            if t.get("tuned"):
                scales[group(t["name"])].append(float(t["scale"]))
        geo = {g: math.exp(sum(math.log(max(s, 1e-12)) for s in v) / len(v))
               for g, v in scales.items()}
        out.append({"method": row.name, "before": report.before, "after": report.after,
                    "steps_run": report.steps_run, "constraint_steps": report.constraint_steps,
                    "kept_start": getattr(report, "kept_start", None),
                    "gain": report.end_to_end_gain, "scales": geo,
                    "wall_s": report.wall_time})
        print(f"{row.name}: {report.before} -> {report.after}; constraint steps "
              f"{report.constraint_steps}/{report.steps_run}; kept start "
              f"{getattr(report, 'kept_start', None)}; scales "
              + ", ".join(f"{g} {v:.3g}" for g, v in geo.items()), flush=True)
    record.write(record.path_for(args, "transformer_scales"), {"seed": args.seed, "rows": out})


if __name__ == "__main__":
    main()
