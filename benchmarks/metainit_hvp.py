"""MetaInit with the exact Hessian-gradient product against the finite-difference one.

``MetaInit(hvp="finite_difference")`` computes ``Hg`` by a central difference of the gradient
along ``g/‖g‖`` (:func:`keras_metainit.objectives.hessian_gradient_fd`, Stan's step
``√ε·(1 + ‖θ‖)``), so its scale gradient is second order instead of third. Sections:

- ``point``: at one fixed point (He init, seed 0, a batch of 128 Fashion-MNIST images, ε = 1e-2),
  the gradient quotient and its scale gradient (one scale per kernel) by both products, for the
  relative step ``c`` of the difference at 0.01–100× Stan's ``√ε_mach``: the relative error of
  GQ, the cosine and the relative error of the scale gradient. Models: the 8×256 ReLU MLP in
  float32 and float64, and the same MLP with tanh (smooth) in float32.
- ``run``: ``meta_initialize(model, None, MetaInit(steps, hvp=...))`` on the 8×256 MLP and the
  4×32 CNN of ``step_cost.py`` for each seed (the seed builds the model and draws MetaInit's
  random batches), exact and finite-difference from the same seed, in one process: GQ along the
  run (each method's own), the exact GQ at the final scales on one fixed random probe batch, the
  scales after the run (max relative difference to the exact run of the same seed, beside the
  exact runs' spread over seeds), the compiled step (``report.step_time``) as a ratio to a
  training step timed right after it in the same process, and the first step
  (``report.trace_time``).
- ``pieces``: on the same MLP and CNN, the compiled GQ value and GQ with its scale gradient by
  both products, and a training step, timed in interleaved rounds in one process
  (``step_pieces.py``'s timing), with each one's first call (trace and compile).
- ``resnet``: ResNet50V2 (``weights=None``, 32×32×3, batch 16) with ``--resnet-steps`` steps per
  product, each in a fresh process: step ratio and first step.

Writes ``benchmarks/results/metainit_hvp.json`` (``--json``) and prints the tables.

Usage: python benchmarks/metainit_hvp.py [--sections point run pieces resnet] [--steps 100]
       [--seeds 0 1 2] [--models mlp cnn] [--resnet-steps 3]
"""
import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import record  # noqa: E402
import render  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_metainit as km  # noqa: E402
from keras_metainit import methods, objectives  # noqa: E402
from keras_metainit.experiments import data as datasets  # noqa: E402
from keras_metainit.experiments import models  # noqa: E402
from keras_metainit.experiments.training import CE  # noqa: E402
from keras_metainit.learned.core import scaled  # noqa: E402
from keras_metainit.losses import resolve_loss  # noqa: E402
from keras_metainit.model_fn import make_loss_fn  # noqa: E402
import step_pieces  # noqa: E402
from step_cost import train_step_ms  # noqa: E402

EPS = 1e-2  # MetaInit's default
HVPS = ("exact", "finite_difference")
BUILDERS = {"mlp": lambda seed: models.mlp(8, 256, seed=seed),
            "cnn": lambda seed: models.cnn(4, 32, seed=seed)}
LABELS = {"mlp": "8×256 MLP", "cnn": "4×32 CNN", "relu32": "8×256 ReLU MLP, float32",
          "tanh32": "8×256 tanh MLP, float32", "relu64": "8×256 ReLU MLP, float64"}


# ----------------------------------------------------------------------------------------------
# point: one fixed point, the step of the difference swept
# ----------------------------------------------------------------------------------------------
def _variant(name: str) -> keras.Model:
    """The 8×256 MLP at He init (seed 0): ``relu32``, ``relu64`` (the same weights in float64) or
    ``tanh32`` (the same weights, tanh hidden activations)."""
    model = models.mlp(8, 256, seed=0)
    if name == "relu32":
        return model

    def clone(layer):
        config = layer.get_config()
        if name == "tanh32" and config.get("activation") == "relu":
            config["activation"] = "tanh"
        if name == "relu64":
            config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    inputs = keras.Input(model.input_shape[1:], dtype="float64" if name == "relu64" else None)
    other = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    other.set_weights(model.get_weights())
    return other


