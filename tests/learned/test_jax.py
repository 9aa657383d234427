"""Keras's JAX backend.

- Cross-backend (any in-process backend; run by CI's TensorFlow step): ``tests/scripts/jax_script.py`` in
  a subprocess under ``KERAS_BACKEND=tensorflow`` and ``KERAS_BACKEND=jax`` on the same saved
  weights and batches; GQ, GradCosine, GradInit's look-ahead and their scale gradients, the
  diagnostics and ``meta_initialize``'s scales agree to 1e-5 (relative, float32); and JAX under
  ``keras.distribution.DataParallel`` over two host devices sets the scales of one device.
- In-process (``KERAS_BACKEND=jax`` only; CI's JAX step): analytic initializers, weight-normalized
  layers and the warmup schedule, every learned method, the guard, layer-wise methods, errors.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (pip install 'keras-metainit[jax]')")

import keras_metainit as km  # noqa: E402
from keras_metainit import scale_opt  # noqa: E402

ON_JAX = keras.backend.backend() == "jax"
on_jax = pytest.mark.skipif(not ON_JAX, reason="needs KERAS_BACKEND=jax in this process "
                                               "(CI runs this file again under JAX)")
RTOL = 1e-5
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts", "jax_script.py")


def _run(backend, workdir, out, methods, env_extra=None, args=()):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    proc = subprocess.run([sys.executable, SCRIPT, str(workdir), str(out), "--methods", methods,
                           *args],
                          env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Where the first subprocess writes the weights and batches every later one reads."""
    if ON_JAX:
        pytest.skip("cross-backend subprocesses run in CI's TensorFlow step")
    return tmp_path_factory.mktemp("cross_backend")


@pytest.fixture(scope="module")
def both(workdir):
    methods = "metainit,gradinit,gradcosine"
    tf_out = _run("tensorflow", workdir, workdir / "tf.json", methods)
    jax_out = _run("jax", workdir, workdir / "jax.json", methods)
    assert (tf_out["backend"], jax_out["backend"]) == ("tensorflow", "jax")
    return tf_out, jax_out


@pytest.fixture(scope="module")
def data_parallel(both, workdir):
    """The MLP's runs again on JAX under ``keras.distribution.DataParallel`` over two host devices
    (``XLA_FLAGS=--xla_force_host_platform_device_count=2``), on the same weights and batches."""
    out = _run("jax", workdir, workdir / "jax_dp.json", "metainit,gradinit,gradcosine",
               {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, ["--models", "mlp",
                                                                          "--data-parallel"])
    return both[1], out


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(b, a, rtol=rtol, atol=0)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("what", ["gq", "gc", "gc_target", "lookahead"])
def test_objectives_and_scale_gradients_agree_across_backends(both, model, what):
    tf_out, jax_out = both
    (v_tf, g_tf), (v_jax, g_jax) = tf_out[model][what], jax_out[model][what]
    _close(v_tf, v_jax)
    assert np.all(np.asarray(g_tf) != 0)
    _close(g_tf, g_jax)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_diagnostics_agree_across_backends(both, model):
    tf_out, jax_out = both
    _close(tf_out[model]["diag_gq"], jax_out[model]["diag_gq"])
    for k in ("gc", "gn"):
        _close(tf_out[model]["diag_gc"][k], jax_out[model]["diag_gc"][k])


@pytest.mark.parametrize("model", ["mlp", "cnn"])  # cnn: data=None (random data)
@pytest.mark.parametrize("method", ["metainit",
                                    "gradinit",
                                    "gradcosine"])
def test_meta_initialize_sets_the_same_scales_on_both_backends(both, model, method):
    tf_out, jax_out = both
    a, b = tf_out[model][method], jax_out[model][method]
    assert "error" not in a, a
    assert "error" not in b, b
    assert np.any(np.abs(np.asarray(a["scales"]) - 1) > 1e-3)  # the run moved the scales
    _close(a["scales"], b["scales"])
    _close(a["weights"], b["weights"])
    assert a["kept_start"] == b["kept_start"]


@pytest.mark.parametrize("method", ["metainit", "gradinit", "gradcosine"])
def test_data_parallel_on_jax_sets_the_scales_of_one_device(data_parallel, method):
    one, dp = data_parallel
    assert dp["devices"] == 2
    a, b = one["mlp"][method], dp["mlp"][method]
    assert "error" not in b, b
    assert any("DataParallel, 2 device(s)" in n for n in b["notes"]), b["notes"]
    assert np.any(np.abs(np.asarray(a["scales"]) - 1) > 1e-3)
    _close(a["scales"], b["scales"])
    _close(a["weights"], b["weights"])


# ----------------------------------------------------------------------------------------------
# In process, under JAX
# ----------------------------------------------------------------------------------------------
def _mlp(depth=3, width=16, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((10,))]
                            + [keras.layers.Dense(width, "relu") for _ in range(depth)]
                            + [keras.layers.Dense(4)])


