"""The layer walk on every kind of model: subclassed, nested, shared layers, depthwise and
separable convolutions, custom layers, restore on error."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import layerwise
from keras_metainit.losses import LossSpec
from keras_metainit.methods import LSUV, Sylvester

SPARSE = LossSpec(keras.losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", "argument")


def stream(x, y=None, batch=None):
    y = np.zeros(len(x), np.int64) if y is None else y
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y))
    return ds.batch(batch or len(x)).repeat()


def images(n=32, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, size, size, channels)).astype(np.float32)


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


def test_sylvester_default_on_a_conv_with_more_filters_than_examples():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(48, 3, padding="same", activation="relu", name="wide")(inp)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(40, name="dense")(h)
    model = keras.Model(inp, out)
    x = images(96, 8, 3)  # batches of 16 examples: fewer than either layer's units
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        rows = Sylvester().run(model, stream(x, batch=16), SPARSE, seed=0)
    conv, dense = rows
    assert conv["latent"] == dense["latent"] == "orthogonal"
    assert conv["status"] == dense["status"] == "set"
    assert conv["samples"] > 48 and dense["samples"] > 40  # patches; more batches for the Dense
    assert conv["var_after"] == pytest.approx(1, abs=1e-3)
    # max_samples below the units: an orthogonal code still gets k + 1 rows
    rows = Sylvester(max_samples=8).run(model, stream(x, batch=16), SPARSE, seed=0)
    assert [(r["samples"], r["latent"]) for r in rows] == [(49, "orthogonal"), (41, "orthogonal")]


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


def test_a_custom_layer_is_taught_with_register_layer():
    class Affine(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight((shape[-1], 8))
            self.b = self.add_weight((8,), initializer="ones")

        def call(self, x):
            return keras.activations.relu(x @ self.w + self.b)

    keras.utils.set_random_seed(0)
    inp = keras.Input((12,))
    model = keras.Model(inp, keras.layers.Dense(3)(Affine(name="affine")(inp)))
    x = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    with pytest.warns(UserWarning, match="unsupported layer kind Affine.*register_layer"):
        rows = LSUV().run(model, stream(x), SPARSE, seed=0)
    assert rows[0]["status"].startswith("skipped: unsupported layer kind Affine")
    layerwise.register_layer(Affine, lambda layer: layerwise.LayerView(
        [layerwise.MatmulStage(layer.w, layer.b)], activation=keras.activations.relu))
    rows = LSUV().run(model, stream(x), SPARSE, seed=0)
    assert rows[0]["status"] == "set" and abs(rows[0]["var_after"] - 1) < 0.1
    np.testing.assert_array_equal(model.get_layer("affine").b.numpy(), 0)
    # a wrong view is caught on the probe, not written
    layerwise.register_layer(Affine, lambda layer: layerwise.LayerView(
        [layerwise.MatmulStage(layer.w, layer.b)]))  # forgot the relu
    with pytest.warns(UserWarning, match="'affine'.*not the linear map"):
        rows = LSUV().run(model, stream(x), SPARSE, seed=0)
    assert rows[0]["status"].startswith("skipped")


def test_a_dense_subclass_with_other_maths_is_skipped():
    class Doubled(keras.layers.Dense):
        def call(self, x):
            return 2.0 * super().call(x)

    keras.utils.set_random_seed(0)
    inp = keras.Input((12,))
    model = keras.Model(inp, keras.layers.Dense(3)(Doubled(8, name="doubled")(inp)))
    x = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    with pytest.warns(UserWarning, match="'doubled'.*overrides `call`") as record:
        rows = LSUV().run(model, stream(x), SPARSE, seed=0)
    assert rows[0]["status"].startswith("skipped") and rows[1]["status"] == "set"
    assert record[0].filename == __file__  # attributed to the caller, whatever the depth


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


def test_embedding_and_recurrent_layers_are_listed_with_a_reason():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(20, 8, name="emb")(inp)
    h = keras.layers.LSTM(5, name="lstm")(h)
    model = keras.Model(inp, keras.layers.Dense(3, name="out")(h))
    x = np.random.default_rng(0).integers(0, 20, (32, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = LSUV().run(model, tf.data.Dataset.from_tensors((x, np.zeros(32))).repeat(),
                          SPARSE, seed=0)
    status = {r["name"]: r["status"] for r in rows}
    assert status["emb"].startswith("skipped: Embedding")
    assert any(s.startswith("skipped: recurrent cell") for s in status.values())
    assert status["out"] == "set"


@pytest.mark.parametrize("make,shape", [
    (lambda: keras.layers.Dense(5), (7, 3, 6)),
    (lambda: keras.layers.EinsumDense("abc,cde->abde", (3, 2, 4), bias_axes="de"), (7, 3, 6)),
    (lambda: keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2), (5, 11, 3)),
    (lambda: keras.layers.Conv2D(4, (3, 2), strides=2, padding="same"), (5, 9, 8, 3)),
    (lambda: keras.layers.Conv3D(4, 2, padding="same"), (3, 4, 5, 4, 2)),
    (lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2), (5, 9, 9, 3)),
    (lambda: keras.layers.Conv2D(6, 3, groups=3, strides=2, padding="same"), (5, 9, 9, 6)),
    (lambda: keras.layers.Conv1D(4, 2, groups=2, dilation_rate=2), (5, 11, 4)),
    (lambda: keras.layers.SeparableConv2D(4, 3, depth_multiplier=2, padding="same"), (5, 6, 6, 3)),
])
def test_every_view_is_the_layer_and_its_rows_times_its_matrices(make, shape):
    keras.utils.set_random_seed(0)
    layer = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer.build(shape)
    view = layerwise.view_of(layer)
    for v in view.variables:  # biases non-zero, so that they are checked too
        v.assign(np.random.default_rng(1).standard_normal(tuple(v.shape)).astype(np.float32))
    np.testing.assert_allclose(view.output(x), layer(x), rtol=1e-4, atol=1e-4)
    h = x
    for stage in view.stages:  # each stage: rows (n, G, d) times matrices (G, d, k) = its output
        out = stage.output(h)
        r, w = stage.rows(h), stage.matrix()
        z = np.einsum("ngd,gdk->ngk", r, w).reshape(len(r), -1)
        bias = 0 if stage.bias is None else stage.bias.numpy().reshape(-1)
        np.testing.assert_allclose(z + bias, out.reshape(len(r), -1), rtol=1e-4, atol=1e-4)
        stage.assign(w)  # and the matrices write back to the same kernel
        np.testing.assert_allclose(stage.output(h), out, rtol=1e-6, atol=1e-6)
        h = out


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
