"""Step cost on each Keras backend, side by side on one machine.

Runs ``benchmarks/step_cost.py``'s measurements under ``KERAS_BACKEND=tensorflow``, ``jax`` and
``torch``, each backend in its own process, and prints for each model (an 8×256 ReLU MLP and a
4×32 CNN on 28×28×1 inputs, batch 128; ResNet50V2 on 32×32×3, batch 16, with ``--models ...
resnet``) the milliseconds per step, the ratio to a Keras training step on the same backend and
in the same process, and the first step's seconds (``report.trace_time``: tracing and compiling
the third-order step on TensorFlow and JAX; torch runs eagerly). A backend that is not installed
(a GPU image with JAX and no TensorFlow) or a method that cannot run prints its error in its
cells; the others still run. Device: whatever each backend picks (a GPU where it sees one).

Two TensorFlow settings run as backends of their own (issue "Speed, second round": ideas for the
first step on large models): ``tensorflow-no-grappler``, grappler's meta-optimizer switched off
for the whole process (``tf.config.optimizer.set_experimental_options``; the training step
runs without it too), and ``tensorflow-xla``, the learned step and the guard's evaluation
compiled with ``jit_compile=True`` (what the runner's fallback does, there for every model).

Usage: python benchmarks/step_cost_backends.py [--backends tensorflow jax torch]
                                               [--models mlp cnn resnet efficientnet densenet
                                                nasnet] [--methods ...] [--steps 10]
                                               [--timeout S] [--json PATH]
       # the first step on the large keras.applications models, TensorFlow beside JAX:
       python benchmarks/step_cost_backends.py --backends tensorflow jax --models resnet \
           efficientnet densenet nasnet --methods metainit --steps 1 --timeout 180 \
           --json benchmarks/results/large_models.json
       # the learned methods' first step on ResNet50V2 under TensorFlow's settings for it:
       python benchmarks/step_cost_backends.py --backends tensorflow tensorflow-no-grappler \
           tensorflow-xla --models resnet --methods metainit gradinit gradcosine --steps 1 \
           --timeout 420 --json benchmarks/results/first_step_settings.json
       python benchmarks/step_cost.py --backend jax     # TensorFlow and JAX
       python benchmarks/step_cost.py --backend torch   # TensorFlow and torch
Writes ``benchmarks/results/step_cost_backends.json`` (``--json``) and prints its table
(``render.py``'s, which docs/backends.md shows).
"""
import argparse
import json
import os
import re
import subprocess
import sys

import record
import render

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch")
#: TensorFlow with a setting for its compilation, measured as a backend of its own
TF_SETTINGS = ("tensorflow-no-grappler", "tensorflow-xla")
METHODS = ("metainit", "gradinit", "gradcosine")
LABELS = {"mlp": "MLP 8x256, batch 128", "cnn": "CNN 4x32, batch 128",
          "resnet": "ResNet50V2 32x32, batch 16", "efficientnet": "EfficientNetB0 32x32, batch 16",
          "densenet": "DenseNet121 32x32, batch 16", "nasnet": "NASNetMobile 32x32, batch 16"}
#: the keras.applications models (``weights=None``, 32×32×3, 10 classes, batch 16)
APPLICATIONS = {"resnet": "ResNet50V2", "efficientnet": "EfficientNetB0",
                "densenet": "DenseNet121", "nasnet": "NASNetMobile"}


def _model(name: str):
    """``(make, x, y, batch)`` for one of :data:`LABELS`."""
    import keras
    import numpy as np

    if name in APPLICATIONS:
        rng = np.random.default_rng(0)
        batch = 16
        build = getattr(keras.applications, APPLICATIONS[name])
        return (lambda: build(weights=None, input_shape=(32, 32, 3), classes=10),
                rng.normal(size=(8 * batch, 32, 32, 3)).astype("float32"),
                rng.integers(0, 10, 8 * batch), batch)
    from keras_metainit.experiments import data as datasets
    from keras_metainit.experiments import models

    (x, y), _, _ = datasets.fashion_mnist("small", standardize=False)
    batch = 128
    make = ((lambda: models.mlp(8, 256, seed=0)) if name == "mlp"
            else (lambda: models.cnn(4, 32, seed=0)))
    return make, x[:16 * batch], y[:16 * batch], batch