def point(multipliers, x, y) -> dict:
    out = {}
    for name in ("relu32", "tanh32", "relu64"):
        model = _variant(name)
        dtype = model.trainable_variables[0].dtype
        loss_fn = make_loss_fn(model, resolve_loss(model, CE, x, y))
        weights = [v.value for v in model.trainable_variables]
        kernels = [i for i, v in enumerate(model.trainable_variables) if len(v.shape) >= 2]
        batch = (tf.constant(x.astype(dtype)), tf.constant(y))
        s = tf.ones([len(kernels)], dtype)
        root_eps = float(np.sqrt(np.finfo(dtype).eps))

        def value_and_scale_grad(hvp, step=None):
            @tf.function
            def f(s):
                with tf.GradientTape() as tape:
                    tape.watch(s)
                    gq = objectives.gradient_quotient(loss_fn, scaled(weights, kernels, s), batch,
                                                      EPS, hvp, step)[0]
                return gq, tape.gradient(gq, s)
            gq, grad = f(s)
            return float(gq), grad.numpy().astype("float64")

        exact, exact_grad = value_and_scale_grad("exact")
        rows = []
        mults = list(multipliers) + ([1e-4] if name == "relu64" else [])
        for m in sorted(mults):
            gq, grad = value_and_scale_grad("finite_difference", m * root_eps)
            rows.append({
                "step_x_sqrt_eps": m, "gq": gq, "gq_rel_error": abs(gq - exact) / exact,
                "grad_cosine": float(grad @ exact_grad / np.linalg.norm(grad)
                                     / np.linalg.norm(exact_grad)),
                "grad_rel_error": float(np.linalg.norm(grad - exact_grad)
                                        / np.linalg.norm(exact_grad))})
        out[name] = {"label": LABELS[name], "exact_gq": exact,
                     "exact_grad_norm": float(np.linalg.norm(exact_grad)), "rows": rows}
        print(f"{name} done", flush=True)
    return {"models": out}


# ----------------------------------------------------------------------------------------------
# run: MetaInit runs from the same seeds
# ----------------------------------------------------------------------------------------------
def _train_ms(model, x, y) -> float:
    """A training step's ms: the median of five short timings (the shared machine has spells)."""
    return float(np.median([train_step_ms(model, x, y, 5) for _ in range(5)]))


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _pairs(values):
    return [(values[i], values[j]) for i in range(len(values)) for j in range(i + 1, len(values))]


def runs(model_name: str, steps: int, seeds, x, y) -> dict:
    make = BUILDERS[model_name]
    probe = (np.random.default_rng(123).normal(size=(128,) + x.shape[1:]).astype("float32"),
             np.random.default_rng(124).integers(0, 10, 128))
    out = {}
    for seed in seeds:
        for hvp in HVPS:
            model = make(seed)
            report = km.meta_initialize(model, None, methods.MetaInit(steps=steps, hvp=hvp),
                                        seed=seed, verbose=0)
            exact_gq_after = km.gradient_quotient(model, probe, CE, eps=EPS)
            train_ms = _train_ms(model, x[:128], y[:128])
            out[f"{hvp}/{seed}"] = {
                "gq": report.history["gq"], "scales": list(report.scales.values()),
                "exact_gq_after": exact_gq_after, "step_ms": report.step_time * 1e3,
                "train_ms": train_ms, "ratio": report.step_time * 1e3 / train_ms,
                "trace_s": report.trace_time, "wall_s": report.wall_time}
            print(f"{model_name} {hvp} seed {seed} done", flush=True)

    def gq_end_gap(a, b):  # relative gap of the mean GQ over the last 10 steps
        return _max_rel([np.mean(a["gq"][-10:])], [np.mean(b["gq"][-10:])])

    ex = [out[f"exact/{s}"] for s in seeds]
    fd = [out[f"finite_difference/{s}"] for s in seeds]
    summary = {
        "scales_fd_vs_exact": [_max_rel(f["scales"], e["scales"]) for f, e in zip(fd, ex)],
        "scales_exact_seed_spread": [_max_rel(a["scales"], b["scales"]) for a, b in _pairs(ex)],
        "gq_last10_fd_vs_exact": [gq_end_gap(f, e) for f, e in zip(fd, ex)],
        "gq_last10_exact_seed_spread": [gq_end_gap(a, b) for a, b in _pairs(ex)],
        "exact_gq_after": {h: [out[f"{h}/{s}"]["exact_gq_after"] for s in seeds] for h in HVPS},
    }
    return {"label": f"{LABELS[model_name]}, {steps} steps", "runs": out, "summary": summary}


