"""Depth sweep of weight-normalized MLPs: Arpit et al.'s init vs standard kernels, same WN layers.

Weight-normalized ReLU MLPs (``keras_metainit.layers.WNDense``, width 128, zero biases) of
several depths, their kernels drawn by ``WNInit`` (gamma=2 for the ReLU layers, gamma=1 for the
classifier, as in the README) or by Keras's ``glorot_uniform``, ``he_normal`` and ``orthogonal``
(the classifier gets the same initializer as the hidden layers). A WN layer takes its direction
and per-unit gain from the drawn kernel, so the inits differ in the directions (orthogonal or
random) and the gains (√2 for WNInit and He, ≈1 for Glorot and orthogonal on square layers).
Every net is trained for the same short budget: Adam with a quadratic warmup
(``keras_metainit.experiments.training.Budget(warmup_power=2)``),
batch 64, on the bundled Fashion-MNIST subset; test accuracy on its 2,000 test images.

Usage: python benchmarks/depth.py [--depths 10 50 100 200] [--width 128] [--seeds 3]
       [--seeds-deepest N] [--inits wninit glorot_uniform he_normal orthogonal] [--epochs 1]
       [--lr 3e-4] [--warmup 50] [--batch 64] [--subset small] [--plot PATH] [--json PATH]
       [--quick]
Prints progress lines and a markdown table (depth × init, ``render.py``'s); writes every run to
``benchmarks/results/depth.json`` (``--json``; a ``--quick`` run only when given) and a PNG when
matplotlib is there.
"""
import argparse
import collections
import time

import keras
import numpy as np

import keras_metainit
import record
import render
from keras_metainit.experiments import data, models, plots, stats, training
from keras_metainit.layers import WNDense

INITS = ("wninit", "glorot_uniform", "he_normal", "orthogonal")
LABELS = {"wninit": "WNInit", "glorot_uniform": "Glorot uniform", "he_normal": "He normal",
          "orthogonal": "orthogonal"}


def wn_mlp(depth, width, init, seed):
    """``models.mlp`` of ``WNDense`` layers; WNInit gets gamma 1 on the classifier."""
    if init == "wninit":
        hidden, output = keras_metainit.WNInit(gamma=2.0), keras_metainit.WNInit(gamma=1.0)
    else:
        hidden = output = keras.initializers.get(init)
    return models.mlp(depth, width, dense=WNDense, kernel_initializer=hidden,
                      output_initializer=output, seed=seed)


def train_eval(model, train, test, args):
    steps = int(np.ceil(len(train[0]) / args.batch)) * args.epochs
    budget = training.Budget("adam", args.lr, batch_size=args.batch, epochs=args.epochs,
                             warmup=min(args.warmup, steps), warmup_power=2.0)
    result = training.train(model, train, test, budget)
    return result.test_acc, result.seconds


def plot(results, depths, inits, path, title):
    plt = plots.pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for init in inits:
        ds = [d for d in depths if results.get((d, init))]
        m = [np.mean(results[(d, init)]) for d in ds]
        s = [stats.mean_std(results[(d, init)])[1] for d in ds]
        ax.errorbar(ds, m, yerr=s, marker="o", capsize=3, label=LABELS[init])
    ax.axhline(0.1, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.set_xlabel("depth (hidden WNDense layers)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    print(f"figure: {plots.save_figure(fig, path)}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[10, 50, 100, 200])
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seeds-deepest", type=int, default=None,
                   help="seeds for the largest depth (default: --seeds)")
    p.add_argument("--inits", nargs="+", default=list(INITS), choices=list(INITS))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam's rate after the warmup")
    p.add_argument("--warmup", type=int, default=50, help="quadratic warmup steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--subset", default="small")
    p.add_argument("--plot", default=None, help="PNG path (default depth.png; none in --quick)")
    record.add_argument(p, "depth")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run: depths 2 and 6, width 16, 1 seed, 512 training images")
    args = p.parse_args()
    if args.quick:
        args.depths, args.width, args.seeds = [2, 6], 16, 1
    size = (512, 256) if args.quick else (None, None)
    train, test, subset = data.fashion_mnist(args.subset, standardize=False, train_size=size[0],
                                             test_size=size[1])
    print(f"data: Fashion-MNIST {subset} ({len(train[0])} train / {len(test[0])} test); WN MLP "
          f"width {args.width}; {args.epochs} epoch(s) Adam {args.lr:g} with quadratic warmup "
          f"({args.warmup} steps), batch {args.batch}", flush=True)
    results = collections.defaultdict(list)
    runs = []
    t_all = time.perf_counter()
    deepest = max(args.depths)
    for depth in args.depths:
        seeds = args.seeds_deepest if depth == deepest and args.seeds_deepest else args.seeds
        for seed in range(seeds):
            for init in args.inits:
                keras.backend.clear_session()
                t = time.perf_counter()
                model = wn_mlp(depth, args.width, init, seed)
                build_s = time.perf_counter() - t
                acc, train_s = train_eval(model, train, test, args)
                results[(depth, init)].append(acc)
                runs.append({"depth": depth, "seed": seed, "init": init, "test_acc": acc,
                             "train_s": train_s})
                print(f"  depth {depth} seed {seed} {init}: acc {acc:.3f} build {build_s:.1f}s "
                      f"train {train_s:.1f}s [{time.perf_counter() - t_all:.0f}s]", flush=True)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s\n")
    config = {"subset": subset, "width": args.width, "epochs": args.epochs, "lr": args.lr,
              "warmup": args.warmup, "batch": args.batch}
    payload = record.write(record.path_for(args, "depth", smoke=args.quick), {
        "config": config, "depths": args.depths, "inits": args.inits, "labels": LABELS,
        "runs": runs})
    print(render.render_depth(payload))
    path = args.plot or (None if args.quick else "depth.png")
    if path:
        plot(results, args.depths, args.inits, path,
             f"WN MLPs, width {args.width}, Fashion-MNIST {subset}: {args.epochs} epoch Adam "
             f"{args.lr:g} + warmup, batch {args.batch}")


if __name__ == "__main__":
    main()
