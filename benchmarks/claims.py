"""Each paper's claim in miniature, on Fashion-MNIST, with its peers side by side in one run.

Sections (``--sections``, all by default), each a small version of what a paper claims, printed
as a table of test accuracy (mean ± std over ``--seeds`` seeds) and a verdict line computed from
the numbers:

- ``gradinit``: GradInit (Zhu et al. 2021) claims stable training of plain nets without
  normalization at large learning rates (VGG-19 without BN at lr 0.1). A VGG-like CNN with 8
  convolutions (widths 8-8-16-16-32-32-32-32, max pooling, no BN) is first swept over SGD
  learning rates (0.01, 0.03, 0.1) from He-normal and from Keras's default
  (``glorot_uniform``) on seed 0; the sweep is printed and the smallest rate at which He's
  accuracy falls below max(0.2, half its best) is kept. At that rate: Keras default, He, LSUV,
  AnyInit, Keras default + GradInit, He + GradInit (the paper's update, and
  ``scale_invariant=True``), LSUV then GradInit (one ``method=[...]`` call), and the same CNN
  with BatchNorm. GradInit: 50 steps (about one epoch of the 6k subset, the paper's budget), its
  look-ahead step η set to the training rate, the other options at their defaults.
- ``nio``: NIO / GradCosine (Yang et al. 2022) claims accuracy gains from a standard init and a
  ViT that trains without warmup. A small ViT (7x7 patches, dim 32, 4 pre-LN blocks, Adam, one
  epoch) at the swept rate (3e-3, 1e-2) where warmup helps Keras's default most: default
  without warmup, + GradCosine (50 steps), He, LSUV, AnyInit, and default *with* a 15-step linear
  warmup (what NIO claims to make unnecessary).
- ``metainit``: MetaInit (Dauphin & Schoenholz 2019) claims that plain deep nets without
  normalization train competitively with BatchNorm after it, and recovery from bad scales. A
  20x128 plain ReLU MLP (SGD 0.01 m0.9, 2 epochs) from Keras's default, from x0.1 and x3
  He-normal, each + MetaInit (200 steps on random data, its reference setting), against He,
  LSUV, LSUV then MetaInit (on the training data), AnyInit and the same MLP with BatchNorm.
- ``wn``: weight-norm init (Arpit et al. 2019) claims WN nets train at depths where other inits
  fail, with warmup. A 100-layer ``WNDense`` MLP (width 64), Adam 1e-3 with a 15-step
  ``QuadraticWarmup``, one epoch: ``WNInit`` against He-normal kernels in the same WN layers,
  Salimans & Kingma's data-dependent WN init, and a plain (non-WN) He MLP of the same depth with
  the same warmup.
- ``noharm``: from a He-normal start, every method with its default settings (metainit,
  gradinit, gradcosine, lsuv, sylvester) on the 20x128 MLP (SGD 0.01) and the VGG-like CNN
  (SGD 0.01), 2 epochs, against He.

Verdicts: a difference counts when |mean_a - mean_b| > 2 * sqrt(s_a^2/n + s_b^2/n) (sample
standard deviations, n seeds; at least 0.01): twice the standard error of the difference.
Otherwise the two are "within the seed spread". A diverged run (NaN logits) scores 0.

Usage: python benchmarks/claims.py [--sections gradinit nio metainit wn noharm] [--seeds 3]
       [--subset small|full] [--quick] [--json PATH]
``--subset full`` reads Debian's full Fashion-MNIST when it is installed (else says so and uses
the bundled 6k subset); the sizes above are chosen for the subset on 2 CPU cores.
``--quick``: one seed, 512 training / 256 test images, tiny nets and step counts, a smoke run of
every code path (a few minutes on a shared 2-core VM; its verdicts mean nothing).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL before TensorFlow is imported)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_metainit  # noqa: E402,F401  (adds keras.Model.meta_initialize)
from keras_metainit.layers import WNDense  # noqa: E402

SECTIONS = ("gradinit", "nio", "metainit", "wn", "noharm")

# --------------------------------------------------------------------------------------------
# settings: the full run and what --quick changes
# --------------------------------------------------------------------------------------------

FULL = dict(
    train_size=None, test_size=None, epochs=2, batch=128,
    cnn_widths=(8, 8, 16, 16, 32, 32, 32, 32), cnn_lrs=(0.01, 0.03, 0.1),
    vit_blocks=4, vit_dim=32, vit_lrs=(3e-3, 1e-2), vit_warmup=15, vit_epochs=1,
    mlp_depth=20, mlp_width=128, mlp_lr=0.01,
    wn_depth=100, wn_width=64, wn_lr=1e-3, wn_warmup=15, wn_batch=128, wn_epochs=1,
    metainit_steps=200, gradinit_steps=50, gradcosine_steps=50,
    default_steps={},  # the methods' own defaults in "noharm"
)
QUICK = dict(
    FULL, train_size=512, test_size=256, epochs=1, cnn_widths=(4,) * 8, cnn_lrs=(0.01, 0.3),
    vit_blocks=1, vit_dim=16, vit_lrs=(1e-3, 1e-2), vit_warmup=2, mlp_depth=4, mlp_width=32,
    wn_depth=6, wn_width=16, wn_warmup=2, metainit_steps=3, gradinit_steps=3,
    gradcosine_steps=3, default_steps={"metainit": 3, "gradinit": 3, "gradcosine": 3},
)

CE = common.CE

#: BatchNorm's moving-statistics momentum. Keras's default 0.99 averages over ~100 steps, longer
#: than most of these runs (94 steps): evaluated with statistics that have not converged, a BN net
#: with the lowest training loss scored near chance in the first full run. 0.9 settles in ~10.
BN_MOMENTUM = 0.9


# --------------------------------------------------------------------------------------------
# statistics and verdicts
# --------------------------------------------------------------------------------------------


def stats(values):
    a = np.asarray(values, float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def compare(a, b):
    """``(difference of means, margin)``: margin = 2 standard errors of the difference (>= 0.01)."""
    (ma, sa), (mb, sb) = stats(a), stats(b)
    n = min(len(a), len(b))
    margin = max(0.01, 2 * math.sqrt((sa ** 2 + sb ** 2) / max(n, 1)))
    return ma - mb, margin


def relation(a, b) -> str:
    d, m = compare(a, b)
    word = "above" if d > m else "below" if d < -m else "within the seed spread of"
    return f"{word} ({d:+.3f}, margin {m:.3f})"


def better(a, b):
    d, m = compare(a, b)
    return d > m


def not_worse(a, b):
    d, m = compare(a, b)
    return d >= -m


def fmt(values):
    m, s = stats(values)
    return f"{m:.3f} ± {s:.3f}"


def print_table(title, rows, extra_cols=()):
    """rows: {label: {"acc": [...], "init_s": [...], "loss": [...], ...}}; a markdown table."""
    print(f"\n### {title}\n", flush=True)
    head = ["contender", "test acc (mean ± std)", "final train loss", "init s"] + [
        c for c, _ in extra_cols]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, r in rows.items():
        loss = np.asarray(r["loss"], float)
        loss_cell = ("nan" if not np.isfinite(loss).any() else
                     f"{np.nanmean(np.where(np.isfinite(loss), loss, np.nan)):.3f}"
                     + (f" ({int((~np.isfinite(loss)).sum())} nan)" if not np.isfinite(loss).all()
                        else ""))
        init = np.mean(r["init_s"]) if r["init_s"] else 0.0
        cells = [label, fmt(r["acc"]), loss_cell, f"{init:.1f}" if init else "-"]
        cells += [fn(r) for _, fn in extra_cols]
        print("| " + " | ".join(cells) + " |")
    print(flush=True)


def verdict(section, word, text):
    line = f"VERDICT [{section}]: {word} — {text}"
    print(line, flush=True)
    return {"section": section, "verdict": word, "text": text}


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def mlp(seed, depth, width, init="he_normal", bn=False):
    """A plain ReLU MLP (zero biases); ``bn``: BatchNorm before every ReLU."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten()]
    for _ in range(depth):
        if bn:
            layers += [keras.layers.Dense(width, kernel_initializer=init, use_bias=False),
                       keras.layers.BatchNormalization(momentum=BN_MOMENTUM), keras.layers.ReLU()]
        else:
            layers.append(keras.layers.Dense(width, "relu", kernel_initializer=init))
    layers.append(keras.layers.Dense(10, kernel_initializer=init))
    return keras.Sequential(layers)


