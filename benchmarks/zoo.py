"""Every method on the Keras models users have: a table of status, first-step (trace) time, ms per
step, its ratio to one ``train_on_batch``, the objective before → after and whether the weights
stayed finite.

Models: keras.applications ResNet50V2, MobileNetV2, EfficientNetB0, ConvNeXtTiny, DenseNet121,
VGG16 (32×32, weights=None, classes=10), Xception (71×71); and the small models of
``tests/test_models.py``: a Transformer encoder block, LSTM and GRU classifiers, Conv1D + BN, a
subclassed model, a two-input / two-output model, Rescaling + Normalization.

    python benchmarks/zoo.py --quick                       # the small models only (minutes)
    python benchmarks/zoo.py                               # everything (long on a CPU)
    python benchmarks/zoo.py --models vgg16,lstm --methods metainit --steps 5 --batch 32 \
        --json /tmp/zoo.json

Writes ``benchmarks/results/zoo.json`` (``--quick``: ``zoo_small.json``; ``--json PATH`` for
another file, e.g. for a run of a few models) and prints the tables (``render.py``'s).

Objective: MetaInit ``gq``; GradInit ``lookahead``; GradCosine ``gc`` (and ``gn``); LSUV and
Sylvester: the layers set, of those in the report. "trace s" is ``report.trace_time``: the first
step, tracing and compiling included (before 6274119, also the start's evaluation) (for layer-wise methods, the whole
run); "ms/step" the median of the later steps (``report.step_time``); "x fit" its ratio to the median
``train_on_batch`` time of the same batch size (SGD, the same loss).
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_metainit as km  # noqa: E402
import record  # noqa: E402
import render  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _small_models():
    """The builders of tests/test_models.py (one definition of the small models)."""
    spec = importlib.util.spec_from_file_location("_zoo_test_models",
                                                  ROOT / "tests" / "test_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMALL = _small_models()


def _app(name, size=32):
    def build():
        cls = getattr(keras.applications, name)
        return cls(weights=None, input_shape=(size, size, 3), classes=10)
    return build


LARGE = {
    "resnet50v2": _app("ResNet50V2"),
    "mobilenetv2": _app("MobileNetV2"),
    "efficientnetb0": _app("EfficientNetB0"),
    "convnexttiny": _app("ConvNeXtTiny"),
    "densenet121": _app("DenseNet121"),
    "vgg16": _app("VGG16"),
    "xception": _app("Xception", 71),
}
MODELS = {**LARGE, **SMALL.MODELS}
METHODS = ["metainit", "gradinit", "gradcosine", "lsuv", "sylvester"]
HEADLINE = {"metainit": "gq", "gradinit": "lookahead", "gradcosine": "gc"}


def data_for(name, model, n):
    """NumPy ``(x, y)`` of ``n`` examples for the model (uint8 images for the applications)."""
    if name in LARGE:
        rng = np.random.default_rng(0)
        size = model.inputs[0].shape[1]
        return (rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                rng.integers(0, 10, n))
    data = SMALL.data_for(name, model, n=n)
    if data is None:  # draw the engine's random data once, to time train_on_batch on it too
        ds, _, _ = km.data.make_dataset(None, model, batch_size=n, seed=0)
        x, y = next(iter(ds))
        data = (keras.tree.map_structure(np.asarray, x), keras.tree.map_structure(np.asarray, y))
    return data


def fit_ms(model, data, batch, loss_spec, repeats=5):
    """Median ms of ``train_on_batch`` on one batch (a clone, so the model is untouched)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    losses = [o.fn for o in loss_spec.outputs]
    weights = [1.0 if o.weight is None else o.weight for o in loss_spec.outputs]
    if len(losses) == 1:
        clone.compile(keras.optimizers.SGD(1e-3), losses[0])
    else:
        clone.compile(keras.optimizers.SGD(1e-3), losses, loss_weights=weights)
    x, y = keras.tree.map_structure(lambda a: a[:batch], data)
    if isinstance(y, dict) and not isinstance(clone.outputs, dict):
        names = loss_spec.output_names
        y = [y[k] for k in names]
    clone.train_on_batch(x, y)  # trace
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clone.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def run_one(name, method, steps, batch):
    keras.utils.set_random_seed(0)
    row = {"model": name, "method": method}
    try:
        model = MODELS[name]()
        data = data_for(name, model, max(4 * batch, 64))
        started = time.perf_counter()
        with warnings.catch_warnings():  # skipped layers are in the report; keep the table
            warnings.simplefilter("ignore", UserWarning)
            report = km.meta_initialize(model, data, method=method,
                                        steps=steps if method in HEADLINE else None,
                                        batch_size=batch, seed=0, verbose=0)
        row["wall s"] = time.perf_counter() - started
        finite = all(np.all(np.isfinite(np.asarray(v.numpy(), np.float64)))
                     for v in model.weights)
        row["finite"] = "yes" if finite else "NO"
        if method in HEADLINE:
            key = HEADLINE[method]
            row["objective"] = f"{key} {report.before[key]:.4g} -> {report.after[key]:.4g}"
            if method == "gradcosine":
                row["objective"] += f" (gn {report.before['gn']:.3g} -> {report.after['gn']:.3g})"
            row["ms/step"] = 1e3 * report.step_time
            row["trace s"] = report.trace_time
            spec = km.data.make_dataset(data, model, batch_size=batch)[2]
            fit = fit_ms(model, data, batch, spec)
            row["fit ms"] = fit
            row["x fit"] = row["ms/step"] / fit
        else:
            statuses = [str(e.get("status", "")) for e in report.layers]
            done = [st for st in statuses if st.startswith("set")]
            row["objective"] = f"{len(done)} of {len(statuses)} layers set"
            qualified = sum(st != "set" for st in done)  # ridge, a fallback code, not converged
            if qualified:
                row["objective"] += f" ({qualified} with a note)"
            skipped = sorted({st.split(":")[1].strip()[:40] for st in statuses
                              if st.startswith("skipped")})
            if skipped:
                row["objective"] += "; skipped: " + "; ".join(skipped)
            row["trace s"] = row["wall s"]
        row["status"] = "ok" if report.stopped_early is None else f"stopped: {report.stopped_early}"
    except Exception as e:  # a table row, not a crash
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        row["status"] = msg[:110]
        if os.environ.get("ZOO_TRACEBACK"):
            traceback.print_exc()
    return row


