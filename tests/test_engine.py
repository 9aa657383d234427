"""engine.py: meta_initialize (with MetaInit) end to end: invariants, compilation, safety,
arguments, data forms, the report. (MetaInit's recovery: tests/methods/test_metainit.py.)"""
import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import engine, report as report_lib
from keras_metainit.data import DataError

from tests.nets import mlp


@pytest.fixture(scope="module")
def fmnist(fmnist_flat):
    return fmnist_flat


# ----------------------------------------------------------------------------- invariants
def test_only_norms_change(fmnist):
    model = mlp(bias="random_normal", scale=0.3)
    before = [v.numpy().copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, fmnist[:2], steps=20, verbose=0, method="metainit")
    after = [v.numpy() for v in model.trainable_variables]
    changed = 0
    for b, a, v in zip(before, after, model.trainable_variables):
        if len(v.shape) >= 2:
            cos = np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)
            assert cos > 1 - 1e-6, v.path
            changed += not np.allclose(a, b)
        else:
            np.testing.assert_array_equal(a, b)  # biases bit-identical
    assert changed > 0, "MetaInit did not change any norm"
    for row in report.tensors:
        if row["tuned"]:
            np.testing.assert_allclose(row["norm_after"], row["norm_before"] * row["scale"], rtol=1e-6)


def test_compiled_step_is_traced_once():
    report = km.meta_initialize(mlp(depth=2, width=8), None, steps=6, batch_size=16, verbose=0, method="metainit")
    assert report.steps_run == 6
    assert report.traces == 1


def test_dropout_off_and_batchnorm_untouched():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((20,)), keras.layers.Dense(16, "relu"), keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.5), keras.layers.Dense(4),
    ])
    x = np.random.default_rng(0).normal(size=(32, 20)).astype("float32")
    y = np.arange(32) % 4
    # Dropout off: two evaluations agree exactly.
    assert km.gradient_quotient(model, (x, y)) == km.gradient_quotient(model, (x, y))
    stats = [v.numpy().copy() for v in model.non_trainable_variables]
    km.meta_initialize(model, (x, y), steps=5, batch_size=16, verbose=0, method="metainit")
    for s, v in zip(stats, model.non_trainable_variables):
        np.testing.assert_array_equal(s, v.numpy())


# ----------------------------------------------------------------------------- safety
def test_nan_in_arrays_raises_and_names_it():
    x = np.ones((32, 784), "float32")
    x[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        km.meta_initialize(mlp(depth=1, width=8), (x, np.zeros(32)), "metainit", steps=2,
                           verbose=0)


def test_nan_batch_mid_run_raises_and_leaves_model_unchanged():
    model = mlp(depth=2, width=8)
    before = [v.numpy().copy() for v in model.trainable_variables]
    x = np.random.default_rng(0).normal(size=(64, 784)).astype("float32")
    x[40] = np.inf  # third batch of 16
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(64) % 10)).batch(16)
    with pytest.raises(DataError, match="NaN or Inf"):
        km.meta_initialize(model, ds, steps=10, verbose=0, method="metainit")
    for b, v in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())


def test_divergence_restores_last_good_state():
    model = mlp(depth=3, width=16)
    w0 = [v.numpy().copy() for v in model.trainable_variables]
    with pytest.warns(RuntimeWarning, match="non-finite"):
        report = km.meta_initialize(model, None, method=km.methods.MetaInit(lr=1e12, momentum=0.0),
                                    steps=50, batch_size=16, verbose=0)
    assert report.stopped_early and report.steps_run < 50
    for w, v, row in zip(w0, model.trainable_variables, report.tensors):
        assert np.all(np.isfinite(v.numpy()))
        np.testing.assert_allclose(v.numpy(), w * row["scale"], rtol=1e-6)
    batch = (np.random.default_rng(1).normal(size=(16, 784)), np.arange(16) % 10)
    assert np.isfinite(km.gradient_quotient(model, batch))