def vgg(seed, widths, init="he_normal", bn=False):
    """VGG-like: 3x3 convolutions in pairs, max pooling after each pair but the last, global
    average pooling, a Dense classifier; ``bn``: BatchNorm before every ReLU."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((28, 28, 1))]
    for i, w in enumerate(widths):
        if bn:
            layers += [keras.layers.Conv2D(w, 3, padding="same", use_bias=False,
                                           kernel_initializer=init),
                       keras.layers.BatchNormalization(momentum=BN_MOMENTUM), keras.layers.ReLU()]
        else:
            layers.append(keras.layers.Conv2D(w, 3, padding="same", activation="relu",
                                              kernel_initializer=init))
        if i % 2 == 1 and i < len(widths) - 1:
            layers.append(keras.layers.MaxPooling2D())
    layers += [keras.layers.GlobalAveragePooling2D(),
               keras.layers.Dense(10, kernel_initializer=init)]
    return keras.Sequential(layers)


class PositionEmbedding(keras.layers.Layer):
    """A learned position embedding added to the patch tokens."""

    def build(self, input_shape):
        self.pos = self.add_weight(name="pos", shape=tuple(input_shape[1:]),
                                   initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + self.pos


def vit(seed, blocks, dim, init="glorot_uniform", heads=2, mlp_dim=None, patch=7):
    """A small ViT: 7x7 patches (16 tokens), learned positions, pre-LN blocks (MHA + GELU MLP),
    mean pooling, a Dense classifier. ``init`` is every kernel's initializer (Keras's default
    is ``glorot_uniform``)."""
    keras.utils.set_random_seed(seed)
    mlp_dim = mlp_dim or 2 * dim
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(dim, patch, strides=patch, kernel_initializer=init)(inputs)
    x = keras.layers.Reshape(((28 // patch) ** 2, dim))(x)
    x = PositionEmbedding()(x)
    for _ in range(blocks):
        h = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        h = keras.layers.MultiHeadAttention(heads, dim // heads, kernel_initializer=init)(h, h)
        x = keras.layers.Add()([x, h])
        h = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        h = keras.layers.Dense(mlp_dim, activation="gelu", kernel_initializer=init)(h)
        h = keras.layers.Dense(dim, kernel_initializer=init)(h)
        x = keras.layers.Add()([x, h])
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, kernel_initializer=init)(x))


def wn_mlp(seed, depth, width, init):
    """``depth`` ReLU ``WNDense`` layers and a ``WNDense`` classifier. ``init``: "wninit"
    (WNInit, gamma 2 / 1 for the classifier), "he" (He-normal kernels in the WN layers) or
    "salimans" (small random directions; then :func:`salimans_init` on data)."""
    keras.utils.set_random_seed(seed)
    if init == "wninit":
        hidden = lambda i: keras_metainit.WNInit(seed=seed * 1000 + i)  # noqa: E731
        out = keras_metainit.WNInit(gamma=1.0, seed=seed * 1000 + depth)
    elif init == "he":
        hidden = lambda i: keras.initializers.HeNormal(seed=seed * 1000 + i)  # noqa: E731
        out = keras.initializers.HeNormal(seed=seed * 1000 + depth)
    else:
        hidden = lambda i: keras.initializers.RandomNormal(  # noqa: E731
            stddev=0.05, seed=seed * 1000 + i)
        out = keras.initializers.RandomNormal(stddev=0.05, seed=seed * 1000 + depth)
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten()]
        + [WNDense(width, activation="relu", kernel_initializer=hidden(i)) for i in range(depth)]
        + [WNDense(10, kernel_initializer=out)])


def salimans_init(model, x):
    """Salimans & Kingma's (2016) data-dependent WN init: layer by layer, on one batch, set each
    unit's gain and bias so its pre-activation has mean 0 and variance 1."""
    h = keras.ops.convert_to_tensor(x)
    for layer in model.layers:
        if isinstance(layer, WNDense):
            t = keras.ops.matmul(h, layer.kernel)
            mean = keras.ops.mean(t, axis=0)
            std = keras.ops.sqrt(keras.ops.var(t, axis=0) + 1e-8)
            layer.g.assign(layer.g / std)
            layer.bias.assign(-mean / std)
        h = layer(h)


