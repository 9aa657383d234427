"""Recovery from bad starts: deep plain nets fixed by each method, then trained with one budget.

Plain ReLU nets without normalization (a 20×128 MLP and an 8-layer, width-16 CNN by default) are
started from bad inits, every kernel ×0.1 or ×3 of He-normal, and repaired by each method of the
suite (``model.meta_initialize``) and by AnyInit (``anyinit.initialize``, when importable). Next to
them: Keras's default (``glorot_uniform``) and He-normal, without a bad start, and the bad start
left as it is. Every contender is then trained with the same budget (``common.train_eval``: SGD
0.01, momentum 0.9, batch 128) and evaluated on the test set.

Methods (``--methods``; baselines have no bad start, the others repair each bad start):

- ``keras_default``, ``he``: baselines; ``none``: the bad start, unrepaired.
- ``metainit``: MetaInit, 200 steps on random data (its reference setting).
- ``gradinit``: GradInit on the training data, 100 steps, lr 0.1 (the CLI demo's settings);
  ``gradinit_default``: the method's defaults (390 steps, lr 1e-2).
- ``gradcosine``: GradCosine (NIO) on the training data, 50 steps, lr 0.1 (the demo's);
  ``gradcosine_default``: the defaults (100 steps, lr 1e-2).
- ``lsuv``, ``sylvester``: the layer-wise methods on the training data (defaults).
- ``anyinit``: AnyInit's analytic mode (no data); ``anyinit_empirical``: its empirical mode on
  1,024 training images. Both redraw every kernel (they do not keep the bad start's directions).

Usage: python benchmarks/recovery.py [--seeds 3] [--archs mlp20x128 cnn8x16]
       [--starts 0.1 3.0] [--methods ...] [--subset auto|small|full] [--epochs 2]
       [--plot PATH] [--json PATH] [--quick]
Prints progress lines and a markdown table (``render.py``'s); writes every run to
``benchmarks/results/recovery.json`` (``--json``; a ``--quick`` run only when given) and a PNG
figure when matplotlib is installed.
"""
import argparse
import collections
import time

import numpy as np

import common
import keras_metainit  # noqa: F401  (adds keras.Model.meta_initialize)
import record
import render

BASELINES = ("keras_default", "he")
FIXES = ("none", "metainit", "gradinit", "gradinit_default", "gradcosine", "gradcosine_default",
         "lsuv", "sylvester", "anyinit", "anyinit_empirical")
LABELS = {
    "keras_default": "Keras default (glorot_uniform)",
    "he": "He-normal",
    "none": "no fix",
    "metainit": "MetaInit (random data, 200 steps)",
    "gradinit": "GradInit (100 steps, lr 0.1)",
    "gradinit_default": "GradInit (defaults: 390 steps, lr 0.01)",
    "gradcosine": "GradCosine (50 steps, lr 0.1)",
    "gradcosine_default": "GradCosine (defaults: 100 steps, lr 0.01)",
    "lsuv": "LSUV",
    "sylvester": "Sylvester (orthogonal code)",
    "anyinit": "AnyInit analytic",
    "anyinit_empirical": "AnyInit empirical (1,024 images)",
}
QUICK_STEPS = {"metainit": 10, "gradinit": 5, "gradcosine": 5}


def anyinit_or_none():
    try:
        import anyinit
    except ImportError as exc:
        print(f"note: AnyInit is not importable ({exc}); its rows are skipped "
              "(pip install keras-metainit[anyinit])", flush=True)
        return None
    return anyinit


def fix(model, method, train, seed, quick):
    """Repair ``model`` in place with ``method``; return the seconds it took."""
    q = QUICK_STEPS if quick else {}
    t = time.perf_counter()
    if method == "metainit":
        model.meta_initialize(None, method="metainit", steps=q.get("metainit", 200),
                              seed=seed, verbose=0)
    elif method == "gradinit":
        model.meta_initialize(train, method="gradinit", steps=q.get("gradinit", 100), lr=0.1,
                              seed=seed, verbose=0)
    elif method == "gradinit_default":
        model.meta_initialize(train, method="gradinit", steps=q.get("gradinit"),
                              seed=seed, verbose=0)
    elif method == "gradcosine":
        model.meta_initialize(train, method="gradcosine", steps=q.get("gradcosine", 50),
                              lr=0.1, seed=seed, verbose=0)
    elif method == "gradcosine_default":
        model.meta_initialize(train, method="gradcosine", steps=q.get("gradcosine"),
                              seed=seed, verbose=0)
    elif method in ("lsuv", "sylvester"):
        model.meta_initialize(train, method=method, seed=seed, verbose=0)
    elif method == "anyinit":
        import anyinit

        anyinit.initialize(model, seed=seed)
    elif method == "anyinit_empirical":
        import anyinit

        anyinit.initialize(model, "empirical", train[0][:1024], seed=seed)
    elif method != "none":
        raise ValueError(f"unknown method {method!r}")
    return time.perf_counter() - t


def run_one(arch, start, method, seed, train, test, args):
    """Build, (break,) repair, train and evaluate one contender: (test accuracy, init seconds)."""
    if method == "keras_default":
        model = common.build_arch(arch, seed, "glorot_uniform")
    else:
        model = common.build_arch(arch, seed)
    if start is not None:
        common.scale_kernels(model, start)
    init_s = fix(model, method, train, seed, args.quick) if start is not None else 0.0
    acc, train_s = common.train_eval(model, train, test, epochs=args.epochs)
    return acc, init_s, train_s