def _device() -> str:
    """The device the backend runs on (Keras's first device; on torch, which has no
    ``keras.distribution``, torch's own)."""
    try:
        import keras

        return str(keras.distribution.list_devices()[0])
    except (AttributeError, RuntimeError):
        import torch

        return f"cuda:0 ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def _error(e: Exception) -> str:
    """A table cell for an error: its type and message's start, and the op TensorFlow names."""
    op = re.search(r"\(op type: (\w+)\)", str(e))
    return f"{type(e).__name__}: {e}"[:80] + (f" … (op type: {op.group(1)})" if op else "")


def _apply(setting: str) -> None:
    """Switch on one of :data:`TF_SETTINGS` in this process."""
    import tensorflow as tf

    if setting == "tensorflow-no-grappler":
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    elif setting == "tensorflow-xla":
        from keras_metainit.learned import tensorflow as runner

        runner._compiled = lambda fn, signature, report: tf.function(
            fn, input_signature=signature, jit_compile=True)


def child(models, steps: int, methods=METHODS, setting=None) -> None:
    """Measure on the backend this process was started with; print one JSON line."""
    sys.path.insert(0, HERE)
    import step_cost

    if setting:
        _apply(setting)

    rows = {"device": _device()}
    for name in models:
        make, x, y, batch = _model(name)
        n = min(steps, 4) if name in APPLICATIONS else steps
        rows[name] = {"training step": {"ms": step_cost.train_step_ms(make(), x[:batch],
                                                                      y[:batch], n)}}
        for method in methods:
            try:
                ms, report = step_cost.init_step_ms(make, method, (x, y), batch, n)
                # the ratio's denominator: training steps in this process, right after
                train = step_cost.train_step_ms(make(), x[:batch], y[:batch], n)
                rows[name][method] = {"ms": ms, "train_ms": train, "first_s": report.trace_time}
            except Exception as e:  # shown in the table
                rows[name][method] = {"error": _error(e)}
        print(f"  {name}: {rows[name]}", file=sys.stderr, flush=True)
    print("RESULT " + json.dumps(rows), flush=True)


def _measure(backend: str, models, steps: int, methods=METHODS, timeout=None) -> dict:
    """One process for the backend (per model with a ``timeout`` in seconds, which a process
    that runs past it shows as its error)."""
    if timeout is not None and len(models) > 1:
        parts = [_measure(backend, [m], steps, methods, timeout) for m in models]
        merged = {k: v for part in parts for k, v in part.items()}
        merged["device"] = next((p["device"] for p in parts if p.get("device")), "?")
        return merged
    setting = ["--setting", backend] if backend in TF_SETTINGS else []
    env = dict(os.environ, KERAS_BACKEND=backend.split("-")[0], TF_CPP_MIN_LOG_LEVEL="3")
    try:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--steps",
                              str(steps), "--models", *models, "--methods", *methods, *setting],
                             env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        late = {"error": f"not done in {timeout:g} s"}
        return {m: {step: late for step in ("training step", *methods)} for m in models}
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if not line:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": last[:80]}
    return json.loads(line[-1][len("RESULT "):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", nargs="+", default=list(BACKENDS),
                   choices=BACKENDS + TF_SETTINGS)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=list(LABELS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per model and backend (one process each); a model that runs "
                        "past it shows 'not done in N s'")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--setting", choices=TF_SETTINGS, help=argparse.SUPPRESS)
    record.add_argument(p, "step_cost_backends")
    args = p.parse_args(argv)
    if args.child:
        return child(args.models, args.steps, args.methods, args.setting)
    results = {b: _measure(b, args.models, args.steps, args.methods, args.timeout)
               for b in args.backends}
    payload = record.write(record.path_for(args, "step_cost_backends"), {
        "steps": args.steps, "models": {m: LABELS[m] for m in args.models},
        "methods": list(args.methods), "backends": results})
    print(render.render_step_cost_backends(payload))


if __name__ == "__main__":
    main()