def scale_kernels(model, factor):
    return common.scale_kernels(model, factor)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def fit_eval(model, train, test, optimizer, epochs, batch):
    """Compile, fit, evaluate: (test accuracy, final training loss, seconds). A diverged run
    (non-finite loss) scores its evaluated accuracy, NaN logits counting as wrong."""
    model.compile(optimizer, CE, metrics=["accuracy"])
    t = time.perf_counter()
    hist = model.fit(*train, batch_size=batch, epochs=epochs, verbose=0)
    loss = float(hist.history["loss"][-1])
    logits = model.predict(test[0], batch_size=512, verbose=0)
    ok = np.isfinite(logits).all(axis=1)
    acc = float(np.mean((np.argmax(logits, 1) == test[1]) & ok))
    return acc, loss, time.perf_counter() - t


def sgd(lr):
    return keras.optimizers.SGD(lr, momentum=0.9)


def adam(lr, warmup=0):
    """Adam; ``warmup``: a linear warmup from ~0 to ``lr`` over that many steps, then ``lr``."""
    if warmup:
        lr = keras.optimizers.schedules.PolynomialDecay(1e-7, warmup, end_learning_rate=lr,
                                                        power=1.0)
    return keras.optimizers.Adam(lr)


# --------------------------------------------------------------------------------------------
# initializations
# --------------------------------------------------------------------------------------------

