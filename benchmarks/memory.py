"""Peak memory of MetaInit with and without micro-batches.

MetaInit differentiates a function of a Hessian-vector product (third order), so a step holds
several copies of every activation; the reference ports had to cut the batch for deep nets.
``meta_initialize(..., micro_batches=M)`` splits each batch into M parts run one at a time with
the same objective and scales. This script runs a few MetaInit steps on one batch in a fresh
process per setting and prints the process's peak resident memory (``ru_maxrss``), next to the
same process's peak after building the model (the baseline: TensorFlow, the model, the data),
the peak of TensorFlow's own allocator during ``meta_initialize`` (the children run with
``TF_CPU_ALLOCATOR_USE_BFC=true``, which makes the CPU allocator count its bytes), and the
seconds per step.

Usage: python benchmarks/memory.py [--depth 12] [--width 512] [--batch 4096]
       [--micro 1 2 4 8] [--steps 2] [--json PATH]
Writes ``benchmarks/results/memory.json`` (``--json``) and prints its table (``render.py``'s).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import record
import render


def child(args):
    """One setting, in this process: prints JSON with the peak RSS before and after the steps."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_metainit as km

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,))]
                             + [keras.layers.Dense(args.width, "relu") for _ in range(args.depth)]
                             + [keras.layers.Dense(10)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 784)).astype("float32")
    y = rng.integers(0, 10, args.batch)
    model.predict(x[:8], verbose=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tf.config.experimental.reset_memory_stats("CPU:0")
    t = time.perf_counter()
    report = km.meta_initialize(model, (x, y), "metainit", steps=args.steps,
                                batch_size=args.batch, micro_batches=args.micro[0], seed=0,
                                verbose=0)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tf_peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20
    print(json.dumps({"micro": args.micro[0], "base_mb": base, "peak_mb": peak, "tf_peak_mb": tf_peak,
                      "step_s": report.step_time, "total_s": seconds,
                      "gq_after": report.after["gq"]}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--micro", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    record.add_argument(p, "memory")
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(f"MetaInit, {args.steps} steps, MLP {args.depth} x {args.width} on 784 inputs, "
          f"batch {args.batch}; one process per row", flush=True)
    rows = []
    for micro in args.micro:
        cmd = [sys.executable, __file__, "--child", "--depth", str(args.depth), "--width",
               str(args.width), "--batch", str(args.batch), "--steps", str(args.steps),
               "--micro", str(micro)]
        env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  micro-batches {micro}: {rows[-1]}", flush=True)
    config = {"depth": args.depth, "width": args.width, "batch": args.batch, "steps": args.steps}
    payload = record.write(record.path_for(args, "memory"), {"config": config, "rows": rows})
    print(render.render_memory(payload))


if __name__ == "__main__":
    main()
