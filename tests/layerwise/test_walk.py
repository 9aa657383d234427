"""The layer walk on every kind of model: subclassed, nested, shared layers, depthwise and
separable convolutions, custom layers, restore on error."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import layerwise
from keras_metainit.data import DataError
from keras_metainit.datasets import load_fashion_mnist
from keras_metainit.layerwise import LayerwiseError
from keras_metainit.methods import LSUV, Sylvester
from tests.layerwise.util import (SPARSE, assert_unchanged, images, mlp, run_lsuv, run_sylvester,
                                  stream, weights)


def preact_var(model, layer, x, call=0):
    """Variance of the layer's output with its activation off, on its input read independently
    (a forward hook by hand, without the package's machinery)."""
    seen = []
    original = type(layer).call

    def spy(self, inputs, *a, **kw):
        if self is layer:
            seen.append(np.asarray(inputs))
        return original(self, inputs, *a, **kw)

    type(layer).call = spy
    try:
        model(x, training=False)
    finally:
        type(layer).call = original
    saved = layer.activation
    layer.activation = keras.activations.linear
    try:
        return float(np.var(np.asarray(layer(seen[call]), np.float64)))
    finally:
        layer.activation = saved


class Block(keras.layers.Layer):
    """conv -> BN -> relu -> conv, a residual add: two kernels inside a layer."""

    def __init__(self, filters, **kw):
        super().__init__(**kw)
        self.c1 = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")
        self.bn = keras.layers.BatchNormalization()
        self.c2 = keras.layers.Conv2D(filters, 3, padding="same")

    def call(self, x, training=None):
        return x + self.c2(self.bn(self.c1(x), training=training))


class Net(keras.Model):
    """A subclassed model with a block, a nested Sequential and a Dropout."""

    def __init__(self):
        super().__init__()
        self.stem = keras.layers.Conv2D(8, 3, padding="same", activation="relu")
        self.block = Block(8)
        self.head = keras.Sequential([keras.layers.GlobalAveragePooling2D(),
                                      keras.layers.Dense(16, activation="relu"),
                                      keras.layers.Dropout(0.5), keras.layers.Dense(4)])

    def call(self, x, training=None):
        return self.head(self.block(self.stem(x), training=training), training=training)


def test_subclassed_model_with_a_block_and_a_nested_model_is_set():
    keras.utils.set_random_seed(0)
    model, x = Net(), images()
    model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing skipped
        report = km.meta_initialize(model, x, method="lsuv", seed=0, verbose=0)
    assert len(report.layers) == 5  # stem, block's two convs, the nested model's two Dense
    assert [r["status"] for r in report.layers] == ["set"] * 5
    kernels = [model.stem, model.block.c1, model.block.c2, model.head.layers[1],
               model.head.layers[3]]
    assert [r["name"] for r in report.layers] == [k.name for k in kernels]  # call order
    for layer in kernels:
        assert abs(preact_var(model, layer, x) - 1) < 0.1, layer.name
    rows = LSUV().run(model, stream(x), SPARSE, seed=0)
    assert len(rows) == 5


@pytest.mark.parametrize("method", [LSUV(tol=0.05), Sylvester(latent="random")])
def test_depthwise_and_separable_convolutions_are_set(method):
    keras.utils.set_random_seed(0)
    inp = keras.Input((9, 9, 4))
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw",
                                     bias_initializer=keras.initializers.RandomNormal(0.5, 0.2))(inp)
    h = keras.layers.SeparableConv2D(6, 3, strides=2, name="sep", activation="relu")(h)
    h = keras.layers.SeparableConv1D(5, 2, name="sep1d")(keras.layers.Reshape((16, 6))(h))
    model = keras.Model(inp, h)
    x = images(64, 9, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # reading a kernel variable into NumPy must not warn (NumPy 2 and TF variables)
        warnings.simplefilter("error", DeprecationWarning)
        rows = method.run(model, stream(x), SPARSE, seed=0)
    assert [r["name"] for r in rows] == ["dw", "sep", "sep1d"]
    tol = 0.05 if isinstance(method, LSUV) else 1e-3
    for row in rows:
        assert row["status"] == "set", row
        layer = model.get_layer(row["name"])
        assert abs(preact_var(model, layer, x) - 1) < tol, row
    sep = model.get_layer("sep")  # the depthwise stage of a separable conv has unit variance too
    dw_in = layerwise.layer_input(model, sep, x)
    dw_out = keras.ops.depthwise_conv(dw_in, sep.depthwise_kernel, 2, "valid")
    assert abs(np.var(np.asarray(dw_out)) - 1) < tol


def test_shared_layer_is_set_from_all_its_calls():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12,))
    shared = keras.layers.Dense(12, activation="tanh", name="shared")
    h = shared(shared(inp))
    model = keras.Model(inp, keras.layers.Dense(3, name="out")(h))
    x = np.random.default_rng(0).standard_normal((128, 12)).astype(np.float32) * 3
    rows = LSUV(tol=0.02).run(model, stream(x), SPARSE, seed=0)
    assert rows[0]["name"] == "shared" and rows[0]["calls"] == 2 and rows[0]["status"] == "set"
    pooled = (preact_var(model, shared, x, 0) + preact_var(model, shared, x, 1)) / 2
    assert abs(pooled - 1) < 0.1  # over both calls (zero bias: both zero-mean)
    assert abs(rows[0]["var_after"] - 1) < 0.02


