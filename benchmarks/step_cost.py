"""Cost of one learned-initialization step against one training step, batch 128.

For an 8×256 ReLU MLP and a small CNN on 28×28×1 inputs, prints milliseconds per step of
MetaInit, GradInit and GradCosine (the report's ``step_time``: the median over the steps after
the first, which traces; the host's read of the step's metrics included) and of a Keras
training step (``model.train_on_batch`` after warm-up), and their ratio. GradInit's step sees
two batches (S and S̃) of the given size. Targets: MetaInit ≤ 4×, GradInit ≤ 3×, GradCosine ≤ 3×.

Usage: python benchmarks/step_cost.py [--steps 30] [--batch 128]
"""
import argparse
import time


import common
import keras_metainit as km

METHODS = {"metainit": 4.0, "gradinit": 3.0, "gradcosine": 3.0}


def train_step_ms(model, x, y, n):
    model.compile("sgd", common.CE)
    for _ in range(3):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(n):
        model.train_on_batch(x, y)
    return (time.perf_counter() - t) / n * 1e3


def init_step_ms(make, method, data, batch, n):
    report = km.meta_initialize(make(), data, method, steps=n + 1, batch_size=batch, seed=0,
                                verbose=0)
    return report.step_time * 1e3, report.notes


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    (x, y), _, _ = common.fashion_mnist("small")
    data = (x[:2048], y[:2048])
    models = {"mlp 8x256": lambda: common.mlp(8, 256, 0), "cnn 4x32": lambda: common.cnn(4, 32, 0)}
    print(f"batch {args.batch}; {args.steps} timed steps per row")
    print("| model | step | ms/step | ratio to a training step | target |")
    print("|---|---|---|---|---|")
    for name, make in models.items():
        train = train_step_ms(make(), x[:args.batch], y[:args.batch], args.steps)
        print(f"| {name} | training step | {train:.1f} | 1.0 | |", flush=True)
        for method, target in METHODS.items():
            ms, notes = init_step_ms(make, method, data, args.batch, args.steps)
            xla = " (XLA fallback)" if any("XLA" in n for n in notes) else ""
            print(f"| {name} | {method}{xla} | {ms:.1f} | {ms / train:.2f} | ≤ {target:g} |",
                  flush=True)


if __name__ == "__main__":
    main()
