"""experiments.models: shapes, no normalization unless asked, seeds, Fixup's zero layers, the
Post-LN / Pre-LN placement of LayerNormalization."""
import keras
import numpy as np
import pytest

from keras_metainit.experiments import models

NORMS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)


def _norms(model):
    return [layer for layer in model.layers if isinstance(layer, NORMS)]


@pytest.mark.parametrize("build", [
    lambda **kw: models.mlp(5, 8, activation="tanh", **kw),
    lambda **kw: models.vgg((4, 4, 8, 8, 8, 8, 8, 8), **kw),
    lambda **kw: models.cnn(4, 8, **kw),
    lambda **kw: models.residual_mlp(3, 8, **kw),
    lambda **kw: models.residual_cnn(2, 4, **kw),
    lambda **kw: models.residual_mlp(3, 8, fixup=True, **kw),
])
def test_image_models_logits_without_normalization(build):
    model = build(seed=0)
    x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype("float32")
    assert tuple(model(x).shape) == (3, 10)
    assert _norms(model) == []
    again = build(seed=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same seed, the same weights
    other = build(seed=1)
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights())
               if a.ndim >= 2)


def test_batchnorm_only_when_asked():
    assert len(_norms(models.mlp(4, 8, norm="batch", seed=0))) == 4
    assert len(_norms(models.vgg((4,) * 8, norm="batch", seed=0))) == 8


def test_depth_and_blocks_count():
    dense = [l for l in models.mlp(7, 8, seed=0).layers if isinstance(l, keras.layers.Dense)]
    assert len(dense) == 8
    convs = [l for l in models.vgg((4,) * 10, seed=0).layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 10
    adds = [l for l in models.residual_mlp(6, 8, seed=0).layers if isinstance(l, keras.layers.Add)]
    assert len(adds) == 6


def test_fixup_starts_with_zero_logits_and_zero_branch_ends():
    model = models.residual_mlp(4, 8, fixup=True, seed=0)
    x = np.random.default_rng(0).normal(size=(5, 28, 28, 1)).astype("float32")
    assert np.all(keras.ops.convert_to_numpy(model(x)) == 0.0)
    zeros = [l for l in model.layers if isinstance(l, keras.layers.Dense)
             and not np.any(keras.ops.convert_to_numpy(l.kernel))]
    assert len(zeros) == 4 + 1  # the last layer of every branch and the classifier


@pytest.mark.parametrize("post_ln", [True, False])
def test_transformer_shapes_and_layer_norm_placement(post_ln):
    model = models.transformer(2, 16, heads=2, ffn=32, vocab=8, length=6, post_ln=post_ln,
                               seed=0)
    tokens = np.random.default_rng(0).integers(0, 8, size=(3, 6)).astype("int32")
    assert tuple(model(tokens).shape) == (3, 6, 8)
    assert len(_norms(model)) == 4 + (0 if post_ln else 1)
    adds = [l for l in model.layers if isinstance(l, keras.layers.Add)]
    assert len(adds) == 4
    # the stream into each residual addition: Post-LN, a LayerNormalization's output (after the
    # first block's embedding); Pre-LN, the raw stream (never normalized)
    from_ln = [isinstance(a.input[0]._keras_history.operation, keras.layers.LayerNormalization)
               for a in adds]
    assert from_ln == ([False, True, True, True] if post_ln else [False] * 4)
    attention = [l for l in model.layers if isinstance(l, keras.layers.MultiHeadAttention)]
    assert len(attention) == 2


def test_transformer_round_trips_through_save(tmp_path):
    model = models.transformer(1, 8, heads=2, ffn=16, vocab=5, length=4, seed=0)
    path = str(tmp_path / "t.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    tokens = np.arange(8, dtype="int32").reshape(2, 4) % 5
    np.testing.assert_allclose(model(tokens), loaded(tokens), rtol=1e-6)


def test_scale_kernels_multiplies_kernels_only():
    model = models.mlp(2, 4, seed=0)
    before = [w.copy() for w in model.get_weights()]
    models.scale_kernels(model, 3.0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_allclose(b, a * (3.0 if a.ndim >= 2 else 1.0), rtol=1e-6)
