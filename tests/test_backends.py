"""The suite in process on the backend in use (backend-neutral: CI runs this file under
TensorFlow, under JAX without TensorFlow, and under torch): analytic initializers,
weight-normalized layers and the warmup schedule train; every learned method runs (compiled once
where the backend compiles) and moves the scales; the guard keeps the start when every step is
worse and stops a diverging run without writing NaN; the layer-wise methods set layers; and what
only TensorFlow can do is refused naming the alternative."""
import keras
import numpy as np
import pytest
from keras import ops

import keras_metainit as km
from keras_metainit import autodiff as ad
from keras_metainit import scale_opt

pytestmark = pytest.mark.backend_neutral

# Traces of the compiled step: one on TensorFlow and JAX; torch runs it eagerly.
TRACES = 0 if ad.BACKEND == "torch" else 1


def _np(v):
    return np.asarray(ops.convert_to_numpy(v))


def _mlp(depth=3, width=16, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((10,))]
                            + [keras.layers.Dense(width, "relu") for _ in range(depth)]
                            + [keras.layers.Dense(4)])


def _xy(n=128):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 10)).astype("float32"), rng.integers(0, 4, n)


def test_analytic_initializers_layers_and_warmup_train():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        km.layers.WNConv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        km.layers.WNDense(16, activation="relu"),
        keras.layers.Dense(16, "relu", kernel_initializer=km.WNInit(gamma=2.0)),
        keras.layers.Dense(4),
    ])
    cols = np.linalg.norm(_np(model.layers[3].kernel.value), axis=0)
    np.testing.assert_allclose(cols, np.sqrt(2.0 * 16 / 16), rtol=1e-5)  # g = sqrt(γ·fan_in/fan_out)
    schedule = km.QuadraticWarmup(0.1, warmup_steps=4)
    assert abs(float(_np(schedule(2))) - 0.1 * (2 / 4) ** 2) < 1e-7
    model.compile(keras.optimizers.SGD(schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 64)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("data", ["numpy", None])
def test_metainit_moves_the_scales_and_writes_them(data):
    model = _mlp()
    w0 = [_np(v.value).copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, _xy() if data else None, "metainit", steps=5, lr=0.05,
                                seed=0, batch_size=32, verbose=0)
    assert report.steps_run == 5 and report.traces == TRACES
    assert report.after["gq"] < report.before["gq"] and not report.kept_start
    for t, v, w in zip(report.tensors, model.trainable_variables, w0):
        np.testing.assert_allclose(_np(v.value), t["scale"] * w, rtol=1e-6)


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


def test_the_guard_keeps_the_start_when_every_step_is_worse():
    model = _mlp()
    w0 = [_np(v.value).copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, None, _Uphill(steps=6), batch_size=32, seed=0, verbose=0)
    assert report.history["gq"][-1] > report.history["gq"][0]
    assert report.kept_start
    for v, w in zip(model.trainable_variables, w0):
        np.testing.assert_array_equal(_np(v.value), w)


def test_a_diverging_run_stops_and_writes_no_nan():
    model = _mlp()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        report = km.meta_initialize(model, None, _Diverging(steps=6), batch_size=32, seed=0,
                                    verbose=0)
    assert report.steps_run == 2 and report.stopped_early
    assert all(np.all(np.isfinite(_np(v.value))) for v in model.trainable_variables)


@pytest.mark.parametrize("method", ["gradinit", "gradcosine"])
def test_constrained_methods_run(method):
    model = _mlp()
    report = km.meta_initialize(model, _xy(), method, steps=3, seed=0, batch_size=32,
                                gamma=100.0, verbose=0)
    assert report.steps_run == 3 and report.traces == TRACES


@pytest.mark.parametrize("method", ["lsuv", "sylvester"])
def test_layerwise_methods_set_layers(method):
    model = _mlp()
    w0 = [_np(v.value).copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, _xy(256), method, seed=0, batch_size=128, verbose=0)
    assert any(r["status"] == "set" for r in report.layers)
    after = [_np(v.value) for v in model.trainable_variables]
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.allclose(a, b) for a, b in zip(after, w0))


@pytest.mark.skipif(ad.BACKEND == "tensorflow", reason="TensorFlow runs them")
def test_tensorflow_only_options_are_refused_naming_the_alternative():
    model = _mlp()
    with pytest.raises(NotImplementedError, match="micro_batches"):
        km.meta_initialize(model, None, "metainit", steps=1, batch_size=32, micro_batches=2,
                           verbose=0)
    with pytest.raises(ValueError, match="tf.distribute"):
        km.meta_initialize(model, None, "metainit", steps=1, batch_size=32, strategy=object(),
                           verbose=0)
    if ad.BACKEND == "jax":  # the JAX alternative is named
        with pytest.raises(ValueError, match="keras.distribution"):
            km.meta_initialize(model, None, "metainit", steps=1, batch_size=32,
                               strategy=object(), verbose=0)


@pytest.mark.skipif(ad.BACKEND != "torch", reason="torch's missing higher-order derivatives")
def test_a_layer_torch_cannot_differentiate_twice_is_refused_by_name():
    """``torch.cdist`` has a first derivative but no second: MetaInit stops before any step
    with the operation named, and the model is unchanged."""
    import torch

    class Distances(keras.layers.Layer):
        def build(self, shape):
            self.centers = self.add_weight(shape=(4, shape[-1]), initializer="random_normal")

        def call(self, x):
            return torch.cdist(x, self.centers, compute_mode="donot_use_mm_for_euclid_dist")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, "relu"), Distances()])
    w0 = [_np(v.value).copy() for v in model.trainable_variables]
    with pytest.raises(NotImplementedError, match="_cdist_backward.*KERAS_BACKEND=jax"):
        km.meta_initialize(model, _xy(), "metainit", steps=2, batch_size=32, seed=0, verbose=0)
    for v, w in zip(model.trainable_variables, w0):
        np.testing.assert_array_equal(_np(v.value), w)