# ----------------------------------------------------------------------------------------------
# pieces: the compiled objectives alone, interleaved in one process
# ----------------------------------------------------------------------------------------------
PIECES = ("training step", "GQ value (g and Hg)", "GQ value, finite-difference Hg",
          "GQ + scale gradient (MetaInit)", "GQ + scale gradient (MetaInit, finite difference)")


def pieces(model_name: str, rounds: int, x, y) -> dict:
    every = step_pieces.pieces(model_name, tf.constant(x[:128]), tf.constant(y[:128]))
    first, times = step_pieces.interleaved({k: every[k] for k in PIECES}, rounds, 5)
    print(f"{model_name} done", flush=True)
    return {"label": LABELS[model_name], "times_ms": times, "first_call_s": first}


# ----------------------------------------------------------------------------------------------
# resnet: a fresh process per product
# ----------------------------------------------------------------------------------------------
def resnet_child(hvp: str, steps: int) -> dict:
    make = lambda: keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3),  # noqa: E731
                                                 classes=10)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 16)
    report = km.meta_initialize(make(), None, methods.MetaInit(steps=steps, hvp=hvp),
                                batch_size=16, seed=0, verbose=0)
    train_ms = _train_ms(make(), x, y)
    return {"step_ms": report.step_time * 1e3, "train_ms": train_ms,
            "ratio": report.step_time * 1e3 / train_ms, "trace_s": report.trace_time,
            "gq": report.history["gq"], "wall_s": report.wall_time}


def resnet(steps: int) -> dict:
    out = {"steps": steps}
    for hvp in HVPS:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--resnet-child", hvp,
                               str(steps)], capture_output=True, text=True)
        if proc.returncode:
            out[hvp] = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
        else:
            out[hvp] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"resnet50v2 {hvp} done", flush=True)
    return out


def main():
    if "--resnet-child" in sys.argv:
        i = sys.argv.index("--resnet-child")
        print(json.dumps(resnet_child(sys.argv[i + 1], int(sys.argv[i + 2]))))
        return
    tf.get_logger().setLevel("ERROR")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", nargs="+", default=["point", "run", "pieces", "resnet"],
                   choices=["point", "run", "pieces", "resnet"])
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=list(BUILDERS))
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--resnet-steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds of the pieces")
    p.add_argument("--multipliers", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0, 100.0],
                   help="steps of the difference in the point section, × √ε_mach")
    record.add_argument(p, "metainit_hvp")
    args = p.parse_args()
    path = record.path_for(args, "metainit_hvp")
    results = {}
    if path.exists():  # the sections not run now are kept
        results = {k: v for k, v in json.loads(path.read_text()).items() if k != "meta"}
    (x, y), _, _ = datasets.fashion_mnist("small", standardize=False)
    for section in args.sections:
        if section == "point":
            out = point(args.multipliers, x[:128], y[:128])
            parts = ["point"]
        elif section == "run":
            out = {"steps": args.steps, "seeds": args.seeds,
                   "models": {m: runs(m, args.steps, args.seeds, x, y) for m in args.models}}
            parts = ["agreement", "cost"]
        elif section == "pieces":
            out = {"rounds": args.rounds,
                   "models": {m: pieces(m, args.rounds, x, y) for m in args.models}}
            parts = ["pieces"]
        else:
            out = resnet(args.resnet_steps)
            parts = ["resnet"]
        results[section] = {"meta": record.metadata(), **out}
        record.write(path, results)
        for part in parts:
            print(render.render_metainit_hvp(results, part), end="\n\n", flush=True)

if __name__ == "__main__":
    main()
