"""The ``keras-metainit`` command line: argument parsing and the three commands.

Subcommands:

- ``keras-metainit demo``: the main job, :func:`keras_metainit.demo.run_demo`: where calling
  ``meta_initialize`` pays (a Post-LN Transformer without warmup) and where it does not (a deep
  plain ReLU MLP), every contender over several seeds, a table and a verdict per scene, figures
  written to ``--out``.
- ``keras-metainit diagnose MODEL.keras``: gradient quotient, GradCosine and per-layer signal of a
  saved model on one batch (:func:`keras_metainit.diagnostics.diagnose`);
  ``--fail-if-unhealthy`` turns them into an exit status.
- ``keras-metainit init MODEL.keras --method ... -o OUT.keras``: initialize a saved model with
  ``meta_initialize`` and save the result. The ``--method`` choices are the registered methods
  (:func:`keras_metainit.methods.available`): a new method class is a new choice.
"""
from __future__ import annotations

import os

# Before anything imports TensorFlow: its C++ logs off for the command. (The package's
# ``__init__`` runs first on ``keras-metainit`` and ``python -m keras_metainit`` and does the same,
# muting stderr while TensorFlow is imported: its import-time lines ignore this variable.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import sys  # noqa: E402
from dataclasses import asdict
from typing import Optional, Sequence

from keras_metainit import __version__, demo  # noqa: E402
from keras_metainit import methods as methods_lib  # noqa: E402
from keras_metainit.diagnostics import HealthLimits, diagnose  # noqa: E402

__all__ = ["main", "build_parser", "model_batch"]


def _demo_command(args: argparse.Namespace) -> int:
    defaults = asdict(demo.DemoConfig())
    if args.quick:
        defaults.update(demo.QUICK)
    given = {key: getattr(args, key) for key in ("seeds", "scenes", "out")
             if getattr(args, key) is not None}
    if "scenes" in given:
        given["scenes"] = tuple(given["scenes"])
    if args.no_plots:
        given["plots"] = False
    _quiet_python_logs()
    demo.run_demo(demo.DemoConfig(**{**defaults, **given}))
    return 0


def _quiet_python_logs() -> None:
    """TensorFlow's Python-side warnings (retracing notices) and absl's off for the command."""
    import logging
    import warnings

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    warnings.filterwarnings("ignore", module="keras")


# --------------------------------------------------------------------------------------------
# diagnose and init: a saved model and one batch
# --------------------------------------------------------------------------------------------


