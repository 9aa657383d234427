"""The demo's scenes, each a table of the experiment harness (:mod:`keras_metainit.experiments`):
the model, the data, the budget and the rows. Every scene has the row ``default call``:
``model.meta_initialize(data)`` with the method :func:`keras_metainit.choose.choose` picks for
that model, next to Keras's default init, He and (when installed) the peer AnyInit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from keras_metainit.demo.config import SCENES, DemoConfig

__all__ = ["Scene", "build_scenes", "ANALYTIC", "DEFAULT_CALL"]

#: The rows a suite method must beat for the scene to show a win.
ANALYTIC = ("Keras default", "He", "AnyInit (empirical)")
DEFAULT_CALL = "default call"


@dataclass
class Scene:
    """A scene: its key, what it shows, the harness table it runs, and the model it is about
    (built once to print the rule's choice and reason)."""

    key: str
    title: str
    table: object
    example_model: object


def _rows():
    from keras_metainit.experiments import contenders as C

    return [C.keras_default(), C.he(), *C.anyinit()]


def build_scenes(cfg: DemoConfig) -> List[Scene]:
    """The scenes of ``cfg.scenes``, in order."""
    from keras_metainit.experiments import contenders as C
    from keras_metainit.experiments import data, models
    from keras_metainit.experiments.runner import Claim, Table
    from keras_metainit.experiments.training import Budget

    chosen = C.chosen(DEFAULT_CALL, steps=cfg.init_steps or None)
    claim = Claim("the default call beats every analytic init", [DEFAULT_CALL], list(ANALYTIC))
    scenes = []
    for key in cfg.scenes:
        if key == "transformer":
            arguments = {"layers": cfg.layers, "dim": cfg.dim, "ffn": cfg.ffn, "heads": 2,
                         "vocab": cfg.vocab, "length": cfg.length}
            train = data.sequence_task("reverse", cfg.steps * cfg.batch_size, vocab=cfg.vocab,
                                       length=cfg.length, seed=100)
            test = data.sequence_task("reverse", 1024, vocab=cfg.vocab, length=cfg.length,
                                      seed=999)
            table = Table(
                key, f"{cfg.layers}-block Post-LN Transformer encoder (d {cfg.dim}), reversing "
                f"sequences (vocabulary {cfg.vocab}, length {cfg.length}), Adam {cfg.adam_lr:g}, "
                "no warmup; held-out token accuracy (chance 1/16), solved at 0.9",
                models.transformer, arguments, (train, test),
                Budget("adam", cfg.adam_lr, batch_size=cfg.batch_size, steps=cfg.steps),
                _rows() + [C.suite("lsuv", "LSUV (the former default)"), chosen], [claim],
                solved=0.9)
        elif key == "mlp":
            arguments = {"depth": cfg.depth, "width": cfg.width}
            train, test, _ = data.fashion_mnist("small", train_size=cfg.train_size,
                                                test_size=cfg.test_size)
            table = Table(
                key, f"{cfg.depth}-layer plain ReLU MLP (width {cfg.width}, no normalization), "
                f"bundled Fashion-MNIST ({len(train[0])} train / {len(test[0])} test), "
                f"SGD {cfg.sgd_lr:g} momentum 0.9; test accuracy",
                models.mlp, arguments, (train, test),
                Budget("sgd", cfg.sgd_lr, momentum=0.9, batch_size=128, steps=cfg.mlp_steps),
                _rows() + [chosen], [claim])
        else:
            raise ValueError(f"Argument `scenes` must hold names from {tuple(SCENES)}. "
                             f"Received: scenes={cfg.scenes!r}")
        scenes.append(Scene(key, SCENES[key], table,
                            table.build(seed=0, **table.arguments)))
    return scenes
