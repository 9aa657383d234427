"""Cost of a learned-initialization step against a training step: time, trace time and memory.

For an 8×256 ReLU MLP and a 4×32 CNN on 28×28×1 inputs (batch 128) and ResNet50V2
(``weights=None``, 32×32×3, batch 16), each setting in a fresh process (TensorFlow's CPU
allocator counting its bytes, ``TF_CPU_ALLOCATOR_USE_BFC=true``), prints:

- the training step (``model.train_on_batch`` after warm-up): ms, and the allocator's peak;
- per method (MetaInit, GradInit, GradCosine): ms per step (the report's ``step_time``, the
  median after the first step), its ratio to a training step timed in the same process right
  after it (in brackets: that step's ms; the machine's speed may differ between processes, the
  training row's ms is only the memory row's), the first step's seconds
  (``report.trace_time``: tracing and compiling the third-order graph), and the allocator's
  peak during ``meta_initialize`` as a ratio to the training step's;
- per method, the wall time per step as a user times it: the wall time of ``meta_initialize``
  with ``--wall-steps`` long steps minus that with the short ones, per step (default 60 and 10,
  fresh models: tracing cancels), as a ratio to the training step, with the shares of the
  best-scales guard's checks (``report.guard_time``) and of waiting for batches
  (``report.data_time``) in that difference.

Targets (issue "Speed, second round"), shown in the table: the wall time per step as users wait,
MetaInit ≤ 4× a training step on the MLP and ≤ 5× on the CNN, GradInit ≤ 2.5×, GradCosine ≤ 3×;
the first step ≤ 30 s on ResNet50V2; peak memory ≤ 3× a training step's on the MLP and CNN.

On the MLP and CNN each method runs in ``--repeats`` fresh processes (3) and the run of median
ratio is shown, with the range: on a shared VM the ratio of one run moves by tens of percent.

Usage: python benchmarks/step_cost.py [--models mlp cnn resnet] [--methods ...] [--steps 10]
       [--json PATH]   # default benchmarks/results/step_cost.json; render.py's table
       python benchmarks/step_cost.py --backend jax|torch [--models mlp cnn resnet]
           # that backend beside TensorFlow: ms, ratio and first step (step_cost_backends.py,
           # which writes benchmarks/results/step_cost_backends.json)
"""
import argparse
import json
import os
import subprocess
import sys
import time

import record
import render

TARGETS = {
    "mlp": {"metainit": "wall ≤ 4×", "gradinit": "wall ≤ 2.5×", "gradcosine": "wall ≤ 3×"},
    "cnn": {"metainit": "wall ≤ 5×", "gradinit": "wall ≤ 2.5×", "gradcosine": "wall ≤ 3×"},
    "resnet": {m: "first step ≤ 30 s" for m in ("metainit", "gradinit", "gradcosine")},
}
LABELS = {"mlp": "MLP 8x256, batch 128", "cnn": "CNN 4x32, batch 128",
          "resnet": "ResNet50V2 32x32, batch 16"}


def train_step_ms(model, x, y, n: int) -> float:
    """Milliseconds per ``model.train_on_batch`` (SGD, the same loss) after three warm-up steps."""
    from keras_metainit.experiments.training import CE

    model.compile("sgd", CE)
    for _ in range(3):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(n):
        model.train_on_batch(x, y)
    return (time.perf_counter() - t) / n * 1e3


def init_step_ms(make, method: str, data, batch: int, n: int):
    """``(ms per step, report)`` of ``meta_initialize`` with ``n`` timed steps after the first."""
    import keras_metainit as km

    report = km.meta_initialize(make(), data, method, steps=n + 1, batch_size=batch, seed=0,
                                verbose=0)
    return report.step_time * 1e3, report


def wall_per_step(make, method: str, data, batch: int, short: int, long: int) -> dict:
    """Wall seconds per step of ``meta_initialize`` as a user times it: ``long`` steps minus
    ``short`` steps (each on a fresh model, after an untimed run of ``short`` steps that warms
    the process up), per step, and the guard's and the input's shares of that difference."""
    import keras_metainit as km

    runs = [km.meta_initialize(make(), data, method, steps=n, batch_size=batch, seed=0,
                               verbose=0) for n in (short, short, long)][1:]
    wall = runs[1].wall_time - runs[0].wall_time
    return {"wall_ms": wall / (long - short) * 1e3, "wall_steps": [short, long],
            "guard_share": (runs[1].guard_time - runs[0].guard_time) / wall,
            "data_share": (runs[1].data_time - runs[0].data_time) / wall}