COLUMNS = [("model", 16, "s"), ("method", 10, "s"), ("trace s", 8, ".1f"), ("ms/step", 9, ".1f"),
           ("fit ms", 8, ".1f"), ("x fit", 6, ".2f"), ("finite", 6, "s"), ("objective", 46, "s"),
           ("status", 0, "s")]


def fmt(row):
    cells = []
    for key, width, spec in COLUMNS:
        value = row.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            text = "-"
        else:
            text = format(value, spec) if isinstance(value, (int, float)) else str(value)
        cells.append(text.ljust(width) if width else text)
    return " ".join(cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help=f"comma-separated, of {','.join(MODELS)}")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="only the small models")
    record.add_argument(parser, "zoo")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else list(SMALL.MODELS if args.quick else MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(MODELS)}")
    methods = args.methods.split(",")
    print(f"keras {keras.__version__}, steps {args.steps}, batch {args.batch}")
    print(fmt({k: k for k, _, _ in COLUMNS}))
    rows = []
    for name in names:
        for method in methods:
            row = run_one(name, method, args.steps, args.batch)
            rows.append(row)
            print(fmt(row), flush=True)
    payload = record.write(record.path_for(args, "zoo_small" if args.quick else "zoo"),
                           {"steps": args.steps, "batch": args.batch, "rows": rows})
    for kind in ("learned", "layerwise"):
        print("\n" + render.render_zoo(payload, kind=kind))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