_ANYINIT = None


def anyinit_module():
    global _ANYINIT
    if _ANYINIT is None:
        try:
            import anyinit

            _ANYINIT = anyinit
        except ImportError as exc:
            print(f"note: AnyInit is not importable ({exc}); its rows are skipped "
                  "(pip install keras-metainit[anyinit])", flush=True)
            _ANYINIT = False
    return _ANYINIT or None


def initialize(model, how, train, seed, cfg):
    """Apply ``how`` to ``model`` in place; return (seconds, note). ``how`` is None, "anyinit",
    or ``(method, options)`` for ``meta_initialize`` (a list of methods for a chain)."""
    if how is None:
        return 0.0, ""
    t = time.perf_counter()
    note = ""
    if how == "anyinit":
        anyinit_module().initialize(model, "empirical", train[0][:1024], seed=seed)
    else:
        method, options = how
        data = None if options.pop("random_data", False) else train
        report = model.meta_initialize(data, method=method, seed=seed, verbose=0, **options)
        if report.kept_start:
            note = "kept start"
    return time.perf_counter() - t, note


_CACHE = {}


def run_rows(section, contenders, seeds, train, test, cfg, results):
    """contenders: {label: (build(seed) -> model, how, train(model) -> (acc, loss, s)[, key])};
    a contender with a cache ``key`` already run in an earlier section (the same net, init,
    budget and seed) is not trained again."""
    rows = {}
    for label, (build, how, trainer, *key) in contenders.items():
        r = rows[label] = {"acc": [], "loss": [], "init_s": [], "notes": [], "train_s": []}
        for seed in seeds:
            if key and (key[0], seed) in _CACHE:
                for k, v in _CACHE[(key[0], seed)].items():
                    r[k].append(v)
                print(f"  [{section}] {label} seed {seed}: acc {r['acc'][-1]:.3f} (the same run "
                      "as in an earlier section)", flush=True)
                continue
            model = build(seed)
            try:
                init_s, note = initialize(model, dict_copy(how), train, seed, cfg)
            except Exception as exc:  # a contender that cannot run on this net: say so, go on
                print(f"  [{section}] {label} seed {seed}: FAILED ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:120]})", flush=True)
                r["notes"].append(f"failed: {type(exc).__name__}")
                break
            acc, loss, train_s = trainer(model)
            for k, v in (("acc", acc), ("loss", loss), ("init_s", init_s), ("train_s", train_s)):
                r[k].append(v)
            if key:
                _CACHE[(key[0], seed)] = {"acc": acc, "loss": loss, "init_s": init_s,
                                          "train_s": train_s}
            if note:
                r["notes"].append(note)
            print(f"  [{section}] {label} seed {seed}: acc {acc:.3f} loss {loss:.3g} "
                  f"(init {init_s:.1f} s, train {train_s:.1f} s){' ' + note if note else ''}",
                  flush=True)
        if not r["acc"]:
            del rows[label]
    results.setdefault("sections", {})[section] = {
        k: {kk: vv for kk, vv in v.items()} for k, v in rows.items()}
    return rows


def dict_copy(how):
    if isinstance(how, tuple):
        method, options = how
        return method, dict(options)
    return how


def chain(first, second_name, second_options):
    """``(method, options)`` of one ``meta_initialize`` call that runs ``first`` and then the
    learned method (``method=[...]``, a :class:`keras_metainit.methods.Chain`)."""
    from keras_metainit import methods as m

    return ([first, m.get(second_name, **second_options)], {})


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