def _xy(n=128):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 10)).astype("float32"), rng.integers(0, 4, n)


@on_jax
def test_analytic_initializers_layers_and_warmup_train_on_jax():
    import jax

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        km.layers.WNConv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        km.layers.WNDense(16, activation="relu"),
        keras.layers.Dense(16, "relu", kernel_initializer=km.WNInit(gamma=2.0)),
        keras.layers.Dense(4),
    ])
    kernel = model.layers[3].kernel
    assert isinstance(kernel.value, jax.Array)
    cols = np.linalg.norm(np.asarray(kernel.value), axis=0)
    np.testing.assert_allclose(cols, np.sqrt(2.0 * 16 / 16), rtol=1e-5)  # g = sqrt(γ·fan_in/fan_out)
    schedule = km.QuadraticWarmup(0.1, warmup_steps=4)
    assert abs(float(schedule(2)) - 0.1 * (2 / 4) ** 2) < 1e-7
    model.compile(keras.optimizers.SGD(schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 64)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))


@on_jax
@pytest.mark.parametrize("data", ["numpy", None])
def test_metainit_runs_compiled_once_and_moves_the_scales(data):
    model = _mlp()
    w0 = [np.asarray(v.value).copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, _xy() if data else None, "metainit", steps=5, lr=0.05,
                                seed=0, batch_size=32, verbose=0)
    assert report.steps_run == 5 and report.traces == 1
    assert report.after["gq"] < report.before["gq"] and not report.kept_start
    for t, v, w in zip(report.tensors, model.trainable_variables, w0):
        np.testing.assert_allclose(np.asarray(v.value), t["scale"] * w, rtol=1e-6)


class _Uphill(km.methods.MetaInit):
    """Every step climbs the objective: the guard must keep the start."""

    def transform(self):
        def update(grads, state, scales, base_norms, constraint=None):
            return scales * (1.0 + 0.2 * keras.ops.sign(grads)), state

        return scale_opt.ScaleTransform(lambda scales, base_norms: {}, update)


class _Diverging(km.methods.MetaInit):
    """The third step's scales are NaN: the run stops and keeps the best before it."""

    def transform(self):
        def update(grads, state, scales, base_norms, constraint=None):
            t = state["t"] + 1.0
            bad = keras.ops.where(t >= 3.0, float("nan"), 1.0)
            return scales * 0.95 * bad, {"t": t}

        return scale_opt.ScaleTransform(lambda s, n: {"t": keras.ops.zeros([])}, update)


@on_jax
def test_the_guard_keeps_the_start_when_every_step_is_worse():
    model = _mlp()
    w0 = [np.asarray(v.value).copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, None, _Uphill(steps=6), batch_size=32, seed=0, verbose=0)
    assert report.history["gq"][-1] > report.history["gq"][0]
    assert report.kept_start
    for v, w in zip(model.trainable_variables, w0):
        np.testing.assert_array_equal(np.asarray(v.value), w)


@on_jax
def test_a_diverging_run_stops_and_writes_no_nan():
    model = _mlp()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        report = km.meta_initialize(model, None, _Diverging(steps=6), batch_size=32, seed=0,
                                    verbose=0)
    assert report.steps_run == 2 and report.stopped_early
    assert all(np.all(np.isfinite(np.asarray(v.value))) for v in model.trainable_variables)


@on_jax
@pytest.mark.parametrize("method", [
    "gradinit",
    "gradcosine",
])
def test_constrained_methods_run_on_jax(method):
    model = _mlp()
    report = km.meta_initialize(model, _xy(), method, steps=3, seed=0, batch_size=32,
                                gamma=100.0, verbose=0)
    assert report.steps_run == 3 and report.traces == 1


@on_jax
@pytest.mark.parametrize("method", ["lsuv", "sylvester"])
def test_layerwise_methods_run_on_jax(method):
    model = _mlp()
    w0 = [np.asarray(v.value).copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, _xy(256), method, seed=0, batch_size=128, verbose=0)
    assert any(r["status"] == "set" for r in report.layers)
    after = [np.asarray(v.value) for v in model.trainable_variables]
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.allclose(a, b) for a, b in zip(after, w0))


@on_jax
def test_tensorflow_only_options_are_refused_with_the_jax_alternative():
    model = _mlp()
    with pytest.raises(NotImplementedError, match="micro_batches"):
        km.meta_initialize(model, None, steps=1, batch_size=32, micro_batches=2, verbose=0, method="metainit")
    with pytest.raises(ValueError, match="keras.distribution"):
        km.meta_initialize(model, None, steps=1, batch_size=32, strategy=object(), verbose=0, method="metainit")