def plot(rows, baselines, path, title):
    plt = common.pyplot()
    if plt is None:
        return
    archs = list(dict.fromkeys(k[0] for k in rows))
    fig, axes = plt.subplots(len(archs), 1, figsize=(10, 3.6 * len(archs)), squeeze=False)
    for ax, arch in zip(axes[:, 0], archs):
        keys = [k for k in rows if k[0] == arch]
        starts = list(dict.fromkeys(k[1] for k in keys))
        methods = list(dict.fromkeys(k[2] for k in keys))
        width = 0.8 / max(len(starts), 1)
        for j, start in enumerate(starts):
            means = [np.mean(rows[(arch, start, m)]["acc"]) if (arch, start, m) in rows else np.nan
                     for m in methods]
            stds = [np.std(rows[(arch, start, m)]["acc"]) if (arch, start, m) in rows else 0.0
                    for m in methods]
            ax.bar(np.arange(len(methods)) + (j - (len(starts) - 1) / 2) * width, means, width,
                   yerr=stds, capsize=2, label=f"start ×{start:g} He")
        styles = iter(["-", "--", ":"])
        for name, accs in baselines.get(arch, {}).items():
            ax.axhline(np.mean(accs), color="k", ls=next(styles), lw=1,
                       label=f"{LABELS[name]}: {np.mean(accs):.3f}")
        ax.axhline(0.1, color="grey", lw=0.5)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels([LABELS[m].split(" (")[0] + ("*" if "default" in m else "")
                            for m in methods], rotation=20, fontsize=8)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.set_title(f"{arch}: {title}", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    common.save_figure(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--archs", nargs="+", default=["mlp20x128", "cnn8x16"])
    p.add_argument("--starts", type=float, nargs="+", default=[0.1, 3.0],
                   help="bad starts: every kernel times this, of He-normal")
    p.add_argument("--methods", nargs="+", default=list(BASELINES + FIXES),
                   choices=list(BASELINES + FIXES))
    p.add_argument("--subset", default="auto", help="auto (full set when installed) | small | full")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--plot", default=None, help="PNG path (default recovery.png; none in --quick)")
    record.add_argument(p, "recovery")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run: mlp4x32 and cnn3x8, 1 seed, 1,024 training images, "
                        "1 epoch, few init steps")
    args = p.parse_args()
    train, test, subset = common.fashion_mnist(args.subset)
    if args.quick:
        args.seeds, args.epochs = 1, 1
        if args.archs == p.get_default("archs"):
            args.archs = ["mlp4x32", "cnn3x8"]
        train, test = common.take(train, 1024), common.take(test, 512)
    methods = list(args.methods)
    if any(m.startswith("anyinit") for m in methods) and anyinit_or_none() is None:
        methods = [m for m in methods if not m.startswith("anyinit")]
    print(f"data: Fashion-MNIST {subset} ({len(train[0])} train / {len(test[0])} test); "
          f"{args.seeds} seeds; bad starts x{args.starts} of He; training {args.epochs} epochs "
          "SGD 0.01 momentum 0.9 batch 128", flush=True)

    rows = collections.defaultdict(lambda: {"acc": [], "init_s": []})
    baselines = collections.defaultdict(dict)
    runs = []
    t_all = time.perf_counter()
    for arch in args.archs:
        for seed in range(args.seeds):
            jobs = [(None, m) for m in methods if m in BASELINES]
            jobs += [(s, m) for s in args.starts for m in methods if m in FIXES]
            for start, method in jobs:
                try:
                    acc, init_s, train_s = run_one(arch, start, method, seed, train, test, args)
                except Exception as exc:  # a method that fails is a result, not a crash
                    print(f"  {arch} seed {seed} start {start} {method}: ERROR "
                          f"{type(exc).__name__}: {exc}", flush=True)
                    acc, init_s, train_s = float("nan"), float("nan"), float("nan")
                key = (arch, "-" if start is None else start, method)
                rows[key]["acc"].append(acc)
                rows[key]["init_s"].append(init_s)
                if start is None:
                    baselines[arch].setdefault(method, []).append(acc)
                runs.append({"arch": arch, "seed": seed, "start": start, "method": method,
                             "test_acc": acc, "init_s": init_s, "train_s": train_s})
                print(f"  {arch} seed {seed} start {'-' if start is None else f'x{start:g}'} "
                      f"{method}: acc {acc:.3f} init {init_s:.1f}s train {train_s:.1f}s "
                      f"[{time.perf_counter() - t_all:.0f}s]", flush=True)

    print(f"\ntotal {time.perf_counter() - t_all:.0f} s\n")
    config = {"subset": subset, "train_images": len(train[0]), "test_images": len(test[0]),
              "seeds": args.seeds, "epochs": args.epochs, "starts": args.starts}
    payload = record.write(record.path_for(args, "recovery", smoke=args.quick),
                           {"config": config, "labels": LABELS, "runs": runs})
    print(render.render_recovery(payload))
    path = args.plot or (None if args.quick else "recovery.png")
    if path:
        fixed = {k: v for k, v in rows.items() if k[1] != "-"}
        plot(fixed, baselines, path,
             f"Fashion-MNIST {subset}, {args.epochs} epochs SGD, {args.seeds} seeds "
             "(* = method defaults)")


if __name__ == "__main__":
    main()