def section_gradinit(cfg, seeds, train, test, results):
    widths = cfg["cnn_widths"]
    ep, b = cfg["epochs"], cfg["batch"]
    print(f"\n## GradInit: VGG-like CNN, {len(widths)} convolutions {widths}, no BN, SGD m0.9, "
          f"{ep} epoch(s), batch {b}", flush=True)
    # the sweep: seed 0, He and Keras default, every rate
    sweep = {}
    for lr in cfg["cnn_lrs"]:
        for init in ("he_normal", "glorot_uniform"):
            acc, loss, s = fit_eval(vgg(seeds[0], widths, init), train, test, sgd(lr), ep, b)
            sweep[(lr, init)] = (acc, loss)
            print(f"  sweep lr {lr:g} {init}: acc {acc:.3f} loss {loss:.3g} ({s:.1f} s)",
                  flush=True)
    print("\n| SGD lr | He-normal acc (loss) | Keras default acc (loss) |\n|---|---|---|")
    for lr in cfg["cnn_lrs"]:
        h, g = sweep[(lr, "he_normal")], sweep[(lr, "glorot_uniform")]
        print(f"| {lr:g} | {h[0]:.3f} ({h[1]:.3g}) | {g[0]:.3f} ({g[1]:.3g}) |")
    best_he = max(sweep[(lr, "he_normal")][0] for lr in cfg["cnn_lrs"])
    failing = [lr for lr in cfg["cnn_lrs"]
               if sweep[(lr, "he_normal")][0] < max(0.2, 0.5 * best_he)
               or not math.isfinite(sweep[(lr, "he_normal")][1])]
    big = min(failing) if failing else max(cfg["cnn_lrs"])
    safe = max((lr for lr in cfg["cnn_lrs"] if lr < big), default=min(cfg["cnn_lrs"]),
               key=lambda lr: sweep[(lr, "he_normal")][0])
    print(f"\nlarge rate: {big:g} (smallest rate where He's accuracy < max(0.2, half its best, "
          f"{best_he:.3f})" + ("" if failing else "; none failed: the largest rate") + ")"
          f"; He's best rate below it: {safe:g}", flush=True)
    results["gradinit_sweep"] = {f"{lr:g}/{i}": v for (lr, i), v in sweep.items()}
    results["gradinit_lr"] = big

    gi = dict(steps=cfg["gradinit_steps"], eta=big)  # eta: the training rate, as in the paper
    train_big = lambda m: fit_eval(m, train, test, sgd(big), ep, b)  # noqa: E731
    he = lambda s: vgg(s, widths)  # noqa: E731
    default = lambda s: vgg(s, widths, "glorot_uniform")  # noqa: E731
    contenders = {
        "Keras default": (default, None, train_big),
        "He": (he, None, train_big),
        "LSUV": (he, ("lsuv", {}), train_big),
        "Keras default + GradInit": (default, ("gradinit", dict(gi)), train_big),
        "He + GradInit": (he, ("gradinit", dict(gi)), train_big),
        "He + GradInit (scale_invariant)": (he, ("gradinit", dict(gi, scale_invariant=True)),
                                            train_big),
        "LSUV → GradInit": (he, chain("lsuv", "gradinit", gi), train_big),
        "BatchNorm (Keras default)": (lambda s: vgg(s, widths, "glorot_uniform", bn=True), None,
                                      train_big),
    }
    if anyinit_module():
        contenders["AnyInit (empirical)"] = (he, "anyinit", train_big)
    rows = run_rows("gradinit", contenders, seeds, train, test, cfg, results)
    print_table(f"GradInit claim: VGG-like CNN without BN at SGD lr {big:g} (GradInit: "
                f"{gi['steps']} steps, RescaleAdam lr 1e-2, eta = {big:g})", rows)
    out = []
    for start in ("Keras default", "He"):
        out.append(f"{start} + GradInit {fmt(rows[start + ' + GradInit']['acc'])} is "
                   f"{relation(rows[start + ' + GradInit']['acc'], rows[start]['acc'])} "
                   f"{start} {fmt(rows[start]['acc'])}")
    gains = [better(rows[s + " + GradInit"]["acc"], rows[s]["acc"])
             for s in ("Keras default", "He")]
    bn = rows.get("BatchNorm (Keras default)")
    if bn:
        out.append(f"He + GradInit is {relation(rows['He + GradInit']['acc'], bn['acc'])} "
                   f"BatchNorm {fmt(bn['acc'])}")
    word = "reproduced" if all(gains) else "partly" if any(gains) else "not reproduced"
    return [verdict("gradinit", word, "; ".join(out))]


