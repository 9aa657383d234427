"""The ``keras-metainit`` command line.

Subcommands:

- ``keras-metainit demo``: the main job. Trains the same deep weight-normalized ReLU MLP on the
  bundled Fashion-MNIST subset once per initialization ("contender") for the same short budget
  and prints a table of init, time and test accuracy.

TensorFlow and Keras are imported inside the subcommands, not at module level, so that argument
parsing (``keras-metainit --help``) does not pay for them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from keras_metainit import __version__

__all__ = ["main", "DemoConfig", "Contender", "CONTENDERS", "run_demo", "format_table"]


# --------------------------------------------------------------------------------------------
# demo: configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    """Settings of one ``demo`` run. Every contender gets exactly these.

    The defaults were chosen so that the weight-norm initialization trains robustly at depth 50
    within the budget (Adam, batch 32, quadratic warmup over the first epoch, inputs standardized).
    """

    depth: int = 50  # hidden WNDense layers
    width: int = 128  # units per hidden layer
    epochs: int = 3
    seed: int = 0
    batch_size: int = 32
    learning_rate: float = 3e-4  # Adam's rate after the warmup
    warmup_epochs: float = 1.0  # QuadraticWarmup length, in epochs
    train_size: Optional[int] = None  # None: all 6,000 bundled training images
    test_size: Optional[int] = None  # None: all 2,000 bundled test images
    out: str = "out"


#: What ``--quick`` changes: a tiny run for tests and smoke checks (seconds, not minutes).
QUICK = {"depth": 4, "width": 32, "epochs": 2, "train_size": 1024, "test_size": 512}


@dataclass
class DemoData:
    """The demo's data: flattened, standardized images and integer labels."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


def load_demo_data(cfg: DemoConfig) -> DemoData:
    """The bundled Fashion-MNIST subset, flattened, standardized with the training mean and std.

    With ``train_size`` / ``test_size`` a seeded random subset of that size is taken.
    """
    import numpy as np

    from keras_metainit.datasets import load_fashion_mnist

    rng = np.random.default_rng(cfg.seed)
    arrays = []
    for split, size in (("train", cfg.train_size), ("test", cfg.test_size)):
        x, y = load_fashion_mnist(split, flatten=True)
        if size is not None and size < len(x):
            keep = rng.permutation(len(x))[:size]
            x, y = x[keep], y[keep]
        arrays.append((x, y))
    (x_train, y_train), (x_test, y_test) = arrays
    mean, std = float(x_train.mean()), float(x_train.std())
    return DemoData(
        x_train=(x_train - mean) / std,
        y_train=y_train,
        x_test=(x_test - mean) / std,
        y_test=y_test,
    )


# --------------------------------------------------------------------------------------------
# demo: contenders. One function per contender; a row of the table per entry of CONTENDERS.
# A contender returns the *initialized*, uncompiled model; the time it takes is the "init s"
# column, so a learned initialization (model.meta_initialize(data.x_train, ...)) fits here too.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One row of the demo's table.

    Attributes:
        name: the row's label.
        build: ``build(cfg, data) -> keras.Model``, the initialized model, not yet compiled.
    """

    name: str
    build: Callable[[DemoConfig, DemoData], Any]


def wn_mlp(cfg: DemoConfig, hidden_init: Callable[[int], Any], output_init: Any):
    """The demo's network: ``cfg.depth`` ReLU ``WNDense`` layers of ``cfg.width``, then 10 logits.

    Args:
        cfg: the run's settings.
        hidden_init: ``hidden_init(i)`` is the kernel initializer of hidden layer ``i`` (one
            fresh, seeded instance per layer: a seeded Keras initializer repeats its values).
        output_init: the classifier's kernel initializer.
    """
    import keras

    from keras_metainit.layers import WNDense

    inputs = keras.Input((784,))
    h = inputs
    for i in range(cfg.depth):
        h = WNDense(cfg.width, activation="relu", kernel_initializer=hidden_init(i))(h)
    logits = WNDense(10, kernel_initializer=output_init)(h)
    return keras.Model(inputs, logits, name=f"wn_mlp_{cfg.depth}x{cfg.width}")


def _layer_seed(cfg: DemoConfig, i: int) -> int:
    return cfg.seed * 10_000 + i


def build_wninit(cfg: DemoConfig, data: DemoData):
    """Arpit et al.'s weight-norm init: gamma=2 for the ReLU layers, gamma=1 for the classifier."""
    from keras_metainit.initializers import WNInit

    return wn_mlp(
        cfg,
        hidden_init=lambda i: WNInit(gamma=2.0, seed=_layer_seed(cfg, i)),
        output_init=WNInit(gamma=1.0, seed=_layer_seed(cfg, cfg.depth)),
    )


def build_glorot(cfg: DemoConfig, data: DemoData):
    """Keras's default kernel initializer (``glorot_uniform``) in the same weight-normalized net."""
    import keras

    return wn_mlp(
        cfg,
        hidden_init=lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i)),
        output_init=keras.initializers.GlorotUniform(seed=_layer_seed(cfg, cfg.depth)),
    )