def test_keyboard_interrupt_writes_last_good_and_reraises(monkeypatch):
    model = mlp(depth=2, width=8)
    w0 = [v.numpy().copy() for v in model.trainable_variables]
    calls = {"n": 0}

    def interrupt(self, current, values):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(report_lib.Progress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        km.meta_initialize(model, None, steps=20, batch_size=16, verbose=0, method="metainit")
    moved = False
    for w, v in zip(w0, model.trainable_variables):
        a = v.numpy()
        assert np.all(np.isfinite(a))
        if w.ndim >= 2:
            ratio = np.linalg.norm(a) / np.linalg.norm(w)
            np.testing.assert_allclose(a, w * ratio, rtol=1e-5)
            moved |= abs(ratio - 1) > 1e-4
    assert moved, "the steps before the interrupt were lost"


# ----------------------------------------------------------------------------- arguments
def test_bad_arguments_are_named():
    model = mlp(depth=1, width=8)
    with pytest.raises(ValueError, match="steps"):
        km.meta_initialize(model, None, steps=0, method="metainit")
    with pytest.raises(ValueError, match="Unknown method"):
        km.meta_initialize(model, None, method="nope")
    with pytest.raises(ValueError, match="instance"):
        km.meta_initialize(model, None, method=km.methods.MetaInit(), lr=0.2)
    with pytest.raises(ValueError, match="eps"):
        km.methods.MetaInit(eps=-1)
    with pytest.raises(ValueError, match="empty"):
        km.meta_initialize(model, tf.data.Dataset.from_tensor_slices(
            (np.zeros((0, 784), "float32"), np.zeros(0))).batch(4), method="metainit")
    frozen = mlp(depth=1, width=8)
    for layer in frozen.layers:
        layer.trainable = False
    with pytest.raises(ValueError, match="no tensor"):
        km.meta_initialize(frozen, None, steps=2, method="metainit")


def test_method_resolution_like_optimizers():
    m = km.methods.get("metainit", steps=7, eps=1e-3)
    assert isinstance(m, km.methods.MetaInit) and m.steps == 7 and m.eps == 1e-3
    again = km.methods.deserialize(km.methods.serialize(m))
    assert again.get_config() == m.get_config()


# ----------------------------------------------------------------------------- data forms
@pytest.mark.parametrize("form", ["none", "xy", "x", "dataset", "unbatched", "tfds"])
def test_every_data_form(form, fmnist):
    x, y = fmnist[0][:64], fmnist[1][:64]
    model = mlp(depth=1, width=8, scale=0.5)
    if form == "tfds":
        import tensorflow_datasets as tfds

        with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
            model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                      keras.layers.Dense(8, "relu"), keras.layers.Dense(10)])
            report = km.meta_initialize(model, "mnist", steps=2, batch_size=16, verbose=0, method="metainit")
        assert "tfds:mnist" in report.data
        return
    data = {"none": None, "xy": (x, y), "x": x,
            "dataset": tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
            "unbatched": tf.data.Dataset.from_tensor_slices((x, y))}[form]
    report = model.meta_initialize(data, steps=3, batch_size=16, verbose=0, method="metainit")
    assert report.steps_run == 3 and report.traces == 1
    assert np.isfinite(report.after["gq"])
    assert any(abs(s - 1) > 1e-3 for s in report.scales.values())


def test_unbuilt_model_is_built_from_first_batch(fmnist):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(8, "relu"), keras.layers.Dense(10)])
    report = km.meta_initialize(model, fmnist[:2], steps=2, batch_size=16, verbose=0, method="metainit")
    assert model.built and report.steps_run == 2


def test_compiled_loss_is_used_and_reported():
    model = mlp(depth=1, width=8)
    model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    report = km.meta_initialize(model, None, steps=2, batch_size=8, verbose=0, method="metainit")
    assert "categorical_crossentropy" in report.loss and "compiled" in report.loss
    assert "onehot" in report.data


# ----------------------------------------------------------------------------- report
def test_report_print_dict_plot(tmp_path, capsys):
    model = mlp(depth=2, width=8, scale=0.5)
    report = model.meta_initialize(None, steps=4, batch_size=16, verbose=2, method="metainit")
    assert "4 steps" in capsys.readouterr().out
    text = str(report)
    assert "gq" in text and "dense" in text and "end-to-end gain" in text
    d = json.loads(json.dumps(report.to_dict()))
    assert len(d["history"]["gq"]) == 4 and d["method"] == "metainit"
    path = tmp_path / "report.png"
    report.plot(str(path))
    assert path.stat().st_size > 1000


