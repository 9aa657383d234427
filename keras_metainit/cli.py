"""The ``keras-metainit`` command line.

Subcommands:

- ``keras-metainit demo``: the main job. A deep plain ReLU MLP (no weight norm) is started from a
  bad initialization (every kernel 0.1 × He-normal) and fixed by each learned and layer-wise
  method; every contender is then trained with the same short budget, and a table of init time,
  gradient quotient before → after and test accuracy is printed. ``--wn`` adds the
  weight-normalized MLP rows (``WNInit`` and ``glorot_uniform``).
- ``keras-metainit diagnose MODEL.keras``: gradient quotient, GradCosine and per-layer signal of a
  saved model on one batch; ``--fail-if-unhealthy`` turns them into an exit status.
- ``keras-metainit init MODEL.keras --method ... -o OUT.keras``: initialize a saved model with
  ``meta_initialize`` and save the result.

TensorFlow and Keras are imported inside the subcommands, not at module level, so that argument
parsing (``keras-metainit --help``) does not pay for them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from keras_metainit import __version__

__all__ = [
    "main", "DemoConfig", "Contender", "CONTENDERS", "WN_CONTENDERS", "ANYINIT", "run_demo",
    "format_table",
    "diagnose", "HealthLimits",
]


# --------------------------------------------------------------------------------------------
# demo: configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    """Settings of one ``demo`` run. Every contender gets exactly these.

    The training budget (SGD with momentum 0.9, rate 0.01, batch 128, 2 epochs) is the one of the
    learned methods' evidence in ``docs/benchmarks.md``.
    """

    depth: int = 20  # hidden Dense layers
    width: int = 128  # units per hidden layer
    epochs: int = 2
    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 0.01  # SGD
    momentum: float = 0.9
    bad_scale: float = 0.1  # the bad start: every kernel times this, of He-normal
    metainit_steps: int = 200
    gradinit_steps: int = 100
    gradcosine_steps: int = 50
    wn: bool = False  # also run the weight-normalized MLP rows
    train_size: Optional[int] = None  # None: all 6,000 bundled training images
    test_size: Optional[int] = None  # None: all 2,000 bundled test images
    out: str = "out"


#: What ``--quick`` changes: a tiny run for tests and smoke checks (seconds, not minutes).
QUICK = {
    "depth": 4, "width": 32, "epochs": 2, "train_size": 1024, "test_size": 512,
    "metainit_steps": 20, "gradinit_steps": 10, "gradcosine_steps": 5,
}


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
# column, so a learned initialization (model.meta_initialize(...)) fits here too. A contender
# that runs meta_initialize leaves its report, the GQ on a fixed training batch before and after
# it and the time of those two probes (not counted in "init s") on the model (``_demo_*``).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One row of the demo's table.

    Attributes:
        name: the row's label.
        build: ``build(cfg, data) -> keras.Model``, the initialized model, not yet compiled.
        fixes_bad_start: whether ``build`` repairs the bad start with ``meta_initialize`` (then
            the table shows the gradient quotient before and after the repair).
    """

    name: str
    build: Callable[[DemoConfig, DemoData], Any]
    fixes_bad_start: bool = False


def _layer_seed(cfg: DemoConfig, i: int) -> int:
    return cfg.seed * 10_000 + i


def plain_mlp(cfg: DemoConfig, kernel_init: Callable[[int], Any]):
    """The demo's network: ``cfg.depth`` ReLU ``keras.layers.Dense`` of ``cfg.width``, 10 logits.

    Args:
        cfg: the run's settings.
        kernel_init: ``kernel_init(i)`` is the kernel initializer of layer ``i`` (the classifier
            is layer ``cfg.depth``); one fresh, seeded instance per layer.
    """
    import keras

    inputs = keras.Input((784,))
    h = inputs
    for i in range(cfg.depth):
        h = keras.layers.Dense(cfg.width, activation="relu", kernel_initializer=kernel_init(i))(h)
    logits = keras.layers.Dense(10, kernel_initializer=kernel_init(cfg.depth))(h)
    return keras.Model(inputs, logits, name=f"mlp_{cfg.depth}x{cfg.width}")


def build_keras_default(cfg: DemoConfig, data: DemoData):
    """Keras's default kernel initializer, ``glorot_uniform``, no bad start."""
    import keras

    return plain_mlp(cfg, lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i)))


def build_he(cfg: DemoConfig, data: DemoData):
    """He-normal kernels (``he_normal``), no bad start."""
    import keras

    return plain_mlp(cfg, lambda i: keras.initializers.HeNormal(seed=_layer_seed(cfg, i)))


