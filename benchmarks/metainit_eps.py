"""Where should MetaInit's ε be? Recovery from bad starts for several ε, architectures, seeds.

For each architecture (plain ReLU nets, no normalization), seed and bad start (every kernel ×0.1
or ×3 of He), run MetaInit (random data, the reference setting) with each ε, then train for a
fixed budget (SGD momentum 0.9, lr 0.01, batch 128) and report test accuracy, the GQ before/after
and the end-to-end gain vs He. He init and the bad start without MetaInit are the baselines.

Usage: python benchmarks/metainit_eps.py [--eps 1e-5 1e-3 1e-2] [--seeds 3] [--steps 200]
       [--epochs 2] [--subset auto|small|full] [--archs mlp12x128 mlp20x64 cnn8x16]
Prints a table (markdown).
"""
import argparse
import collections

import numpy as np

import common
import keras_metainit as km


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eps", type=float, nargs="+", default=[1e-5, 1e-3, 1e-2])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", default="small")
    p.add_argument("--archs", nargs="+", default=list(common.ARCHS))
    args = p.parse_args()
    train, test, subset = common.fashion_mnist(args.subset)
    print(f"data: Fashion-MNIST {subset} ({len(train[0])} train / {len(test[0])} test); "
          f"MetaInit {args.steps} steps on random data; then {args.epochs} epochs SGD 0.01 m0.9")
    rows = collections.defaultdict(list)
    for arch in args.archs:
        make = common.ARCHS[arch]
        for seed in range(args.seeds):
            rows[(arch, "He", "-")].append((common.train_eval(make(seed), train, test,
                                                              epochs=args.epochs)[0], np.nan, np.nan))
            for bad in (0.1, 3.0):
                acc, _ = common.train_eval(common.scale_kernels(make(seed), bad), train, test,
                                           epochs=args.epochs)
                rows[(arch, f"x{bad} (no init)", "-")].append((acc, np.nan, np.nan))
                for eps in args.eps:
                    model = common.scale_kernels(make(seed), bad)
                    r = km.meta_initialize(model, None, steps=args.steps, eps=eps, seed=seed,
                                           verbose=0, method="metainit")
                    acc, _ = common.train_eval(model, train, test, epochs=args.epochs)
                    rows[(arch, f"x{bad} + MetaInit", f"{eps:g}")].append(
                        (acc, r.after["gq"] / r.before["gq"], r.end_to_end_gain["after"]))
                    print(f"  {arch} seed {seed} x{bad} eps {eps:g}: acc {acc:.3f} "
                          f"gain {r.end_to_end_gain['after']:.3g}", flush=True)
    print("\n| arch | start | eps | test acc (mean ± std) | GQ after/before | end-to-end gain |")
    print("|---|---|---|---|---|---|")
    for (arch, start, eps), vals in rows.items():
        a = np.array(vals)
        gq = "-" if np.isnan(a[:, 1]).all() else f"{np.nanmean(a[:, 1]):.3g}"
        gain = "-" if np.isnan(a[:, 2]).all() else f"{np.exp(np.nanmean(np.log(a[:, 2]))):.3g}"
        print(f"| {arch} | {start} | {eps} | {common.mean_std(a[:, 0])} | {gq} | {gain} |")


if __name__ == "__main__":
    main()
