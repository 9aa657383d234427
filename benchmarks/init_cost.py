"""What an initialization costs next to the training it precedes.

For each learned and layer-wise method, on the 20×128 plain ReLU MLP
(``keras_metainit.experiments.models.mlp``) started
from the ×0.1 bad start, the wall time of the whole initialization call (``perf_counter`` around
``model.meta_initialize``, tracing included; ``report.wall_time`` next to it) as a share of the
time of a 2-epoch and a 10-epoch training run (``keras_metainit.experiments.training.train``
with SGD 0.01, momentum 0.9, batch 128) of the same net on the same data. AnyInit (``anyinit.initialize``) is timed too when it is importable.

The initializations run on the first data set of ``--subsets`` (their cost hardly depends on
its size: the learned methods draw batches of 128, the layer-wise ones at most 4,096 examples);
the training runs are timed on each data set.

Usage: python benchmarks/init_cost.py [--arch mlp20x128] [--subsets small full] [--repeats 2]
       [--methods ...] [--json PATH] [--quick]
Prints progress lines and a markdown table (medians over the repeats; ``render.py``'s); writes
``benchmarks/results/init_cost.json`` (``--json``; a ``--quick`` run only when given).
"""
import argparse
import time

import numpy as np

import keras_metainit  # noqa: F401  (adds keras.Model.meta_initialize)
from keras_metainit.experiments import contenders, data, models, training
import record
import render

METHODS = {
    "metainit": ("MetaInit (random data, 200 steps)", None, dict(steps=200)),
    "gradinit": ("GradInit (100 steps, lr 0.1)", "data", dict(steps=100, lr=0.1)),
    "gradinit_default": ("GradInit (defaults: 390 steps)", "data", {}),
    "gradcosine": ("GradCosine (50 steps, lr 0.1)", "data", dict(steps=50, lr=0.1)),
    "gradcosine_default": ("GradCosine (defaults: 100 steps)", "data", {}),
    "lsuv": ("LSUV", "data", {}),
    "sylvester": ("Sylvester (orthogonal code)", "data", {}),
    "anyinit": ("AnyInit analytic", None, {}),
    "anyinit_empirical": ("AnyInit empirical (1,024 images)", "data", {}),
}


def time_init(method, arch, train, seed, quick):
    """Seconds of one initialization of a fresh bad-start net; (perf_counter, report.wall_time)."""
    model = models.scale_kernels(models.by_name(arch, seed), 0.1)
    _, source, options = METHODS[method]
    data = train if source == "data" else None
    if quick and "steps" in options:
        options = dict(options, steps=5)
    elif quick and method.endswith("_default"):
        options = dict(steps=5)
    t = time.perf_counter()
    if method.startswith("anyinit"):
        anyinit = contenders.load_anyinit()
        if method == "anyinit":
            anyinit.initialize(model, seed=seed)
        else:
            anyinit.initialize(model, "empirical", train[0][:1024], seed=seed)
        wall = float("nan")
    else:
        name = method.replace("_default", "")
        report = model.meta_initialize(data, method=name, seed=seed, verbose=0, **options)
        wall = report.wall_time
    return time.perf_counter() - t, wall


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="mlp20x128")
    p.add_argument("--subsets", nargs="+", default=None,
                   help="data sets to time training on (default: small, and full when installed)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: mlp4x32, 5 steps, 1 repeat, 1,024 images, 1 and 2 epochs")
    record.add_argument(p, "init_cost")
    args = p.parse_args()
    epochs = (1, 2) if args.quick else (2, 10)
    if args.quick:
        args.arch, args.repeats, args.subsets = "mlp4x32", 1, ["small"]
    if args.subsets is None:
        args.subsets = ["small"] + (
            ["full"] if data.fashion_mnist("auto", standardize=False)[2] == "full" else [])
    methods = list(args.methods)
    if contenders.load_anyinit() is None:
        methods = [m for m in methods if not m.startswith("anyinit")]
    t_all = time.perf_counter()
    train_s, sizes, init_data = {}, {}, None
    for subset in args.subsets:
        size = (1024, 512) if args.quick else (None, None)
        train, test, subset = data.fashion_mnist(subset, standardize=False, train_size=size[0],
                                                 test_size=size[1])
        init_data = init_data or train  # the initializations run on the first data set
        sizes[subset] = len(train[0])
        for ep in epochs:
            times = [training.train(models.by_name(args.arch, r), train, test,
                                    training.Budget("sgd", 0.01, epochs=ep)).seconds
                     for r in range(args.repeats)]
            train_s[(subset, ep)] = float(np.median(times))
            print(f"  {subset} ({len(train[0])} images), training {ep} epochs: "
                  f"{train_s[(subset, ep)]:.1f} s (fit + evaluate) "
                  f"[{time.perf_counter() - t_all:.0f}s]", flush=True)
    rows = []
    for method in methods:
        times = [time_init(method, args.arch, init_data, r, args.quick)
                 for r in range(args.repeats)]
        init_s = float(np.median([t for t, _ in times]))
        wall = float(np.median([w for _, w in times]))
        rows.append({"method": method, "label": METHODS[method][0], "init_s": init_s,
                     "wall_time_s": None if np.isnan(wall) else wall})
        print(f"  {method}: {init_s:.2f} s (report.wall_time {wall:.2f} s) "
              f"[{time.perf_counter() - t_all:.0f}s]", flush=True)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s\n")
    print(f"{args.arch}, ×0.1 bad start; median of {args.repeats} run(s)")
    train = [{"subset": sub, "images": sizes[sub], "epochs": ep, "s": train_s[(sub, ep)]}
             for sub in sizes for ep in epochs]
    payload = record.write(record.path_for(args, "init_cost", smoke=args.quick), {
        "arch": args.arch, "repeats": args.repeats, "train_s": train, "rows": rows})
    print(render.render_init_cost(payload))


if __name__ == "__main__":
    main()