def test_transposed_convolution_lsuv_sets_it_sylvester_skips_it():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 5, 3))
    model = keras.Model(inp, keras.layers.Conv2DTranspose(4, 3, strides=2, name="up")(inp))
    x = images(32, 5, 3)
    rows = LSUV().run(model, stream(x), SPARSE, seed=0)
    assert rows[0]["status"] == "set" and abs(rows[0]["var_after"] - 1) < 0.1
    with pytest.warns(UserWarning, match="'up'.*no matrix view"):
        rows = Sylvester().run(model, stream(x), SPARSE, seed=0)
    assert rows[0]["status"].startswith("skipped: no matrix view")


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_every_layer_is_restored_on_any_error(monkeypatch, error):
    keras.utils.set_random_seed(0)
    model, x = Net(), images()
    model(x)
    before = [v.numpy().copy() for v in model.weights]
    calls = []
    real = LSUV.set_layer

    def interrupted(self, target, *a, **kw):
        calls.append(target.layer.name)
        if len(calls) == 4:  # three layers already set, inside a block and a nested model
            raise error("stop")
        return real(self, target, *a, **kw)

    monkeypatch.setattr(LSUV, "set_layer", interrupted)
    with pytest.raises(error):
        km.meta_initialize(model, x, method="lsuv", verbose=0)
    assert len(calls) == 4
    for b, v in zip(before, model.weights):
        np.testing.assert_array_equal(b, v.numpy(), err_msg=v.path)
    for layer in model._flatten_layers():
        assert "call" not in layer.__dict__  # no interception left behind


def test_a_model_with_a_dict_of_inputs():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((6,), name="a"), keras.Input((4, 4, 2), name="b")
    hb = keras.layers.Flatten()(keras.layers.Conv2D(3, 2, name="conv")(b))
    h = keras.layers.Concatenate()([keras.layers.Dense(5, name="da")(a), hb])
    model = keras.Model({"a": a, "b": b}, keras.layers.Dense(2, name="out")(h))
    rng = np.random.default_rng(0)
    x = {"a": rng.standard_normal((64, 6)).astype(np.float32),
         "b": rng.standard_normal((64, 4, 4, 2)).astype(np.float32)}
    data = tf.data.Dataset.from_tensors((x, np.zeros(64, np.int64))).repeat()
    for method in (LSUV(), Sylvester()):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            rows = method.run(model, data, SPARSE, seed=0)
        assert sorted(r["name"] for r in rows) == ["conv", "da", "out"]
        assert all(r["status"] == "set" and abs(r["var_after"] - 1) < 0.1 for r in rows)


