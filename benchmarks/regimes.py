"""Where initialization decides: the five regimes of issue 21, every contender side by side.

One command runs the regimes (``benchmarks/regimes/``, one file each) and prints, per table,
mean ± sample std over the seeds, divergences (a non-finite loss, or a final loss above the first
step's), the runs that reach ``solved`` where a table has one, init and training seconds, a
verdict per claim (a difference counts beyond two standard errors of the difference:
``keras_metainit.experiments.stats``) and the wall time of every regime and of the whole run:

1. ``high_lr``: no normalization at a large learning rate (VGG-like CNN, deep plain MLP; SGD 0.1,
   momentum 0.9, global clipping 1, no warmup) on the full Fashion-MNIST.
2. ``transformer``: a 6-block Post-LN Transformer encoder without warmup on a synthetic reverse
   task, Adam at three rates; Pre-LN and warmup as references.
3. ``residual``: residual MLPs of 20 and 50 blocks without normalization; Fixup a contender.
4. ``depth``: plain MLPs of depth 10 to 100 with ReLU, GELU, tanh, SiLU, each contender at its best
   rate of a small grid.
5. ``recovery``: deep plain nets from bad starts (every kernel ×0.1 or ×3 of He-normal).

The full Fashion-MNIST is Debian's ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``); without it the bundled 6,000-image subset is used and said so.

Usage:
    python benchmarks/regimes.py [--regimes high_lr transformer ...] [--seeds 5] [--quick]
                                 [--json PATH] [--tables KEY ...] [--rows NAME ...] [--into PATH]
                                 [--init-cache DIR] [--merge PATH ...]

``--tables`` / ``--rows`` run only the tables / rows whose key / name starts with one of the
given prefixes; ``--init-cache DIR`` keeps every initialized model's weights there, so that a
later run (other tables of the same model) does not initialize again; ``--merge A B --into C``
merges results files without running anything; ``--into PATH`` merges the tables run into an
existing results file (a row run again replaces the row of the same name in the table of the same
key, the table's other rows stay, and its verdicts are judged again on them).

``--quick``: tiny models, budgets and steps, 2 seeds, a smoke run of every code path (about two
minutes on 2 cores; its verdicts mean nothing).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras_metainit  # noqa: E402,F401  (adds keras.Model.meta_initialize)
import record  # noqa: E402
import render  # noqa: E402
from keras_metainit.experiments import stats  # noqa: E402
from keras_metainit.experiments.runner import Session, run_table  # noqa: E402
from regimes import REGIMES  # noqa: E402


def _log(line: str) -> None:
    print(line, flush=True)


def run(names, n_seeds: int, quick: bool, tables=None, rows=None, log=_log,
        init_cache=None, save=None) -> dict:
    """Run the regimes ``names`` (only the tables and rows of those prefixes, when given);
    return the results (JSON-ready). ``save(results so far)`` is called after every row."""
    from keras_metainit.experiments.contenders import keep

    seeds = stats.seeds(n_seeds)
    session = Session(init_cache)
    run_meta = record.metadata()
    run_meta = {k: run_meta[k] for k in ("command", "date", "commit")}
    out = {"config": {"seeds": seeds, "quick": quick}, "regimes": []}
    for name in names:
        module = REGIMES[name]
        t0 = time.perf_counter()
        log(f"\n## Regime {module.NUMBER}: {module.TITLE}\n\n{module.CLAIM}\n")
        results = []
        regime = {"key": name, "number": module.NUMBER, "title": module.TITLE,
                  "claim": module.CLAIM, "tables": results, "wall_s": 0.0}
        out["regimes"].append(regime)

        def partial(result, results=results, regime=regime, t0=t0):
            if save is not None:
                result["run"] = run_meta
                regime["tables"] = results + [result]
                regime["wall_s"] = time.perf_counter() - t0
                out["wall_s"] = sum(r["wall_s"] for r in out["regimes"])
                save(out)
                regime["tables"] = results

        for table in module.tables(quick):
            if tables and not table.key.startswith(tuple(tables)):
                continue
            table.contenders = keep(table.contenders, rows)
            log(f"- {table.title}")
            result = run_table(table, seeds, session, log, on_row=partial)
            result["run"] = run_meta
            log("\n" + render.tables().format_table(result) + "\n")
            results.append(result)
            if save is not None:  # the table whole, not only its rows so far
                regime["wall_s"] = time.perf_counter() - t0
                out["wall_s"] = sum(r["wall_s"] for r in out["regimes"])
                save(out)
        wall = time.perf_counter() - t0
        log(f"(regime {module.NUMBER} {name}: {wall:.0f} s wall)")
        regime["wall_s"] = wall
    out["wall_s"] = sum(r["wall_s"] for r in out["regimes"])
    return out


def _merge_rows(old_table: dict, new_table: dict) -> dict:
    """One table from two runs of it: ``new_table``'s rows replace ``old_table``'s rows of the
    same name, the others stay (a run of some rows adds to the table); the verdicts are judged
    again on the merged rows, with the claims the new run stored."""
    from keras_metainit.experiments.runner import Claim, judge

    rows = {r["name"]: r for r in old_table["rows"]}
    kept = [name for name in rows if name not in {r["name"] for r in new_table["rows"]}]
    rows.update({r["name"]: r for r in new_table["rows"]})
    # the old run's time for the rows it keeps (its share of them), and its command beside the
    # new one's when it keeps any
    share = len(kept) / len(old_table["rows"]) if old_table["rows"] else 0.0
    merged = dict(new_table, rows=list(rows.values()),
                  wall_s=new_table["wall_s"] + share * old_table["wall_s"])
    if kept and "run" in old_table and "run" in new_table:
        merged["run"] = dict(new_table["run"], command=(
            f"{old_table['run']['command']} (rows {', '.join(kept)}); "
            f"{new_table['run']['command']}"))
    merged["verdicts"] = [judge(Claim(**c), rows) for c in new_table["claims"]]
    return merged


def merge(old: dict, new: dict) -> dict:
    """``new``'s tables merged into ``old``: a table of a key ``old`` lacks is added; one it has
    gets ``new``'s rows (a row replaces ``old``'s row of the same name, the others stay) and its
    verdicts judged again; the regimes' wall times are the sums of their tables'."""
    by_key = {r["key"]: r for r in old.get("regimes", [])}
    for reg in new["regimes"]:
        if reg["key"] not in by_key:
            by_key[reg["key"]] = reg
            continue
        mine = by_key[reg["key"]]
        tables = {t["key"]: t for t in mine["tables"]}
        for t in reg["tables"]:
            tables[t["key"]] = (_merge_rows(tables[t["key"]], t) if t["key"] in tables else t)
        mine["tables"] = list(tables.values())
        mine["wall_s"] = sum(t["wall_s"] for t in mine["tables"])
    order = list(REGIMES)
    regimes = sorted(by_key.values(), key=lambda r: order.index(r["key"]))
    return {"config": new["config"], "regimes": regimes,
            "wall_s": sum(r["wall_s"] for r in regimes)}


def summary(results: dict) -> str:
    """The verdicts and wall times of every regime (``render.py``'s summary table)."""
    return render.render_regimes_summary(results)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    p.add_argument("--seeds", type=int, default=None, help="seeds per row (default 5, --quick 2)")
    p.add_argument("--quick", action="store_true", help="a smoke run of every code path")
    p.add_argument("--json", metavar="PATH", help="write the results (JSON) here")
    p.add_argument("--tables", nargs="+", metavar="KEY", help="only tables of these key prefixes")
    p.add_argument("--rows", nargs="+", metavar="NAME", help="only rows of these name prefixes")
    p.add_argument("--init-cache", metavar="DIR",
                   help="keep initialized weights here and reuse them across runs")
    p.add_argument("--into", metavar="PATH",
                   help="merge the tables run into this results file (created if absent)")
    p.add_argument("--merge", nargs="+", metavar="PATH",
                   help="run nothing: merge these results files, in order, into --into")
    args = p.parse_args(argv)
    if args.merge:
        if not args.into:
            p.error("--merge needs --into")
        merged = {}
        for path in [args.into] * os.path.exists(args.into) + args.merge:
            with open(path) as fh:
                new = json.load(fh)
            meta = new.get("meta", {})
            new.setdefault("config", {"seeds": meta.get("seeds"), "quick": meta.get("quick")})
            merged = merge(merged, new)
        return record.write(args.into, merged)
    n_seeds = args.seeds or (2 if args.quick else 5)
    if n_seeds < 2:
        p.error("--seeds must be at least 2 (a standard deviation needs two runs)")
    old = {}
    if args.into and os.path.exists(args.into):
        with open(args.into) as fh:
            old = json.load(fh)

    def save(results, final=False):
        """Write the results so far (after every row, and at the end)."""
        if args.json:
            record.write(args.json, results, quiet=not final)
        if args.into:
            record.write(args.into, merge(json.loads(json.dumps(old)), results),
                         quiet=not final)

    results = run(args.regimes, n_seeds, args.quick, args.tables, args.rows,
                  init_cache=args.init_cache, save=save if args.json or args.into else None)
    print("\n" + summary(results), flush=True)
    save(results, final=True)
    return results


if __name__ == "__main__":
    main()