def build_bad_start(cfg: DemoConfig, data: DemoData):
    """He-normal kernels, every one multiplied by ``cfg.bad_scale``: the signal dies with depth."""
    model = build_he(cfg, data)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(layer.kernel * cfg.bad_scale)
    return model


def _probe_gq(model, data: DemoData) -> float:
    """GQ on the first 128 training examples (the same batch for every contender)."""
    from keras_metainit import gradient_quotient

    return gradient_quotient(model, (data.x_train[:128], data.y_train[:128]))


def _fixed(cfg: DemoConfig, data: DemoData, method: str, with_data: bool = True, **options):
    model = build_bad_start(cfg, data)
    t0 = time.perf_counter()
    gq_before = _probe_gq(model, data)
    probe_s = time.perf_counter() - t0
    report = model.meta_initialize(
        (data.x_train, data.y_train) if with_data else None,
        method=method, verbose=0, seed=cfg.seed, **options,
    )
    t0 = time.perf_counter()
    gq_after = _probe_gq(model, data)
    probe_s += time.perf_counter() - t0
    # read by run_contender; the probes' time is not part of "init s"
    model._demo_report, model._demo_gq, model._demo_probe_s = report, (gq_before, gq_after), probe_s
    return model


def build_metainit(cfg: DemoConfig, data: DemoData):
    """The bad start fixed by MetaInit on random data (its reference setting)."""
    return _fixed(cfg, data, "metainit", with_data=False, steps=cfg.metainit_steps)


def build_gradinit(cfg: DemoConfig, data: DemoData):
    """The bad start fixed by GradInit on the training data (lr 0.1)."""
    return _fixed(cfg, data, "gradinit", steps=cfg.gradinit_steps, lr=0.1)


def build_gradcosine(cfg: DemoConfig, data: DemoData):
    """The bad start fixed by GradCosine (NIO) on the training data (lr 0.1)."""
    return _fixed(cfg, data, "gradcosine", steps=cfg.gradcosine_steps, lr=0.1)


def build_lsuv(cfg: DemoConfig, data: DemoData):
    """The bad start fixed by LSUV on the training data."""
    return _fixed(cfg, data, "lsuv")


def build_sylvester(cfg: DemoConfig, data: DemoData):
    """The bad start fixed by the Sylvester init (orthogonal latent code) on the training data."""
    return _fixed(cfg, data, "sylvester", latent="orthogonal")


def build_anyinit(cfg: DemoConfig, data: DemoData):
    """A peer: AnyInit (PyPI ``anyinit``, the ``anyinit`` extra) in its empirical mode on 1,024
    training images, applied to the bad start (it redraws every kernel)."""
    import anyinit

    model = build_bad_start(cfg, data)
    anyinit.initialize(model, "empirical", data.x_train[:1024], seed=cfg.seed)
    return model


def anyinit_available() -> bool:
    """Whether the optional peer ``anyinit`` can be imported."""
    try:
        import anyinit  # noqa: F401
    except ImportError:
        return False
    return True


def wn_mlp(cfg: DemoConfig, hidden_init: Callable[[int], Any], output_init: Any):
    """``cfg.depth`` ReLU ``WNDense`` layers of ``cfg.width``, then 10 logits (``--wn`` rows).

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


def build_wninit(cfg: DemoConfig, data: DemoData):
    """Arpit et al.'s weight-norm init: gamma=2 for the ReLU layers, gamma=1 for the classifier."""
    from keras_metainit.initializers import WNInit

    return wn_mlp(
        cfg,
        hidden_init=lambda i: WNInit(gamma=2.0, seed=_layer_seed(cfg, i)),
        output_init=WNInit(gamma=1.0, seed=_layer_seed(cfg, cfg.depth)),
    )


def build_glorot(cfg: DemoConfig, data: DemoData):
    """Keras's default kernel initializer (``glorot_uniform``) in the weight-normalized net."""
    import keras

    return wn_mlp(
        cfg,
        hidden_init=lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i)),
        output_init=keras.initializers.GlorotUniform(seed=_layer_seed(cfg, cfg.depth)),
    )


BAD_START = "bad start, no fix"

CONTENDERS: List[Contender] = [
    Contender("Keras default", build_keras_default),
    Contender("He", build_he),
    Contender(BAD_START, build_bad_start),
    Contender("+ MetaInit", build_metainit, True),
    Contender("+ GradInit", build_gradinit, True),
    Contender("+ GradCosine", build_gradcosine, True),
    Contender("+ LSUV", build_lsuv, True),
    Contender("+ Sylvester", build_sylvester, True),
]

#: The peer's row, added when ``anyinit`` is installed.
ANYINIT = Contender("AnyInit (peer)", build_anyinit)

