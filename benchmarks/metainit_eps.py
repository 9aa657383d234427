"""Where should MetaInit's ε be? Recovery from bad starts for several ε, architectures, seeds.

For each architecture (plain ReLU nets, no normalization), seed and bad start (every kernel ×0.1
or ×3 of He), run MetaInit (random data, the reference setting) with each ε, then train for a
fixed budget (SGD momentum 0.9, lr 0.01, batch 128) and report test accuracy, the GQ before/after
and the end-to-end gain vs He. He init and the bad start without MetaInit are the baselines.

Usage: python benchmarks/metainit_eps.py [--eps 1e-5 1e-3 1e-2] [--seeds 3] [--steps 200]
       [--epochs 2] [--subset auto|small|full] [--archs mlp12x128 mlp20x64 cnn8x16] [--json PATH]
Writes every run to ``benchmarks/results/metainit_eps.json`` (``--json``) and prints the table
(``render.py``'s).
"""
import argparse

import keras_metainit as km
import record
import render
from keras_metainit.experiments import data, models, training

ARCHS = ("mlp12x128", "mlp20x64", "cnn8x16")


def accuracy(model, train_data, test_data, epochs):
    """Test accuracy after ``epochs`` of SGD 0.01, momentum 0.9, batch 128."""
    return training.train(model, train_data, test_data,
                          training.Budget("sgd", 0.01, epochs=epochs)).test_acc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eps", type=float, nargs="+", default=[1e-5, 1e-3, 1e-2])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", default="small")
    p.add_argument("--archs", nargs="+", default=list(ARCHS))
    record.add_argument(p, "metainit_eps")
    args = p.parse_args()
    train, test, subset = data.fashion_mnist(args.subset, standardize=False)
    print(f"data: Fashion-MNIST {subset} ({len(train[0])} train / {len(test[0])} test); "
          f"MetaInit {args.steps} steps on random data; then {args.epochs} epochs SGD 0.01 m0.9")
    runs = []
    for arch in args.archs:
        def make(seed, arch=arch):
            return models.by_name(arch, seed)

        for seed in range(args.seeds):
            acc = accuracy(make(seed), train, test, args.epochs)
            runs.append({"arch": arch, "seed": seed, "start": "He", "eps": None, "test_acc": acc})
            for bad in (0.1, 3.0):
                acc = accuracy(models.scale_kernels(make(seed), bad), train, test, args.epochs)
                runs.append({"arch": arch, "seed": seed, "start": f"x{bad} (no init)", "eps": None,
                             "test_acc": acc})
                for eps in args.eps:
                    model = models.scale_kernels(make(seed), bad)
                    r = km.meta_initialize(model, None, steps=args.steps, eps=eps, seed=seed,
                                           verbose=0, method="metainit")
                    acc = accuracy(model, train, test, args.epochs)
                    runs.append({"arch": arch, "seed": seed, "start": f"x{bad} + MetaInit",
                                 "eps": eps, "test_acc": acc,
                                 "gq_ratio": r.after["gq"] / r.before["gq"],
                                 "gain": r.end_to_end_gain["after"]})
                    print(f"  {arch} seed {seed} x{bad} eps {eps:g}: acc {acc:.3f} "
                          f"gain {r.end_to_end_gain['after']:.3g}", flush=True)
    payload = record.write(record.path_for(args, "metainit_eps"), {
        "config": {"subset": subset, "steps": args.steps, "epochs": args.epochs,
                   "seeds": args.seeds}, "runs": runs})
    print(render.render_metainit_eps(payload))


if __name__ == "__main__":
    main()
