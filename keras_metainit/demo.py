"""The demo (``keras-metainit demo``): a badly initialized deep MLP, repaired by each method.

A deep plain ReLU MLP (no weight norm) is started from a bad initialization (every kernel
0.1 × He-normal) and fixed by each learned and layer-wise method; every contender is then trained
with the same short budget, and a table of init time, gradient quotient before → after and test
accuracy is printed (:func:`run_demo`). ``DemoConfig(wn=True)`` adds the weight-normalized MLP
rows (``WNInit`` and ``glorot_uniform``).

The pieces, in the order a run uses them: :class:`DemoConfig` (the settings), :func:`load_demo_data`,
the contenders (:data:`CONTENDERS`, each a :class:`Contender` whose ``build`` returns an
:class:`Initialized`), :func:`run_contender` (build, train, evaluate), :func:`format_table` and
:func:`write_plots`.

TensorFlow and Keras are imported inside the functions that need them.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = [
    "DemoConfig", "QUICK", "DemoData", "load_demo_data", "Initialized", "Contender", "CONTENDERS",
    "WN_CONTENDERS", "ANYINIT", "BAD_START", "anyinit_available", "run_contender",
    "train_and_evaluate", "format_table", "write_plots", "run_demo",
]


# --------------------------------------------------------------------------------------------
# configuration and data
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
# contenders. One function per contender; a row of the table per entry of CONTENDERS. A
# contender returns the *initialized*, uncompiled model in an ``Initialized``; the time it takes
# is the "init s" column, so a learned initialization (model.meta_initialize(...)) fits here too.
# --------------------------------------------------------------------------------------------


@dataclass
class Initialized:
    """What a contender's ``build`` returns.

    Attributes:
        model: the initialized model, not yet compiled.
        report: the ``InitReport`` of ``meta_initialize``, for a contender that runs it.
        gq_before: the gradient quotient on a fixed training batch before ``meta_initialize``.
        gq_after: the same after it.
        probe_s: seconds spent measuring those two (taken out of the "init s" column).
    """

    model: Any
    report: Any = None
    gq_before: Optional[float] = None
    gq_after: Optional[float] = None
    probe_s: float = 0.0


@dataclass(frozen=True)
class Contender:
    """One row of the demo's table.

    Attributes:
        name: the row's label.
        build: ``build(cfg, data) -> Initialized``, the initialized model, not yet compiled.
        fixes_bad_start: whether ``build`` repairs the bad start with ``meta_initialize`` (then
            the table shows the gradient quotient before and after the repair).
    """

    name: str
    build: Callable[["DemoConfig", "DemoData"], Initialized]
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


def he_mlp(cfg: DemoConfig):
    """The demo's network with He-normal kernels (``he_normal``)."""
    import keras

    return plain_mlp(cfg, lambda i: keras.initializers.HeNormal(seed=_layer_seed(cfg, i)))


def bad_start_mlp(cfg: DemoConfig):
    """He-normal kernels, every one multiplied by ``cfg.bad_scale``: the signal dies with depth."""
    model = he_mlp(cfg)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(layer.kernel * cfg.bad_scale)
    return model


def build_keras_default(cfg: DemoConfig, data: DemoData) -> Initialized:
    """Keras's default kernel initializer, ``glorot_uniform``, no bad start."""
    import keras

    return Initialized(plain_mlp(
        cfg, lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i))))


def build_he(cfg: DemoConfig, data: DemoData) -> Initialized:
    """He-normal kernels (``he_normal``), no bad start."""
    return Initialized(he_mlp(cfg))


def build_bad_start(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start, not fixed."""
    return Initialized(bad_start_mlp(cfg))


def _probe_gq(model, data: DemoData) -> float:
    """GQ on the first 128 training examples (the same batch for every contender)."""
    from keras_metainit import gradient_quotient

    return gradient_quotient(model, (data.x_train[:128], data.y_train[:128]))


def _fixed(cfg: DemoConfig, data: DemoData, method: str, with_data: bool = True,
           **options) -> Initialized:
    model = bad_start_mlp(cfg)
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
    return Initialized(model, report, gq_before, gq_after, probe_s)


def build_metainit(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start fixed by MetaInit on random data (its reference setting)."""
    return _fixed(cfg, data, "metainit", with_data=False, steps=cfg.metainit_steps)


def build_gradinit(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start fixed by GradInit on the training data (lr 0.1)."""
    return _fixed(cfg, data, "gradinit", steps=cfg.gradinit_steps, lr=0.1)


def build_gradcosine(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start fixed by GradCosine (NIO) on the training data (lr 0.1)."""
    return _fixed(cfg, data, "gradcosine", steps=cfg.gradcosine_steps, lr=0.1)


def build_lsuv(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start fixed by LSUV on the training data."""
    return _fixed(cfg, data, "lsuv")


def build_sylvester(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start fixed by the Sylvester init (orthogonal latent code) on the training data."""
    return _fixed(cfg, data, "sylvester", latent="orthogonal")


def build_anyinit(cfg: DemoConfig, data: DemoData) -> Initialized:
    """A peer: AnyInit (PyPI ``anyinit``, the ``anyinit`` extra) in its empirical mode on 1,024
    training images, applied to the bad start (it redraws every kernel)."""
    import anyinit

    model = bad_start_mlp(cfg)
    anyinit.initialize(model, "empirical", data.x_train[:1024], seed=cfg.seed)
    return Initialized(model)


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


def build_wninit(cfg: DemoConfig, data: DemoData) -> Initialized:
    """Arpit et al.'s weight-norm init: gamma=2 for the ReLU layers, gamma=1 for the classifier."""
    from keras_metainit.initializers import WNInit

    return Initialized(wn_mlp(
        cfg,
        hidden_init=lambda i: WNInit(gamma=2.0, seed=_layer_seed(cfg, i)),
        output_init=WNInit(gamma=1.0, seed=_layer_seed(cfg, cfg.depth)),
    ))


def build_glorot(cfg: DemoConfig, data: DemoData) -> Initialized:
    """Keras's default kernel initializer (``glorot_uniform``) in the weight-normalized net."""
    import keras

    return Initialized(wn_mlp(
        cfg,
        hidden_init=lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i)),
        output_init=keras.initializers.GlorotUniform(seed=_layer_seed(cfg, cfg.depth)),
    ))


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
# the shared training loop, the table and the plots
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
    built = contender.build(cfg, data)
    init_s = time.perf_counter() - start - built.probe_s  # the probes are not part of init
    report = built.report
    row: Dict[str, Any] = {"init": contender.name, "init_s": init_s,
                           "gq_before": built.gq_before, "gq_after": built.gq_after,
                           "report": report and report.to_dict()}
    row.update(train_and_evaluate(built.model, cfg, data))
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

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        losses = r["loss_per_epoch"]
        ax.plot(range(1, len(losses) + 1), losses, marker="o", label=r["init"])
    ax.set_xticks(range(1, max([len(r["loss_per_epoch"]) for r in rows] + [1]) + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("training loss per epoch")
    ax.legend(fontsize=7)
    save(fig, "training_curves.png")
    for r in rows:
        gq = ((r.get("report") or {}).get("history") or {}).get("gq")
        if r["init"] == "+ MetaInit" and gq:
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(range(1, len(gq) + 1), gq)
            ax.set_yscale("log" if min(gq) > 0 else "linear")
            ax.set_xlabel("MetaInit step")
            ax.set_ylabel("gradient quotient")
            ax.set_title("MetaInit: gradient quotient per step (bad start)")
            save(fig, "metainit_gq.png")
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