def _load_model(path: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # (the custom objects are registered: keras_metainit was imported before this)

    return keras.models.load_model(path, compile=False)


def model_batch(model, source: str = "bundled", size: int = 128, seed: int = 0):
    """One labelled batch ``(x, y)`` shaped for ``model``'s single input.

    ``bundled``: bundled Fashion-MNIST training images, standardized, reshaped to the model's
    input shape (which must hold 784 values, e.g. ``(784,)`` or ``(28, 28, 1)``). ``random``:
    standard Gaussian inputs of the input shape and uniform labels over the output units.
    """
    import numpy as np

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    n_out = int(model.outputs[0].shape[-1] or 1)
    rng = np.random.default_rng(seed)
    if source == "bundled":
        from keras_metainit.datasets import load_fashion_mnist

        x, y = load_fashion_mnist("train", flatten=True)
        if int(np.prod(shape)) != 784:
            raise ValueError(f"--data bundled needs a model input of 784 values "
                             f"(Fashion-MNIST); the model's input shape is {shape}")
        keep = rng.permutation(len(x))[:size]
        x = (x - x.mean()) / x.std()
        return x[keep].reshape((-1,) + shape).astype("float32"), y[keep]
    if source == "random":
        x = rng.standard_normal((size,) + shape).astype("float32")
        return x, rng.integers(0, max(n_out, 2) if n_out > 1 else 2, size)
    raise ValueError(f"unknown data source {source!r}")


def _diagnose_command(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    batch = model_batch(model, args.data, args.batch, args.seed)
    limits = HealthLimits(args.max_gq, args.min_signal, args.max_signal)
    result = diagnose(model, batch, limits)
    print(f"keras-metainit diagnose: {args.model} ({model.name}), {args.data} batch of "
          f"{len(batch[1])}")
    print(f"  gradient quotient: {result['gq']:.4g}")
    print(f"  grad cosine: {result['gc']:.4g}  (mean chunk-gradient norm {result['gn']:.4g})")
    print(f"  input RMS: {result['input_rms']:.4g}")
    print("  layer output RMS:")
    width = max(len(r["name"]) for r in result["layers"])
    for r in result["layers"]:
        print(f"    {r['name']:<{width}}  {r['rms']:.4g}")
    print(f"  output/input RMS ratio: {result['signal_ratio']:.4g}")
    if result["healthy"]:
        print(f"  healthy (GQ <= {limits.max_gq:g}, ratio in "
              f"[{limits.min_signal:g}, {limits.max_signal:g}])")
    else:
        for p in result["problems"]:
            print(f"  UNHEALTHY: {p}")
    return 1 if args.fail_if_unhealthy and not result["healthy"] else 0


def _init_command(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    if args.data == "bundled":
        x, y = model_batch(model, "bundled", 6000, args.seed)
        data = (x, y)
    else:
        data = None  # meta_initialize's random Gaussian inputs and uniform labels
    report = model.meta_initialize(data, method=args.method, steps=args.steps,
                                   seed=args.seed, verbose=0)
    report.print()
    model.save(args.output)
    print(f"saved {args.output}")
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

    demo_cmd = sub.add_parser(
        "demo",
        help="where calling meta_initialize pays and where it does not, over several seeds",
        description=(
            "Two scenes, every contender over several seeds: a Post-LN Transformer without "
            "warmup (where the suite pays) and a deep plain ReLU MLP (where it does not). Each "
            "prints which method model.meta_initialize(data) picks for the model and why, a "
            "table (mean +- std, divergences, seconds) and a verdict (a win counts beyond two "
            "standard errors); writes DIR/demo.json and the figures demo_accuracy.png, "
            "training_curves.png (and metainit_gq.png where a row ran MetaInit)."
        ),
    )
    d = demo.DemoConfig()
    demo_cmd.add_argument("--seeds", type=_positive_int,
                          help=f"seeds per contender (default {d.seeds}, at least 2)")
    demo_cmd.add_argument("--scenes", nargs="+", choices=list(demo.SCENES),
                          help=f"the scenes to run (default: {' '.join(d.scenes)})")
    demo_cmd.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for tests: 2-block Transformer, 4-layer MLP, 30 steps each, "
        "2 init steps (explicit options still apply)",
    )
    demo_cmd.add_argument(
        "--out", metavar="DIR",
        help=f"folder for demo.json and the figures, created if needed (default ./{d.out})"
    )
    demo_cmd.add_argument("--no-plots", action="store_true",
                          help="write demo.json only, no figures")
    demo_cmd.set_defaults(func=_demo_command)

    lim = HealthLimits()
    diag = sub.add_parser(
        "diagnose",
        help="gradient quotient, grad cosine and per-layer signal of a saved model",
        description="Load MODEL.keras and print its gradient quotient, GradCosine and the RMS "
        "of every layer's output on one batch.",
    )
    diag.add_argument("model", metavar="MODEL.keras")
    diag.add_argument("--data", choices=("bundled", "random"), default="bundled",
                      help="bundled Fashion-MNIST (784-value inputs) or random Gaussian inputs "
                      "(default bundled)")
    diag.add_argument("--batch", type=_positive_int, default=128, help="batch size (default 128)")
    diag.add_argument("--seed", type=int, default=0, help="seed of the batch (default 0)")
    diag.add_argument("--fail-if-unhealthy", action="store_true",
                      help="exit with status 1 when a limit is exceeded or a value is not finite")
    diag.add_argument("--max-gq", type=float, default=lim.max_gq,
                      help=f"largest healthy gradient quotient (default {lim.max_gq:g})")
    diag.add_argument("--min-signal", type=float, default=lim.min_signal,
                      help=f"smallest healthy output/input RMS ratio (default {lim.min_signal:g})")
    diag.add_argument("--max-signal", type=float, default=lim.max_signal,
                      help=f"largest healthy output/input RMS ratio (default {lim.max_signal:g})")
    diag.set_defaults(func=_diagnose_command)

    init = sub.add_parser(
        "init",
        help="initialize a saved model with a learned or layer-wise method",
        description="Load MODEL.keras, run meta_initialize, print the report, save OUT.keras.",
    )
    init.add_argument("model", metavar="MODEL.keras")
    init.add_argument("--method", required=True, choices=methods_lib.available(),
                      help="a registered method (its options keep their defaults)")
    init.add_argument("--data", choices=("bundled", "random"), default="bundled",
                      help="bundled Fashion-MNIST training images or random Gaussian data "
                      "(default bundled)")
    init.add_argument("--steps", type=_positive_int, default=None,
                      help="steps of a learned method (default: the method's)")
    init.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    init.add_argument("-o", "--output", required=True, metavar="OUT.keras")
    init.set_defaults(func=_init_command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``keras-metainit`` console script.

    Args:
        argv: the arguments, without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 when no command was given or ``diagnose
        --fail-if-unhealthy`` found a problem.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 1
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