def section_nio(cfg, seeds, train, test, results):
    blocks, dim, ep, b = cfg["vit_blocks"], cfg["vit_dim"], cfg["vit_epochs"], cfg["batch"]
    wu = cfg["vit_warmup"]
    print(f"\n## NIO: ViT, {blocks} blocks, dim {dim}, 16 patches of 7x7, Adam, {ep} epoch(s), "
          f"batch {b}", flush=True)
    sweep = {}
    for lr in cfg["vit_lrs"]:
        for w in (0, wu):
            acc, loss, s = fit_eval(vit(seeds[0], blocks, dim), train, test, adam(lr, w), ep, b)
            sweep[(lr, w)] = (acc, loss)
            print(f"  sweep Adam {lr:g} warmup {w}: acc {acc:.3f} loss {loss:.3g} ({s:.1f} s)",
                  flush=True)
    print(f"\n| Adam lr | Keras default, no warmup | Keras default, {wu}-step linear warmup |"
          "\n|---|---|---|")
    for lr in cfg["vit_lrs"]:
        print(f"| {lr:g} | {sweep[(lr, 0)][0]:.3f} ({sweep[(lr, 0)][1]:.3g}) | "
              f"{sweep[(lr, wu)][0]:.3f} ({sweep[(lr, wu)][1]:.3g}) |")
    lr = max(cfg["vit_lrs"], key=lambda r: (sweep[(r, wu)][0] - sweep[(r, 0)][0], r))
    print(f"\nrate: {lr:g} (the largest gap warmup minus no warmup)", flush=True)
    results["nio_lr"] = lr
    gc = dict(steps=cfg["gradcosine_steps"])
    no_wu = lambda m: fit_eval(m, train, test, adam(lr), ep, b)  # noqa: E731
    default = lambda s: vit(s, blocks, dim)  # noqa: E731
    contenders = {
        "Keras default": (default, None, no_wu),
        "Keras default + GradCosine": (default, ("gradcosine", dict(gc)), no_wu),
        "He": (lambda s: vit(s, blocks, dim, "he_normal"), None, no_wu),
        "LSUV": (default, ("lsuv", {}), no_wu),
        f"Keras default, {wu}-step warmup": (
            default, None, lambda m: fit_eval(m, train, test, adam(lr, wu), ep, b)),
    }
    if anyinit_module():
        contenders["AnyInit (empirical)"] = (default, "anyinit", no_wu)
    rows = run_rows("nio", contenders, seeds, train, test, cfg, results)
    print_table(f"NIO claim: ViT without warmup, Adam {lr:g} (GradCosine: {gc['steps']} steps, "
                f"the method's other defaults)", rows)
    nio, base = rows["Keras default + GradCosine"]["acc"], rows["Keras default"]["acc"]
    warm = rows[f"Keras default, {wu}-step warmup"]["acc"]
    text = (f"+ GradCosine {fmt(nio)} is {relation(nio, base)} Keras default {fmt(base)}, "
            f"and {relation(nio, warm)} the warmup run {fmt(warm)}")
    gain, as_warm = better(nio, base), not_worse(nio, warm)
    word = ("reproduced" if gain and as_warm else "partly" if gain or
            (as_warm and not better(warm, base)) else "not reproduced")
    return [verdict("nio", word, text)]


