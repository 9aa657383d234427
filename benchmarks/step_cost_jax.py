"""Step cost on Keras's JAX backend beside TensorFlow's, on the same machine.

Runs ``benchmarks/step_cost.py``'s measurements (an 8×256 ReLU MLP and a 4×32 CNN on 28×28×1
inputs, batch 128) once under ``KERAS_BACKEND=tensorflow`` and once under ``KERAS_BACKEND=jax``,
each in its own process, and prints milliseconds per step and the ratio to a Keras training step
on the same backend. A method that cannot run on a backend prints its error.

Usage: python benchmarks/step_cost_jax.py [--steps 30] [--batch 128] [--json PATH]
Writes ``benchmarks/results/step_cost_jax.json`` (``--json``) and prints its table
(``render.py``'s).
"""
import argparse
import json
import os
import subprocess
import sys

import record
import render

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax")
METHODS = ("metainit", "gradinit", "gradcosine")
MODELS = ("mlp 8x256", "cnn 4x32")


def child(steps: int, batch: int) -> None:
    """Measure on the backend this process was started with; print one JSON line."""
    sys.path.insert(0, HERE)
    import step_cost

    from keras_metainit.experiments import data as datasets
    from keras_metainit.experiments import models

    (x, y), _, _ = datasets.fashion_mnist("small", standardize=False)
    data = (x[:2048], y[:2048])
    makes = {"mlp 8x256": lambda: models.mlp(8, 256, seed=0),
             "cnn 4x32": lambda: models.cnn(4, 32, seed=0)}
    rows = {}
    for name, make in makes.items():
        train = step_cost.train_step_ms(make(), x[:batch], y[:batch], steps)
        rows[name] = {"training step": train}
        for method in METHODS:
            try:
                rows[name][method] = step_cost.init_step_ms(make, method, data, batch, steps)[0]
            except Exception as e:  # shown in the table
                rows[name][method] = f"{type(e).__name__}"
    print("RESULT " + json.dumps(rows), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    record.add_argument(p, "step_cost_jax")
    args = p.parse_args(argv)
    if args.child:
        return child(args.steps, args.batch)
    results = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, __file__, "--child", "--steps", str(args.steps),
                              "--batch", str(args.batch)], env=env, capture_output=True,
                             text=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not line:
            sys.exit(f"{backend} failed:\n{out.stderr[-2000:]}")
        results[backend] = json.loads(line[-1][len("RESULT "):])
    print(f"batch {args.batch}; {args.steps} timed steps per row; ratio = ms / the same "
          "backend's training step")
    payload = record.write(record.path_for(args, "step_cost_jax"), {
        "steps": args.steps, "batch": args.batch, "models": list(MODELS),
        "methods": list(METHODS), "backends": results})
    print(render.render_step_cost_jax(payload))


if __name__ == "__main__":
    main()
