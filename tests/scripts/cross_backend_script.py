"""Cross-backend check, run by tests/test_cross_backend.py and tests/learned/test_jax.py in a
subprocess under one Keras backend (``KERAS_BACKEND`` set by the caller): the objectives, their scale gradients,
the diagnostics and ``meta_initialize``'s scales after :data:`STEPS` steps on fixed weights and
batches, written as JSON.

    KERAS_BACKEND=jax python tests/scripts/cross_backend_script.py WORKDIR OUT.json [--methods ...]
    KERAS_BACKEND=torch python tests/scripts/cross_backend_script.py WORKDIR OUT.json
    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python tests/scripts/cross_backend_script.py WORKDIR OUT.json --models mlp --data-parallel

``WORKDIR`` holds ``weights_<model>.npz`` and ``batch.npz``; whichever run comes first writes them
(NumPy draws, no backend involved) and the next reads them, so both backends see the same numbers.
"""
import argparse
import json
import os
import sys

import numpy as np

import keras  # noqa: E402  (KERAS_BACKEND is read here)

import keras_metainit as km  # noqa: E402
from keras_metainit import autodiff as ad  # noqa: E402
from keras_metainit import objectives  # noqa: E402
from keras_metainit.losses import resolve_loss  # noqa: E402
from keras_metainit.model_fn import make_loss_fn  # noqa: E402

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
N = 32
STEPS = 5  # meta_initialize's steps, the same seed on every backend


def build(name):
    if name == "mlp":
        return keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, "tanh"),
                                 keras.layers.Dense(16, "relu"), keras.layers.Dense(5)])
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="tanh"),
                             keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(),
                             keras.layers.Dense(5)])


def arrays(workdir, name, model):
    path = os.path.join(workdir, f"weights_{name}.npz")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        ws = []
        for v in model.weights:
            shape = tuple(v.shape)
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            scale = np.sqrt(1.5 / fan_in) if len(shape) > 1 else 0.1
            ws.append(rng.normal(0, scale, shape).astype("float32"))
        np.savez(path, *ws)
    with np.load(path) as f:
        model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])
    bpath = os.path.join(workdir, "batch.npz")
    if not os.path.exists(bpath):
        rng = np.random.default_rng(1)
        np.savez(bpath, mlp=rng.normal(size=(4 * N, 12)).astype("float32"),
                 cnn=rng.normal(size=(4 * N, 8, 8, 1)).astype("float32"),
                 y=rng.integers(0, 5, 4 * N).astype("int64"))
    with np.load(bpath) as f:
        return f[name], f["y"]


def scale_grad(fn, params, tuned, s):
    """``fn(params at scales s)`` and its gradient with respect to the scales."""

    def at(s_):
        p = list(params)
        for j, i in enumerate(tuned):
            p[i] = s_[j] * p[i]
        return fn(p)

    value, grad = ad.value_and_grad(at, s)
    return (float(keras.ops.convert_to_numpy(value)),
            np.asarray(keras.ops.convert_to_numpy(grad), np.float64).tolist())


def figures(name):
    keras.utils.set_random_seed(0)
    model = build(name)
    x, y = arrays(WORKDIR, name, model)
    batch = (keras.ops.convert_to_tensor(x[:N]), keras.ops.convert_to_tensor(y[:N]))
    other = (keras.ops.convert_to_tensor(x[N // 2:3 * N // 2]),
             keras.ops.convert_to_tensor(y[N // 2:3 * N // 2]))
    spec = resolve_loss(model, CE)
    params = [v.value for v in model.trainable_variables]
    tuned = [i for i, p in enumerate(params) if len(p.shape) >= 2]
    s = keras.ops.convert_to_tensor(np.array([0.9, 1.1, 1.05][:len(tuned)], "float32"))
    out = {}
    loss_eval = make_loss_fn(model, spec, training=False)
    loss_train = make_loss_fn(model, spec, training=True)
    out["gq"] = scale_grad(lambda p: objectives.gradient_quotient(loss_eval, p, batch, 1e-2)[0],
                           params, tuned, s)

    def gc_target(p):
        gc, gn, norms, _ = objectives.grad_cosine(loss_train, p, batch, 4, 0.2,
                                                  loss_train.examples_independent)
        return -gc - keras.ops.sum(norms)

    out["gc_target"] = scale_grad(gc_target, params, tuned, s)
    out["gc"] = scale_grad(lambda p: objectives.grad_cosine(loss_train, p, batch)[0],
                           params, tuned, s)

    def look(p):
        _, grads = objectives.gradient(loss_train, p, batch)
        return objectives.lookahead_loss(loss_train, p, grads, other, 0.1, "sgd", True)

    out["lookahead"] = scale_grad(look, params, tuned, s)
    # eps=1e-2: at the paper's 1e-5 the quotient divides by gradients near zero and float32
    # rounding differences between backends grow (measured 6.6e-4 relative on the CNN)
    out["diag_gq"] = km.gradient_quotient(model, (x[:N], y[:N]), CE, eps=1e-2)
    out["diag_gc"] = km.grad_cosine(model, (x[:N], y[:N]), CE)
    return out


def scales(name, method):
    keras.utils.set_random_seed(0)
    model = build(name)
    x, y = arrays(WORKDIR, name, model)
    options = {"metainit": {"lr": 0.05}, "gradinit": {"lr": 0.05, "gamma": 100.0},
               "gradcosine": {"lr": 0.05, "gamma": 100.0}}[method]
    data = None if name == "cnn" else (x, y)
    report = km.meta_initialize(model, data, method, loss=CE, steps=STEPS, seed=3, batch_size=N,
                                verbose=0, **options)
    return {"scales": [t["scale"] for t in report.tensors],
            "weights": [float(np.linalg.norm(np.asarray(v))) for v in model.get_weights()],
            "history": report.history, "kept_start": report.kept_start,
            "notes": list(report.notes)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("out")
    parser.add_argument("--methods", default="metainit,gradinit,gradcosine")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--data-parallel", action="store_true",
                        help="JAX: run under keras.distribution.DataParallel over every device")
    args = parser.parse_args()
    WORKDIR = args.workdir
    result = {"backend": keras.backend.backend()}
    if args.data_parallel:
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        result["devices"] = len(devices)
    for name in args.models.split(","):
        result[name] = figures(name)
        for method in args.methods.split(","):
            if not method:
                continue
            try:
                result[name][method] = scales(name, method)
            except Exception as e:  # reported, compared by the test
                result[name][method] = {"error": f"{type(e).__name__}: {e}"[:500]}
    with open(args.out, "w") as f:
        json.dump(result, f)
    sys.exit(0)