def child(model_name: str, method: str, steps: int, wall_steps=None) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from keras_metainit.experiments import data, models
    import keras
    import numpy as np
    import tensorflow as tf

    if model_name == "resnet":
        def make():
            return keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3),
                                                 classes=10)
        rng = np.random.default_rng(0)
        batch = 16
        x = rng.normal(size=(8 * batch, 32, 32, 3)).astype("float32")
        y = rng.integers(0, 10, 8 * batch)
    else:
        def make():
            return (models.mlp(8, 256, seed=0) if model_name == "mlp"
                    else models.cnn(4, 32, seed=0))
        (x, y), _, _ = data.fashion_mnist("small", standardize=False)
        batch = 128
        x, y = x[:16 * batch], y[:16 * batch]
    make().predict(x[:batch], verbose=0)  # TensorFlow and Keras warmed up outside the peak
    tf.config.experimental.reset_memory_stats("CPU:0")
    if method == "train":
        ms = train_step_ms(make(), x[:batch], y[:batch], steps)
        return {"ms": ms, "peak_mb": tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20}
    ms, report = init_step_ms(make, method, (x, y), batch, steps)
    peak_mb = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20
    wall = wall_per_step(make, method, (x, y), batch, *wall_steps) if wall_steps else {}
    # the ratio's denominator: training steps in this process, right after the method's steps,
    # so that a change in the shared machine's speed between processes does not enter the ratio
    train_ms = train_step_ms(make(), x[:batch], y[:batch], steps)
    return {"ms": ms, "train_ms": train_ms, "trace_s": report.trace_time, "peak_mb": peak_mb,
            "notes": report.notes, **wall}


def run_child(model_name: str, method: str, steps: int, wall_steps=None) -> dict:
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", model_name, method,
                          str(steps), *map(str, wall_steps or [])], env=env, capture_output=True,
                         text=True)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        name, method, steps = sys.argv[i + 1], sys.argv[i + 2], int(sys.argv[i + 3])
        wall_steps = [int(n) for n in sys.argv[i + 4:i + 6]]
        print(json.dumps(child(name, method, steps, wall_steps)))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["mlp", "cnn", "resnet"], choices=list(TARGETS))
    p.add_argument("--methods", nargs="+", default=["metainit", "gradinit", "gradcosine"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--wall-steps", type=int, nargs=2, default=[10, 60], metavar=("SHORT", "LONG"),
                   help="the wall time per step is that of LONG steps minus SHORT steps, per "
                        "step (ResNet50V2: not measured)")
    p.add_argument("--repeats", type=int, default=3,
                   help="fresh processes per method on the MLP and CNN; the run of median ratio "
                        "is shown with the range (ResNet50V2: one)")
    p.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default="tensorflow",
                   help="jax or torch: that backend beside TensorFlow, each in its own process "
                        "(benchmarks/step_cost_backends.py; the MLP and CNN unless --models "
                        "is given)")
    record.add_argument(p, "step_cost")
    args = p.parse_args()
    if args.backend != "tensorflow":
        import step_cost_backends  # beside this script

        models = args.models if "--models" in sys.argv else ["mlp", "cnn"]
        return step_cost_backends.main(["--backends", "tensorflow", args.backend, "--models",
                                        *models, "--steps", str(args.steps)]
                                       + (["--json", args.json] if args.json else []))
    print(f"{args.steps} timed steps per row; each run a fresh process; MLP and CNN rows: the "
          f"run of median ratio of {args.repeats}")
    models = {}
    for name in args.models:
        steps = min(args.steps, 4) if name == "resnet" else args.steps
        entry = models[name] = {"label": LABELS[name], "targets": TARGETS[name], "steps": steps,
                                "train": run_child(name, "train", steps), "methods": {}}
        print(f"  {LABELS[name]}, training step: {entry['train']}", flush=True)
        if "error" in entry["train"]:
            continue
        repeats = 1 if name == "resnet" else args.repeats
        for method in args.methods:
            runs = entry["methods"][method] = []
            for _ in range(repeats):
                runs.append(run_child(name, method, steps,
                                      None if name == "resnet" else args.wall_steps))
                print(f"  {LABELS[name]}, {method}: {runs[-1]}", flush=True)
    payload = record.write(record.path_for(args, "step_cost"),
                           {"steps": args.steps, "repeats": args.repeats,
                            "wall_steps": args.wall_steps, "models": models})
    print(render.render_step_cost(payload))


if __name__ == "__main__":
    main()
