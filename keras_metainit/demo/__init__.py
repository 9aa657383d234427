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

The pieces, in the order a run uses them: :class:`DemoConfig` (the settings), :func:`load_demo_data`,
the contenders (:data:`CONTENDERS`, each a :class:`Contender` of a scene whose ``build`` returns an
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
    "WN_CONTENDERS", "ANYINIT", "BAD_START", "SCENES", "anyinit_available", "run_contender",
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
    out: str = "keras-metainit-demo"
    plots: bool = True  # write the figures (needs matplotlib, installed with the package)


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
# contenders. One function per contender; a row of its scene's table per entry of CONTENDERS. A
# contender returns the *initialized*, uncompiled model in an ``Initialized``; the time it takes
# is the "init s" column, so a learned initialization (model.meta_initialize(...)) fits here too.
# --------------------------------------------------------------------------------------------

#: The two scenes: key -> title.
SCENES = {
    "default": "from Keras's default init (glorot_uniform), the start a user has",
    "bad": "from a bad start (every kernel x{bad_scale:g} of He-normal: gradients vanish)",
}


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
    """One row of the demo's tables.

    Attributes:
        name: the row's label (unique over both scenes).
        build: ``build(cfg, data) -> Initialized``, the initialized model, not yet compiled.
        fixes: whether ``build`` runs ``meta_initialize`` on its scene's start (then the table
            shows the gradient quotient before and after it).
        scene: ``"default"`` or ``"bad"`` (:data:`SCENES`), the table the row belongs to.
    """

    name: str
    build: Callable[["DemoConfig", "DemoData"], Initialized]
    fixes: bool = False
    scene: str = "default"


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


def default_mlp(cfg: DemoConfig):
    """The demo's network with Keras's default kernels (``glorot_uniform``)."""
    import keras

    return plain_mlp(cfg, lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i)))


def bad_start_mlp(cfg: DemoConfig):
    """He-normal kernels, every one multiplied by ``cfg.bad_scale``: the signal dies with depth."""
    model = he_mlp(cfg)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(layer.kernel * cfg.bad_scale)
    return model


_STARTS = {"default": default_mlp, "bad": bad_start_mlp}


def build_keras_default(cfg: DemoConfig, data: DemoData) -> Initialized:
    """Keras's default kernel initializer, ``glorot_uniform``."""
    return Initialized(default_mlp(cfg))


def build_he(cfg: DemoConfig, data: DemoData) -> Initialized:
    """He-normal kernels (``he_normal``): the one-line fix."""
    return Initialized(he_mlp(cfg))


def build_bad_start(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start, not fixed."""
    return Initialized(bad_start_mlp(cfg))


def _probe_gq(model, data: DemoData) -> float:
    """GQ on the first 128 training examples (the same batch for every contender)."""
    from keras_metainit import gradient_quotient

    return gradient_quotient(model, (data.x_train[:128], data.y_train[:128]))


def _fixed(start: str, method: str, with_data: bool = True, **fixed_options):
    """A contender's ``build``: the scene's start, then ``meta_initialize(method)``."""

    def build(cfg: DemoConfig, data: DemoData) -> Initialized:
        options = {k: (getattr(cfg, v) if isinstance(v, str) and hasattr(cfg, v) else v)
                   for k, v in fixed_options.items()}
        model = _STARTS[start](cfg)
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

    build.__doc__ = (f"The {start!r} start fixed by {method} "
                     f"({'training data' if with_data else 'random data'}).")
    return build


#: MetaInit on random data (its reference setting), GradInit and GradCosine at lr 0.1 on the
#: training data, LSUV and Sylvester (orthogonal latent code) on the training data.
build_metainit = _fixed("default", "metainit", with_data=False, steps="metainit_steps")
build_gradinit = _fixed("default", "gradinit", steps="gradinit_steps", lr=0.1)
build_gradcosine = _fixed("default", "gradcosine", steps="gradcosine_steps", lr=0.1)
build_lsuv = _fixed("default", "lsuv")
build_sylvester = _fixed("default", "sylvester", latent="orthogonal")
build_bad_metainit = _fixed("bad", "metainit", with_data=False, steps="metainit_steps")
build_bad_gradinit = _fixed("bad", "gradinit", steps="gradinit_steps", lr=0.1)
build_bad_lsuv = _fixed("bad", "lsuv")


def build_anyinit(cfg: DemoConfig, data: DemoData) -> Initialized:
    """A peer: AnyInit (PyPI ``anyinit``) in its empirical mode on 1,024 training images, applied
    to Keras's default start (it redraws every kernel)."""
    import anyinit

    model = default_mlp(cfg)
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


BAD_START = "x0.1 He, no fix"

CONTENDERS: List[Contender] = [
    Contender("Keras default", build_keras_default),
    Contender("He", build_he),
    Contender("default + MetaInit", build_metainit, True),
    Contender("default + GradInit", build_gradinit, True),
    Contender("default + GradCosine", build_gradcosine, True),
    Contender("default + LSUV", build_lsuv, True),
    Contender("default + Sylvester", build_sylvester, True),
    Contender(BAD_START, build_bad_start, scene="bad"),
    Contender("x0.1 + MetaInit", build_bad_metainit, True, "bad"),
    Contender("x0.1 + GradInit", build_bad_gradinit, True, "bad"),
    Contender("x0.1 + LSUV", build_bad_lsuv, True, "bad"),
]

#: The peer's row (first scene), added when ``anyinit`` is installed.
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


def run_demo(cfg: DemoConfig, contenders: Optional[Sequence[Contender]] = None) -> List[Dict]:
    """Run every contender with ``cfg``, print a table per scene, write ``<out>/demo.json`` and
    the figures (unless ``cfg.plots`` is False)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    import keras

    import keras_metainit  # noqa: F401  (adds model.meta_initialize)

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
