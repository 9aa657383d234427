"""The demo (``keras-metainit demo``): where each method wins and where it loses, in two scenes.

A deep plain ReLU MLP (``keras.layers.Dense``, no normalization, no weight norm) is trained with
the same short budget from two starts, and each method of the suite is applied to the start:

1. **Keras's default init** (``glorot_uniform``), the start a user really has. At depth 20 it
   halves the signal at every ReLU; the learned and layer-wise methods each repair it (MetaInit,
   GradInit, GradCosine, LSUV, Sylvester), next to the one-line fix ``he_normal`` and, when
   installed, the peer AnyInit.
2. **A bad start**, every kernel ×0.1 of He-normal: the gradients vanish (~0.1²⁰). MetaInit's sign
   steps and LSUV's measured rescaling recover from it; GradInit's Adam steps on its scales cannot.

A table per scene (init time, gradient quotient before → after, final training loss, test
accuracy) is printed and figures are written to ``--out`` (default ``./keras-metainit-demo``):
``demo_accuracy.png`` (test accuracy per contender, both scenes), ``training_curves.png``
(training loss per step) and ``metainit_gq.png``. ``DemoConfig(wn=True)`` adds the
weight-normalized MLP rows (``WNInit`` and ``glorot_uniform``) to the first scene.

The pieces, in the order a run uses them, one idea per module:

- :mod:`~keras_metainit.demo.config`, the settings and the data: :class:`DemoConfig`,
  :data:`QUICK`, :data:`SCENES`, :func:`load_demo_data`;
- :mod:`~keras_metainit.demo.contenders`, the rows: :data:`CONTENDERS`, each a :class:`Contender`
  of a scene whose ``build`` returns an :class:`Initialized`;
- this module, the run: :func:`run_contender` (build, train, evaluate), :func:`run_demo`;
- :mod:`~keras_metainit.demo.figures`, the results shown: :func:`format_table`, :func:`write_plots`.

TensorFlow and Keras are imported inside the functions that need them.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence

# run_demo calls run_contender, anyinit_available and write_plots through this module's names,
# so that replacing one of them here (a test's monkeypatch) takes effect.
from keras_metainit.demo.config import QUICK, SCENES, DemoConfig, DemoData, load_demo_data
from keras_metainit.demo.contenders import (
    ANYINIT, BAD_START, CONTENDERS, WN_CONTENDERS, Contender, Initialized, anyinit_available,
)
from keras_metainit.demo.figures import _verdict_lines, format_table, write_plots


__all__ = [
    "DemoConfig", "QUICK", "DemoData", "load_demo_data", "Initialized", "Contender", "CONTENDERS",
    "WN_CONTENDERS", "ANYINIT", "BAD_START", "SCENES", "anyinit_available", "run_contender",
    "train_and_evaluate", "format_table", "write_plots", "run_demo",
]


def train_and_evaluate(model, cfg: DemoConfig, data: DemoData) -> Dict[str, Any]:
    """Train ``model`` with the run's budget and optimizer; return losses and test accuracy.

    ``loss_per_step`` is the training loss of every batch (Keras's running mean over the epoch
    restarts each epoch, so the per-batch values are recovered from it).
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    running: List[float] = []

    class _Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.seen = 0

        def on_train_batch_end(self, batch, logs=None):
            mean = float((logs or {}).get("loss", float("nan")))
            self.seen += 1
            prev = running[-1][1] if running and self.seen > 1 else 0.0
            running.append((self.seen, mean))
            per_step.append(mean * self.seen - prev * (self.seen - 1))

    per_step: List[float] = []
    start = time.perf_counter()
    history = model.fit(
        data.x_train,
        data.y_train,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_Record()],
    )
    train_s = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0)
    return {
        "train_s": train_s,
        "train_loss": float(history.history["loss"][-1]),
        "loss_per_epoch": [float(v) for v in history.history["loss"]],
        "loss_per_step": per_step,
        "test_loss": float(test_loss),
        "test_acc": float(test_acc),
    }


def run_contender(contender: Contender, cfg: DemoConfig, data: DemoData) -> Dict[str, Any]:
    """Build (initialize), train and evaluate one contender from the same random state."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)  # same shuffling for every contender
    start = time.perf_counter()
    built = contender.build(cfg, data)
    init_s = time.perf_counter() - start - built.probe_s  # the probes are not part of init
    report = built.report
    row: Dict[str, Any] = {"init": contender.name, "scene": contender.scene, "init_s": init_s,
                           "gq_before": built.gq_before, "gq_after": built.gq_after,
                           "report": report and report.to_dict()}
    row.update(train_and_evaluate(built.model, cfg, data))
    return row


def run_demo(cfg: DemoConfig, contenders: Optional[Sequence[Contender]] = None) -> List[Dict]:
    """Run every contender with ``cfg``, print a table per scene, write ``<out>/demo.json`` and
    the figures (unless ``cfg.plots`` is False)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    import keras  # (model.meta_initialize is there: keras_metainit was imported before this)

    if contenders is None:
        contenders = list(CONTENDERS)
        if cfg.wn:
            contenders[2:2] = WN_CONTENDERS
        if anyinit_available():
            contenders.insert(2, ANYINIT)
        else:
            print("AnyInit (a peer) is not installed: no row for it "
                  "(pip install keras-metainit[anyinit])", flush=True)
    total_start = time.perf_counter()
    os.makedirs(cfg.out, exist_ok=True)
    data = load_demo_data(cfg)
    title = (
        f"keras-metainit demo: {cfg.depth}-layer plain ReLU MLP (width {cfg.width}, keras Dense, "
        f"no normalization), two starts; 'default + X' / 'x{cfg.bad_scale:g} + X' = that start "
        f"fixed by X"
    )
    budget = (
        f"Fashion-MNIST bundled subset ({len(data.x_train)} train / {len(data.x_test)} test), "
        f"{cfg.epochs} epoch(s), SGD {cfg.learning_rate:g} momentum {cfg.momentum:g}, "
        f"batch {cfg.batch_size}, seed {cfg.seed}, Keras {keras.__version__} "
        f"({keras.backend.backend()})"
    )
    print(title, flush=True)
    print(budget, flush=True)
    rows = []
    for contender in contenders:
        print(f"  {contender.name} ...", flush=True)
        rows.append(run_contender(contender, cfg, data))
    print()
    print(title)
    print(budget)
    for scene, scene_title in SCENES.items():
        part = [r for r in rows if r.get("scene", "default") == scene]
        if not part:
            continue
        if scene != "default":
            he = [r for r in rows if r["init"] == "He"]
            part = he + part  # He as the reference line of every table
        print(f"\n{scene_title.format(bad_scale=cfg.bad_scale)}:")
        print(format_table(part))
        for line in _verdict_lines(part):
            print(line)
    print("\n(one seed: differences under about 0.05 are within the seed-to-seed spread; "
          "benchmarks/claims.py runs 3 seeds)", flush=True)
    plots = write_plots(rows, cfg.out) if cfg.plots else []
    total_s = time.perf_counter() - total_start
    path = os.path.join(cfg.out, "demo.json")
    with open(path, "w") as fh:
        json.dump({"config": asdict(cfg), "title": title, "total_s": total_s,
                   "plots": plots, "results": rows}, fh, indent=2, default=_json_default)
    print(f"\nresults: {path}")
    for p in plots:
        print(f"figure:  {p}")
    print(f"total time {total_s:.1f} s", flush=True)
    return rows


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
