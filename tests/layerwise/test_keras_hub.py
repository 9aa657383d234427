"""The layer-wise methods know keras_hub's layers as they know keras.layers: lookups and heads
skipped with their own reasons, and EinsumDense kernels stored in another axis order (Gemma's
per-head projections) set."""
import warnings

import keras
import numpy as np
import pytest

from keras_metainit import layerwise
from keras_metainit.layerwise.stages import MatmulStage


def _run(model, data, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped layers' warnings
        return model.meta_initialize(data, method=method, verbose=0).layers


@pytest.mark.parametrize("method", ["lsuv", "sylvester"])
def test_text_encoder_layers_are_known(method):
    keras_hub = pytest.importorskip("keras_hub")
    tokens = keras.Input((8,), dtype="int32")
    h = keras_hub.layers.TokenAndPositionEmbedding(50, 8, 16)(tokens)
    h = keras_hub.layers.TransformerEncoder(32, 2)(h)
    model = keras.Model(tokens, keras.layers.Dense(3)(h[:, 0]))
    rng = np.random.default_rng(0)
    rows = _run(model, (rng.integers(0, 50, (64, 8)), rng.integers(0, 3, 64)), method)
    status = {r["name"]: r["status"] for r in rows}
    assert not any("unsupported layer kind" in s for s in status.values())
    assert status["position_embedding"] == ("skipped: PositionEmbedding: a lookup table of "
                                            "positions, it has no input activations to fit")
    assert status["token_embedding"].startswith("skipped: ReversibleEmbedding: a lookup table")
    assert sum(s == "set" for s in status.values()) == 7  # q, k, v, o, 2 feed-forward, head


def test_vit_patching_layer_is_known():
    keras_hub = pytest.importorskip("keras_hub")
    vit = keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4, num_layers=1,
                                       num_heads=2, hidden_dim=16, mlp_dim=32)
    patching = next(layer for layer in vit._flatten_layers()
                    if type(layer).__name__ == "ViTPatchingAndEmbedding")
    assert layerwise.view_of(patching).startswith(
        "ViTPatchingAndEmbedding: its own weight is the class token")
    model = keras.Model(vit.input, keras.layers.Dense(3)(vit.output[:, 0]))
    x = np.random.default_rng(0).random((16, 16, 16, 3), dtype=np.float32)
    rows = {r["name"]: r for r in _run(model, (x, np.zeros(16, "int32")), "lsuv")}
    assert rows["patch_embedding"]["status"] == "set"
    assert rows["vit_patching_and_embedding"]["status"].startswith("skipped: ViTPatching")


def test_einsum_kernel_in_another_axis_order():
    """``"btd,ndh->btnh"`` (keras_hub Gemma's key/value projection): the kernel is read as
    ``(d, n·h)``; the view reproduces the layer and LSUV brings it to unit variance."""
    layer = keras.layers.EinsumDense("btd,ndh->btnh", output_shape=(None, 2, 4))
    x = np.random.default_rng(1).normal(size=(32, 5, 8)).astype("float32")
    layer(x)
    view = layerwise.view_of(layer)
    (stage,) = view.stages
    assert isinstance(stage, MatmulStage) and (stage.fan_in, stage.units) == (8, 8)
    np.testing.assert_allclose(view.output(x), keras.ops.convert_to_numpy(layer(x)),
                               rtol=1e-5, atol=1e-5)
    k = keras.ops.convert_to_numpy(layer.kernel)
    matrix = stage.matrix()[0]  # (d, n*h): the einsum as one product
    np.testing.assert_allclose(x @ matrix, np.einsum("btd,ndh->btnh", x, k).reshape(32, 5, 8),
                               rtol=1e-5, atol=1e-5)
    stage.assign(matrix[None] * 2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.kernel), 2 * k, rtol=1e-6)
    model = keras.Sequential([keras.Input((5, 8)), layer])
    (row,) = _run(model, x, "lsuv")
    assert row["status"] == "set" and abs(row["var_after"] - 1.0) < 0.1


def test_gemma_projections_are_set():
    keras_hub = pytest.importorskip("keras_hub")
    gemma = keras_hub.models.GemmaBackbone(vocabulary_size=50, num_layers=1, num_query_heads=2,
                                           num_key_value_heads=1, hidden_dim=16,
                                           intermediate_dim=32, head_dim=8)
    model = keras.Model(gemma.input, keras.layers.Dense(3)(gemma.output[:, 0]))
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(0, 50, (32, 8)), "padding_mask": np.ones((32, 8), "int32")}
    rows = _run(model, (x, rng.integers(0, 3, 32)), "lsuv")
    status = {r["name"]: r["status"] for r in rows}
    assert [status[p] for p in ("query", "key", "value", "attention_output")] == ["set"] * 4