#: The weight-normalized MLP rows, added by ``--wn``.
WN_CONTENDERS: List[Contender] = [
    Contender("WN: WNInit", build_wninit),
    Contender("WN: glorot_uniform", build_glorot),
]


# --------------------------------------------------------------------------------------------
# demo: the shared training loop, the table and the plots
# --------------------------------------------------------------------------------------------


def train_and_evaluate(model, cfg: DemoConfig, data: DemoData) -> Dict[str, Any]:
    """Train ``model`` with the run's budget and optimizer; return losses and test accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum),
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
        "loss_per_epoch": [float(v) for v in history.history["loss"]],
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
    init_s = time.perf_counter() - start - getattr(model, "_demo_probe_s", 0.0)
    report = getattr(model, "_demo_report", None)
    gq_before, gq_after = getattr(model, "_demo_gq", (None, None))
    row: Dict[str, Any] = {"init": contender.name, "init_s": init_s, "gq_before": gq_before,
                           "gq_after": gq_after, "report": report and report.to_dict()}
    row.update(train_and_evaluate(model, cfg, data))
    return row


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


def write_plots(rows: Sequence[Dict[str, Any]], out: str) -> List[str]:
    """Write ``training_curves.png`` and ``metainit_gq.png`` to ``out``; return their paths.

    Needs matplotlib (the ``plot`` extra); without it nothing is written and ``[]`` returned.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install keras-metainit[plot])")
        return []
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        losses = r["loss_per_epoch"]
        ax.plot(range(1, len(losses) + 1), losses, marker="o", label=r["init"])
    ax.set_xticks(range(1, max([len(r["loss_per_epoch"]) for r in rows] + [1]) + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("training loss per epoch")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, "training_curves.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    for r in rows:
        gq = ((r.get("report") or {}).get("history") or {}).get("gq")
        if r["init"] == "+ MetaInit" and gq:
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(range(1, len(gq) + 1), gq)
            ax.set_yscale("log" if min(gq) > 0 else "linear")
            ax.set_xlabel("MetaInit step")
            ax.set_ylabel("gradient quotient")
            ax.set_title("MetaInit: gradient quotient per step (bad start)")
            fig.tight_layout()
            path = os.path.join(out, "metainit_gq.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
    return paths


def run_demo(cfg: DemoConfig, contenders: Optional[Sequence[Contender]] = None) -> List[Dict]:
    """Run every contender with ``cfg``, print the table, write ``<out>/demo.json`` and plots."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
    import keras

    import keras_metainit  # noqa: F401  (adds model.meta_initialize)

    if contenders is None:
        contenders = list(CONTENDERS) + (list(WN_CONTENDERS) if cfg.wn else [])
        if anyinit_available():
            contenders.append(ANYINIT)
        else:
            print("AnyInit (a peer) is not installed: no row for it "
                  "(pip install keras-metainit[anyinit])", flush=True)
    total_start = time.perf_counter()
    os.makedirs(cfg.out, exist_ok=True)
    data = load_demo_data(cfg)
    title = (
        f"keras-metainit demo: {cfg.depth}-layer plain ReLU MLP (width {cfg.width}, keras Dense, "
        f"no weight norm); bad start = every kernel x{cfg.bad_scale:g} of He-normal, "
        f"'+ X' = the bad start fixed by X"
    )
    print(title, flush=True)
    print(
        f"Fashion-MNIST bundled subset ({len(data.x_train)} train / {len(data.x_test)} test), "
        f"{cfg.epochs} epoch(s), SGD {cfg.learning_rate:g} momentum {cfg.momentum:g}, "
        f"batch {cfg.batch_size}, seed {cfg.seed}, Keras {keras.__version__} "
        f"({keras.backend.backend()})",
        flush=True,
    )
    rows = []
    for contender in contenders:
        print(f"  {contender.name} ...", flush=True)
        rows.append(run_contender(contender, cfg, data))
    print()
    print(title)
    print(format_table(rows), flush=True)
    plots = write_plots(rows, cfg.out)
    total_s = time.perf_counter() - total_start
    path = os.path.join(cfg.out, "demo.json")
    with open(path, "w") as fh:
        json.dump({"config": asdict(cfg), "title": title, "total_s": total_s,
                   "plots": plots, "results": rows}, fh, indent=2, default=_json_default)
    print(f"\nresults written to {path}" + (f"; plots: {', '.join(plots)}" if plots else ""))
    print(f"total time {total_s:.1f} s")
    return rows


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _demo_command(args: argparse.Namespace) -> int:
    defaults = asdict(DemoConfig())
    if args.quick:
        defaults.update(QUICK)
    given = {
        key: getattr(args, key)
        for key in ("depth", "width", "epochs", "seed", "out")
        if getattr(args, key) is not None
    }
    if args.wn:
        given["wn"] = True
    run_demo(DemoConfig(**{**defaults, **given}))
    return 0


# --------------------------------------------------------------------------------------------
# diagnose and init: a saved model and one batch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthLimits:
    """What ``diagnose --fail-if-unhealthy`` accepts.

    Attributes:
        max_gq: largest gradient quotient (MetaInit's objective). He-normal ReLU MLPs measure
            about 1e2 to 4e2 (6 to 20 layers), kernels 1.5 x He about 2e3 (6 layers) and far
            more when deeper. A network whose signal vanishes also has GQ near 1 (its gradients
            are all near 0), so a low GQ alone is not health: the signal ratio catches that.
        min_signal: smallest ratio of the last layer's output RMS to the input RMS.
        max_signal: largest such ratio.
    """

    max_gq: float = 1e3
    min_signal: float = 1e-3
    max_signal: float = 1e3


def _load_model(path: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import keras_metainit  # noqa: F401  (registers the custom objects)

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


def layer_signal(model, x) -> List[Dict[str, Any]]:
    """RMS of every layer's output on ``x``: ``[{"name", "rms"}, ...]``, in layer order."""
    import keras
    import numpy as np

    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs, [l.output for l in layers])
    outputs = probe(x, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    rows = []
    for layer, out in zip(layers, outputs):
        out = keras.ops.convert_to_numpy(out).astype("float64")
        rows.append({"name": layer.name, "rms": float(np.sqrt(np.mean(out ** 2)))})
    return rows


def diagnose(model, batch, limits: HealthLimits = HealthLimits()) -> Dict[str, Any]:
    """Gradient quotient, GradCosine and per-layer signal of ``model`` on ``batch``.

    Args:
        model: a Keras model with one input (Sequential or Functional).
        batch: ``(x, y)``.
        limits: the health thresholds.

    Returns:
        ``{"gq", "gc", "gn", "input_rms", "layers", "signal_ratio", "problems", "healthy"}``;
        ``problems`` lists what is outside ``limits`` or not finite.
    """
    import numpy as np

    import keras_metainit

    x, y = batch
    gq = keras_metainit.gradient_quotient(model, (x, y))
    gc = keras_metainit.grad_cosine(model, (x, y))
    layers = layer_signal(model, x)
    input_rms = float(np.sqrt(np.mean(np.asarray(x, "float64") ** 2)))
    ratio = layers[-1]["rms"] / input_rms if layers and input_rms > 0 else float("nan")
    problems = []
    values = {"gq": gq, "gc": gc["gc"], "gn": gc["gn"], "signal ratio": ratio,
              **{f"rms {r['name']}": r["rms"] for r in layers}}
    problems += [f"{k} is not finite ({v})" for k, v in values.items() if not math.isfinite(v)]
    if math.isfinite(gq) and gq > limits.max_gq:
        problems.append(f"GQ {gq:.4g} > max {limits.max_gq:g}")
    if math.isfinite(ratio) and not limits.min_signal <= ratio <= limits.max_signal:
        problems.append(f"output/input RMS ratio {ratio:.4g} outside "
                        f"[{limits.min_signal:g}, {limits.max_signal:g}]")
    return {"gq": gq, "gc": gc["gc"], "gn": gc["gn"], "input_rms": input_rms, "layers": layers,
            "signal_ratio": ratio, "problems": problems, "healthy": not problems}


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

    demo = sub.add_parser(
        "demo",
        help="fix a badly initialized deep MLP with each method and train every contender",
        description=(
            "Start a deep plain ReLU MLP from a bad init (every kernel 0.1 x He-normal), fix it "
            "with each learned and layer-wise method, train every contender on the bundled "
            "Fashion-MNIST subset with the same budget, and print init time, gradient quotient "
            "before -> after and test accuracy; write DIR/demo.json and PNG plots."
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
        help="tiny settings for tests: depth 4, width 32, 2 epochs, 1024 training images, "
        "few init steps (explicit options still apply)",
    )
    demo.add_argument("--wn", action="store_true",
                      help="also train the weight-normalized MLP with WNInit and glorot_uniform")
    demo.add_argument(
        "--out", metavar="DIR", help=f"output folder, created if needed (default {d.out!r})"
    )
    demo.set_defaults(func=_demo_command)

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
    init.add_argument("--method", required=True,
                      choices=("metainit", "gradinit", "gradcosine", "lsuv", "sylvester"))
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
