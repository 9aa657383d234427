"""layerwise/kinds.py and stages.py: every layer kind's view is the layer (its stages' rows
times their matrices), a custom layer is taught with register_layer, and what is not a known
kind is skipped with its reason."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_metainit import layerwise
from keras_metainit.methods import LSUV
from tests.layerwise.util import SPARSE, stream


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