def section_metainit(cfg, seeds, train, test, results):
    d, w, lr, ep, b = cfg["mlp_depth"], cfg["mlp_width"], cfg["mlp_lr"], cfg["epochs"], cfg["batch"]
    print(f"\n## MetaInit: {d}x{w} plain ReLU MLP, SGD {lr:g} m0.9, {ep} epoch(s), batch {b}",
          flush=True)
    mi = dict(steps=cfg["metainit_steps"], random_data=True)
    trainer = lambda m: fit_eval(m, train, test, sgd(lr), ep, b)  # noqa: E731
    he = lambda s: mlp(s, d, w)  # noqa: E731
    default = lambda s: mlp(s, d, w, "glorot_uniform")  # noqa: E731
    x01 = lambda s: scale_kernels(mlp(s, d, w), 0.1)  # noqa: E731
    x3 = lambda s: scale_kernels(mlp(s, d, w), 3.0)  # noqa: E731
    lsuv_metainit = chain("lsuv", "metainit", {"steps": cfg["metainit_steps"]})
    contenders = {
        "He": (he, None, trainer, ("mlp-he", d, w, lr, ep)),
        "Keras default": (default, None, trainer),
        "Keras default + MetaInit": (default, ("metainit", dict(mi)), trainer),
        "x0.1 He, no fix": (x01, None, trainer),
        "x0.1 He + MetaInit": (x01, ("metainit", dict(mi)), trainer),
        "x3 He, no fix": (x3, None, trainer),
        "x3 He + MetaInit": (x3, ("metainit", dict(mi)), trainer),
        "Keras default + LSUV": (default, ("lsuv", {}), trainer),
        "Keras default + LSUV → MetaInit (data)": (default, lsuv_metainit, trainer),
        "BatchNorm (Keras default)": (lambda s: mlp(s, d, w, "glorot_uniform", bn=True), None,
                                      trainer),
    }
    if anyinit_module():
        contenders["AnyInit (empirical)"] = (default, "anyinit", trainer)
    rows = run_rows("metainit", contenders, seeds, train, test, cfg, results)
    print_table(f"MetaInit claim: {d}x{w} plain MLP (MetaInit {mi['steps']} steps on random "
                f"data, eps 1e-2)", rows)
    bn = rows["BatchNorm (Keras default)"]["acc"]
    parts, ok = [], []
    for start in ("x0.1 He", "x3 He"):
        fixed, broken = rows[start + " + MetaInit"]["acc"], rows[start + ", no fix"]["acc"]
        ok.append(better(fixed, broken))
        parts.append(f"{start} + MetaInit {fmt(fixed)} vs unrepaired {fmt(broken)}")
    dm = rows["Keras default + MetaInit"]["acc"]
    competitive = not_worse(dm, bn)
    parts.append(f"Keras default + MetaInit {fmt(dm)} is {relation(dm, bn)} BatchNorm {fmt(bn)}")
    for start in ("x0.1 He", "x3 He"):
        parts.append(f"{start} + MetaInit is {relation(rows[start + ' + MetaInit']['acc'], bn)} "
                     "BatchNorm")
    recovered = all(ok)
    word = ("reproduced" if recovered and competitive else
            "partly" if recovered or competitive else "not reproduced")
    return [verdict("metainit", word, "; ".join(parts))]


def section_wn(cfg, seeds, train, test, results):
    d, w, lr, wu = cfg["wn_depth"], cfg["wn_width"], cfg["wn_lr"], cfg["wn_warmup"]
    ep, b = cfg["wn_epochs"], cfg["wn_batch"]
    print(f"\n## WN init: {d}-layer WNDense MLP (width {w}), Adam {lr:g} with QuadraticWarmup "
          f"({wu} steps), {ep} epoch(s), batch {b}", flush=True)
    trainer = lambda m: fit_eval(  # noqa: E731
        m, train, test, keras.optimizers.Adam(keras_metainit.QuadraticWarmup(lr, wu)), ep, b)
    salimans_batch = train[0][:512]

    def salimans(s):
        model = wn_mlp(s, d, w, "salimans")
        salimans_init(model, salimans_batch)
        return model

    contenders = {
        "WN + WNInit": (lambda s: wn_mlp(s, d, w, "wninit"), None, trainer),
        "WN + He-normal kernels": (lambda s: wn_mlp(s, d, w, "he"), None, trainer),
        "WN + Salimans data-dependent init": (salimans, None, trainer),
        "plain Dense + He (no WN)": (lambda s: mlp(s, d, w), None, trainer),
    }
    rows = run_rows("wn", contenders, seeds, train, test, cfg, results)
    print_table(f"WN-init claim: {d}-layer MLP with quadratic warmup", rows)
    wn = rows["WN + WNInit"]["acc"]
    chance = [0.1] * len(wn)
    others = [k for k in rows if k != "WN + WNInit"]
    beats = {k: better(wn, rows[k]["acc"]) for k in others}
    parts = [f"WNInit {fmt(wn)}"] + [f"{relation(wn, rows[k]['acc'])} {k} {fmt(rows[k]['acc'])}"
                                     for k in others]
    trains = better(wn, chance) and stats(wn)[0] > 0.2
    word = ("reproduced" if trains and all(beats.values()) else
            "partly" if trains and any(beats.values()) else "not reproduced")
    return [verdict("wn", word, "; ".join(parts))]