def test_end_to_end_gain_is_one_for_he_kernels():
    """The gain is the product of ‖W‖ / E‖W_He‖: about 1 for He-normal Dense and Conv kernels."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(32, 3, kernel_initializer="he_normal", use_bias=False),
        keras.layers.Conv2D(32, 3, kernel_initializer="he_normal", use_bias=False),
        keras.layers.Flatten(), keras.layers.Dense(64, kernel_initializer="he_normal"),
    ])
    report = km.meta_initialize(model, None, steps=1, batch_size=4, verbose=0, loss="mse", method="metainit")
    assert 0.9 < report.end_to_end_gain["before"] < 1.1


def test_third_order_conv_graph_needs_no_xla_fallback():
    """Keras convolutions with bias: the third-order graph instantiates without XLA.

    Without the never-inlined forward pass, oneDNN's graph rewrite makes this graph cyclic in
    almost every run (TF 2.21 on CPU) and the engine has to fall back to XLA.
    """
    keras.utils.set_random_seed(0)
    conv = lambda s: keras.layers.Conv2D(4, 3, strides=s, padding="same", activation="relu")  # noqa: E731
    model = keras.Sequential([keras.Input((8, 8, 1)), conv(2), conv(1), conv(1), conv(1),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    report = km.meta_initialize(model, None, steps=2, batch_size=4, verbose=0, method="metainit")
    assert report.steps_run == 2
    assert not any("XLA" in n for n in report.notes), report.notes


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_computes_in_float32_and_keeps_the_policy(policy):
    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, "relu"),
                                 keras.layers.Dense(16, "relu"), keras.layers.Dense(4)])

    reference = build()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build()
        model.set_weights(reference.get_weights())
        report = km.meta_initialize(model, None, steps=3, batch_size=16, seed=0, verbose=0, method="metainit")
        assert keras.mixed_precision.global_policy().name == policy
        assert all(layer.dtype_policy.name == policy for layer in model.layers)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert any("float32" in n and policy in n for n in report.notes)
    ref = km.meta_initialize(reference, None, steps=3, batch_size=16, seed=0, verbose=0, method="metainit")
    assert np.isfinite(report.after["gq"])
    # float32 arithmetic: the same GQ as the float32 twin, not float16's three digits
    np.testing.assert_allclose(report.before["gq"], ref.before["gq"], rtol=1e-5)
    np.testing.assert_allclose(list(report.scales.values()), list(ref.scales.values()), rtol=1e-5)


def test_subclassed_model_without_training_argument_matches_its_functional_twin():
    """A subclassed ``call(self, x)`` takes no ``training``; Keras's ``__call__`` still hands it to
    the layers, so BatchNormalization uses batch statistics for GradCosine, as in the twin."""

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d1 = keras.layers.Dense(16, "relu")
            self.bn = keras.layers.BatchNormalization()
            self.d2 = keras.layers.Dense(3)

        def call(self, x):
            return self.d2(self.bn(self.d1(x)))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(256, 8)).astype("float32"), rng.integers(0, 3, 256)
    for method in ("metainit", "gradcosine"):
        keras.utils.set_random_seed(0)
        net = Net()
        net(x[:2])
        twin = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu"),
                                 keras.layers.BatchNormalization(), keras.layers.Dense(3)])
        twin.set_weights(net.get_weights())
        reports = [km.meta_initialize(m, (x, y), method, steps=2, seed=0, verbose=0)
                   for m in (net, twin)]
        for key, value in reports[1].before.items():
            assert reports[0].before[key] == pytest.approx(value, rel=1e-5), (method, key)
        for a, b in zip(net.get_weights(), twin.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_repeated_diagnostics_reuse_one_trace():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, "tanh"), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, 64))
    first = km.gradient_quotient(model, batch)
    assert km.gradient_quotient(model, batch) == first
    cache = model._keras_metainit_loss_fns
    assert len(cache) == 1
    assert next(iter(cache.values())).experimental_get_tracing_count() == 1
    km.grad_cosine(model, batch)  # training mode: a function of its own
    assert len(cache) == 2
    # another loss is another function, with another value
    mse = km.gradient_quotient(model, (batch[0], np.eye(3, dtype="float32")[batch[1]]),
                               loss=keras.losses.MeanSquaredError())
    assert len(cache) == 3 and mse != first


def test_no_retracing_warnings_from_repeated_calls(caplog):
    """Each call traces its own functions once; TensorFlow's per-code-object counter would call
    that 'frequent retracing' after five calls. Warnings about other functions still pass."""
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = np.zeros(64, "int64")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for _ in range(7):
            model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, "relu"),
                                      keras.layers.Dense(3)])
            km.meta_initialize(model, (x, y), "metainit", steps=1, verbose=0)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    own = engine._OwnTracingFilter()
    other = logging.LogRecord("tensorflow", logging.WARNING, "", 0, "5 out of the last 5 calls to "
                              "<function user_fn at 0x1> triggered tf.function retracing", (), None)
    assert own.filter(other)


def test_the_default_method_is_the_registrys_default_everywhere():
    """``meta_initialize(model, data)``, ``model.meta_initialize(data)`` and the callback all run
    :data:`keras_metainit.methods.DEFAULT` (``"auto"``: :func:`keras_metainit.choose.choose`'s
    pick, LSUV for an MLP)."""
    from keras_metainit.callbacks import MetaInitialize

    assert km.methods.DEFAULT == "auto"
    x = np.random.default_rng(0).standard_normal((64, 784)).astype("float32")
    y = np.arange(64) % 10
    a = km.meta_initialize(mlp(depth=2, width=16), (x, y), seed=0, verbose=0)
    model = mlp(depth=2, width=16)
    b = model.meta_initialize((x, y), seed=0, verbose=0)
    assert a.method == b.method == km.methods.LSUV().name
    assert MetaInitialize().method == km.methods.DEFAULT
    assert all(r["status"] == "set" for r in b.layers)


@pytest.mark.parametrize("method", [None, "lsuv", "sylvester", "metainit", "gradinit",
                                    "gradcosine"])
def test_nothing_to_initialize_is_a_value_error(method):
    """The default call (LSUV for this model) used to return a report on a model with no layer
    to set."""
    model = keras.Sequential([keras.Input((20,)), keras.layers.Activation("relu")])
    kwargs = {} if method is None else {"method": method}
    with pytest.raises(ValueError, match="nothing for|no tensor for"):
        model.meta_initialize(np.random.rand(64, 20).astype("float32"), verbose=0, **kwargs)