CONTENDERS: List[Contender] = [
    Contender("WNInit", build_wninit),
    Contender("glorot_uniform", build_glorot),
]


# --------------------------------------------------------------------------------------------
# demo: the shared training loop and the table
# --------------------------------------------------------------------------------------------


def train_and_evaluate(model, cfg: DemoConfig, data: DemoData) -> Dict[str, float]:
    """Train ``model`` with the run's budget and optimizer; return its final loss and accuracy."""
    import math

    import keras

    from keras_metainit.schedules import QuadraticWarmup

    steps_per_epoch = math.ceil(len(data.x_train) / cfg.batch_size)
    warmup = max(1, round(cfg.warmup_epochs * steps_per_epoch))
    model.compile(
        optimizer=keras.optimizers.Adam(QuadraticWarmup(cfg.learning_rate, warmup)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        data.x_train,
        data.y_train,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        shuffle=True,
        verbose=0,
    )
    train_s = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0)
    return {
        "train_s": train_s,
        "train_loss": float(history.history["loss"][-1]),
        "test_loss": float(test_loss),
        "test_acc": float(test_acc),
    }


def run_contender(contender: Contender, cfg: DemoConfig, data: DemoData) -> Dict[str, Any]:
    """Build (initialize), train and evaluate one contender from the same random state."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)  # same shuffling for every contender
    start = time.perf_counter()
    model = contender.build(cfg, data)
    init_s = time.perf_counter() - start
    return {"init": contender.name, "init_s": init_s, **train_and_evaluate(model, cfg, data)}


_COLUMNS = (  # (key, header, format)
    ("init", "init", "{:<16}"),
    ("init_s", "init s", "{:>7.1f}"),
    ("train_s", "train s", "{:>8.1f}"),
    ("train_loss", "train loss", "{:>11.3f}"),
    ("test_acc", "test acc", "{:>9.3f}"),
)


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The demo's results as a plain-text table, one line per contender."""
    widths = [len(fmt.format(0.0 if key != "init" else "")) for key, _, fmt in _COLUMNS]
    header = "  ".join(
        title.ljust(w) if key == "init" else title.rjust(w)
        for (key, title, _), w in zip(_COLUMNS, widths)
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append("  ".join(fmt.format(row[key]) for key, _, fmt in _COLUMNS))
    return "\n".join(lines)


def run_demo(cfg: DemoConfig, contenders: Sequence[Contender] = CONTENDERS) -> List[Dict]:
    """Run every contender with ``cfg``, print the table, write ``<out>/demo.json``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
    import keras

    os.makedirs(cfg.out, exist_ok=True)
    data = load_demo_data(cfg)
    print(
        f"keras-metainit demo: {cfg.depth}-layer weight-normalized ReLU MLP (width {cfg.width}), "
        f"Fashion-MNIST bundled subset ({len(data.x_train)} train / {len(data.x_test)} test), "
        f"{cfg.epochs} epoch(s), Adam {cfg.learning_rate:g} with quadratic warmup, "
        f"batch {cfg.batch_size}, seed {cfg.seed}, Keras {keras.__version__} "
        f"({keras.backend.backend()})",
        flush=True,
    )
    rows = []
    for contender in contenders:
        print(f"  training {contender.name} ...", flush=True)
        rows.append(run_contender(contender, cfg, data))
    print()
    print(format_table(rows), flush=True)
    path = os.path.join(cfg.out, "demo.json")
    with open(path, "w") as fh:
        json.dump({"config": asdict(cfg), "results": rows}, fh, indent=2)
    print(f"\nresults written to {path}")
    return rows


def _demo_command(args: argparse.Namespace) -> int:
    defaults = asdict(DemoConfig())
    if args.quick:
        defaults.update(QUICK)
    given = {
        key: getattr(args, key)
        for key in ("depth", "width", "epochs", "seed", "out")
        if getattr(args, key) is not None
    }
    run_demo(DemoConfig(**{**defaults, **given}))
    return 0


# --------------------------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``keras-metainit`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="keras-metainit",
        description="Initializers that make deep Keras 3 networks start training.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a deep weight-normalized MLP with WNInit and with Keras's default init",
        description=(
            "Train the same deep weight-normalized ReLU MLP on the bundled Fashion-MNIST subset "
            "once per initialization, with the same budget, and print init, time and test "
            "accuracy for each."
        ),
    )
    d = DemoConfig()
    demo.add_argument("--depth", type=_positive_int, help=f"hidden layers (default {d.depth})")
    demo.add_argument("--width", type=_positive_int, help=f"units per layer (default {d.width})")
    demo.add_argument("--epochs", type=_positive_int, help=f"training epochs (default {d.epochs})")
    demo.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    demo.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for tests: depth 4, width 32, 2 epochs, 1024 training images "
        "(explicit options still apply)",
    )
    demo.add_argument(
        "--out", metavar="DIR", help=f"output folder, created if needed (default {d.out!r})"
    )
    demo.set_defaults(func=_demo_command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``keras-metainit`` console script.

    Args:
        argv: the arguments, without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 when no command was given.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 1
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