def section_noharm(cfg, seeds, train, test, results):
    d, w, lr, ep, b = cfg["mlp_depth"], cfg["mlp_width"], cfg["mlp_lr"], cfg["epochs"], cfg["batch"]
    widths = cfg["cnn_widths"]
    cnn_lr = 0.01
    steps = cfg["default_steps"]
    print(f"\n## Do no harm: from He-normal, every method with its defaults; {d}x{w} MLP "
          f"(SGD {lr:g}) and the VGG-like CNN (SGD {cnn_lr:g}), {ep} epoch(s)", flush=True)

    def how(name):
        opts = {"steps": steps[name]} if name in steps else {}
        return (name, opts)

    verdicts = []
    for arch, build, rate in (("MLP", lambda s: mlp(s, d, w), lr),
                              ("CNN", lambda s: vgg(s, widths), cnn_lr)):
        trainer = lambda m, rate=rate: fit_eval(m, train, test, sgd(rate), ep, b)  # noqa: E731
        key = ("mlp-he", d, w, lr, ep) if arch == "MLP" else ("cnn-he", widths, rate, ep)
        contenders = {"He": (build, None, trainer, key)}
        for name in ("metainit", "gradinit", "gradcosine", "lsuv", "sylvester"):
            contenders[f"He + {name}"] = (build, how(name), trainer)
        rows = run_rows(f"noharm-{arch}", contenders, seeds, train, test, cfg, results)
        print_table(f"Do no harm, {arch}: He start, each method's defaults "
                    f"(SGD {rate:g}, {ep} epochs)", rows,
                    extra_cols=[("notes", lambda r: ", ".join(sorted(set(r["notes"]))) or "-")])
        he = rows["He"]["acc"]
        for k in rows:
            if k == "He":
                continue
            harmless = not_worse(rows[k]["acc"], he)
            verdicts.append((arch, k, harmless, f"{arch} {k} {fmt(rows[k]['acc'])} is "
                             f"{relation(rows[k]['acc'], he)} He {fmt(he)}"))
    n_ok = sum(v[2] for v in verdicts)
    word = ("reproduced" if n_ok == len(verdicts) else "partly" if n_ok else "not reproduced")
    return [verdict("noharm", word, f"{n_ok}/{len(verdicts)} method x net pairs within the "
                    "seed spread of He or above; " + "; ".join(v[3] for v in verdicts))]


# --------------------------------------------------------------------------------------------


def load(subset, cfg, seed=0):
    if subset == "full":
        try:
            train, test = (keras_metainit.datasets.load_fashion_mnist(s, "full")
                           for s in ("train", "test"))
        except FileNotFoundError as exc:
            print(f"note: the full set is not installed ({str(exc).splitlines()[0]}); "
                  "using the bundled 6k subset", flush=True)
            subset = "small"
    if subset == "small":
        train, test = (keras_metainit.datasets.load_fashion_mnist(s, "small")
                       for s in ("train", "test"))
    rng = np.random.default_rng(seed)
    out = []
    for (x, y), n in ((train, cfg["train_size"]), (test, cfg["test_size"])):
        if n is not None and n < len(x):
            keep = rng.permutation(len(x))[:n]
            x, y = x[keep], y[keep]
        out.append((x, y))
    return out[0], out[1], subset


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--subset", choices=("small", "full"), default="small")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    seeds = list(range(1 if args.quick else args.seeds))
    train, test, subset = load(args.subset, cfg)
    import tensorflow as tf

    print(f"claims.py: sections {args.sections}, seeds {seeds}, Fashion-MNIST {subset} "
          f"({len(train[0])} train / {len(test[0])} test, pixels in [0, 1]), TF {tf.__version__}, "
          f"Keras {keras.__version__}, {os.cpu_count()} CPU(s)"
          + (", QUICK (smoke run: verdicts mean nothing)" if args.quick else ""), flush=True)
    results = {"args": vars(args), "cfg": {k: v for k, v in cfg.items()}, "verdicts": []}
    t0 = time.perf_counter()
    for name in args.sections:
        ts = time.perf_counter()
        try:
            results["verdicts"] += globals()[f"section_{name}"](cfg, seeds, train, test, results)
        except Exception as exc:  # one broken section must not lose the others' tables
            import traceback

            traceback.print_exc()
            results["verdicts"].append(verdict(name, "not run", f"{type(exc).__name__}: {exc}"))
        print(f"(section {name}: {time.perf_counter() - ts:.0f} s)", flush=True)
    print("\n## Verdicts\n")
    for v in results["verdicts"]:
        print(f"- **{v['section']}**: {v['verdict']} — {v['text']}")
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.0f} s", flush=True)
    results["total_s"] = total
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return results


if __name__ == "__main__":
    main()
