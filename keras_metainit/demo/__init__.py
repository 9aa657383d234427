"""The demo (``keras-metainit demo``): where calling ``meta_initialize`` pays, and where it does
not, each over several seeds with the experiments' verdict rule.

Two scenes (:mod:`~keras_metainit.demo.scenes`), each a table of the experiment harness
(:mod:`keras_metainit.experiments`, the one that ``benchmarks/regimes.py`` runs):

1. **transformer**, where the suite pays: a 6-block Post-LN Transformer encoder reversing random
   sequences with Adam and no warmup (regime 2 of ``benchmarks/regimes.py``). From Keras's
   default init, from He and from AnyInit it stalls near chance; the default call,
   ``model.meta_initialize(data)`` with the method :func:`keras_metainit.choose.choose` picks for
   Post-LN blocks (T-Fixup), makes it train. LSUV, the former default, is shown too.
2. **mlp**, where it does not: a 20-layer plain ReLU MLP at SGD 0.01, He's home ground. The
   default call (LSUV there) repairs Keras's default init, and ties with He.

Each scene prints the rule's choice and reason, a table (mean ± sample std over the seeds,
divergences, init and training seconds) and a verdict: the default call *wins* when it is above
every analytic row (Keras default, He, AnyInit) beyond two standard errors of the difference. A
closing line says which scenes show a win, or that none does. ``<out>/demo.json`` holds the
results, and the figures (:mod:`~keras_metainit.demo.figures`) go to ``<out>``.

TensorFlow and Keras are imported inside the functions that need them.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from typing import Any, Dict, List, Optional

from keras_metainit.demo.config import QUICK, SCENES, DemoConfig
from keras_metainit.demo.figures import write_plots
from keras_metainit.demo.scenes import ANALYTIC, DEFAULT_CALL, Scene, build_scenes

__all__ = ["DemoConfig", "QUICK", "SCENES", "Scene", "build_scenes", "run_demo",
           "scene_verdict", "closing_line", "write_plots", "ANALYTIC", "DEFAULT_CALL"]


def scene_verdict(result: Dict[str, Any]) -> Dict[str, Any]:
    """The scene's verdict from its table result: the first claim's (the default call against
    every analytic row)."""
    return result["verdicts"][0]


def closing_line(results: List[Dict[str, Any]]) -> str:
    """Which scenes show a win of the default call beyond the seed spread, or that none does."""
    wins = [r["key"] for r in results if scene_verdict(r)["verdict"] == "holds"]
    if not wins:
        return ("No scene shows a win beyond the seed spread in this run: the default call is "
                "not above every analytic init (see the verdicts above).")
    rest = [r["key"] for r in results if r["key"] not in wins]
    return (f"The default call wins beyond the seed spread in: {', '.join(wins)}"
            + (f"; not in: {', '.join(rest)}." if rest else "."))


def run_demo(cfg: DemoConfig, log=print) -> List[Dict[str, Any]]:
    """Run every scene of ``cfg``; print the tables and verdicts; write ``<out>/demo.json`` and
    the figures (unless ``cfg.plots`` is False). Returns the scenes' table results."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    import keras

    import keras_metainit  # noqa: F401  (model.meta_initialize)
    from keras_metainit.choose import choose
    from keras_metainit.experiments import stats
    from keras_metainit.experiments.runner import Session, format_table, run_table
    from keras_metainit.validation import check

    check(cfg.seeds >= 2, "seeds", cfg.seeds, "an integer >= 2 (a spread needs two runs)")
    start = time.perf_counter()
    os.makedirs(cfg.out, exist_ok=True)
    seeds = stats.seeds(cfg.seeds)
    log(f"keras-metainit demo: {len(cfg.scenes)} scene(s), seeds {seeds}, Keras "
        f"{keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPU(s)")
    session, results = Session(), []
    for scene in build_scenes(cfg):
        method, reason = choose(scene.example_model)
        name = method if isinstance(method, str) else method.name
        log(f"\n## {scene.key}: {scene.title}\n")
        log(f"default call: model.meta_initialize(data) runs {name}: {reason}")
        result = run_table(scene.table, seeds, session,
                           log=lambda line: log(line) if line.startswith("  ") else None)
        result["choice"] = {"method": name, "reason": reason}
        log("\n" + format_table(result))
        results.append(result)
    log("\n" + closing_line(results))
    plots = write_plots(results, cfg.out) if cfg.plots else []
    total_s = time.perf_counter() - start
    path = os.path.join(cfg.out, "demo.json")
    with open(path, "w") as fh:
        json.dump({"config": asdict(cfg), "total_s": total_s, "plots": plots,
                   "closing": closing_line(results), "scenes": results}, fh, indent=1,
                  default=_json_default)
    log(f"\nresults: {path}")
    for p in plots:
        log(f"figure:  {p}")
    log(f"total time {total_s:.1f} s")
    return results


def _json_default(value: Any) -> Optional[Any]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