class Linear(keras.layers.Layer):
    """x @ w: a custom layer with a kernel (no view registered)."""

    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units = units

    def build(self, shape):
        self.w = self.add_weight((shape[-1], self.units))

    def call(self, x):
        return x @ self.w


def test_nan_activations_name_the_layer_and_leave_the_model_unchanged():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12,))
    h = Linear(8, name="custom")(inp)  # a kind the methods do not know: skipped
    out = keras.layers.Dense(4, name="after_custom")(h)
    model = keras.Model(inp, out)
    model.get_layer("custom").w.assign(np.full((12, 8), np.nan, np.float32))
    before = weights(model)
    x = np.ones((32, 12), np.float32)
    for run in (lambda: run_lsuv(model, stream(x)),
                lambda: run_sylvester(model, stream(x), SPARSE, latent="random")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(LayerwiseError, match="'after_custom'.*NaN"):
                run()
        assert_unchanged(model, before)


def test_nan_batch_is_a_data_error():
    model = mlp()
    x = np.ones((32, 12))
    x[3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        run_lsuv(model, stream(x))


def functional_cnn():
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inp)
    h = keras.layers.DepthwiseConv2D(3, name="depthwise")(h)
    h = keras.layers.Conv2D(8, 1, groups=2, name="grouped")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(24, activation="relu", name="hidden")(h)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(h))


@pytest.mark.parametrize("method", ["lsuv", "sylvester_labels"])
def test_meta_initialize_on_a_functional_model(method, fmnist):
    x, y = fmnist
    x, y = x[:512].reshape(-1, 28, 28, 1), y[:512]
    model = functional_cnn()
    chosen = "lsuv" if method == "lsuv" else Sylvester(latent="labels", max_samples=512)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no layer skipped
        report = km.meta_initialize(model, (x, y), method=chosen, seed=0, verbose=0)
    rows = {r["name"]: r for r in report.layers}
    assert list(rows) == ["conv", "depthwise", "grouped", "hidden", "logits"]
    for name in ("conv", "depthwise", "grouped", "hidden", "logits"):
        assert rows[name]["status"].startswith("set")
        assert rows[name]["var_after"] == pytest.approx(1, abs=0.1)
    text = str(report)
    assert "layers:" in text
    assert all(name in text for name in rows)
    if method != "lsuv":
        assert "residual" in text and rows["logits"]["samples"] == 512
        # the label code makes the initialized net a classifier already (chance is 0.1)
        xt, yt = load_fashion_mnist("test")
        acc = np.mean(np.argmax(model.predict(xt[:500], verbose=0), -1) == yt[:500])
        assert acc > 0.4, acc


def test_subclassed_model_is_set():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d1, self.d2 = keras.layers.Dense(8, "relu"), keras.layers.Dense(3)

        def call(self, x):
            return self.d2(self.d1(x))

    model = Net()
    x = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        report = km.meta_initialize(model, x, method="lsuv", verbose=0)
    assert [r["status"] for r in report.layers] == ["set", "set"]
    assert all(abs(r["var_after"] - 1) < 0.1 for r in report.layers)


def test_a_loaded_sequential_model_is_not_taken_for_shared_layers(tmp_path):
    """load_model leaves extra inbound nodes on a Sequential's layers; only calls within the
    model's own graph count, so every layer is still set."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,))] + [keras.layers.Dense(16, "relu") for _ in range(3)]
                             + [keras.layers.Dense(3)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert max(len(layer._inbound_nodes) for layer in loaded.layers) > 1  # the trap is there
    x = np.random.default_rng(0).normal(size=(256, 20)).astype("float32")
    report = km.meta_initialize(loaded, (x, np.arange(256) % 3), method="lsuv", verbose=0)
    assert [row["status"] for row in report.layers] == ["set"] * 4
