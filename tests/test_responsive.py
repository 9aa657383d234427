"""The learned runs' guard never leaves a model dead, and says when a model starts with no
signal (learned/core.py: _BestScales, drive)."""
import numpy as np
import keras
import pytest

import keras_metainit as km
from keras_metainit.learned import core


def _spread(model, x):
    return float(np.mean(np.std(model.predict(x, verbose=0), axis=0)))


def _layer_norm_classifier():
    """A GELU layer, LayerNormalization and a 2-way head at std 0.02 (BERT's head init): the
    paper's absolute MetaInit step (0.1 per step on a head of norm 0.27) used to drive the head
    to the 1e-3 floor in 5 steps (output spread 0.186 -> 0.000186) while GQ went down."""
    keras.utils.set_random_seed(0)
    x = np.random.randn(256, 32).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([
        keras.Input((32,)), keras.layers.Dense(128, "gelu", kernel_initializer="he_normal"),
        keras.layers.LayerNormalization(),
        keras.layers.Dense(2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02)),
    ])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, x, y


@pytest.mark.numerics
def test_metainit_never_leaves_the_classifier_head_dead():
    model, x, y = _layer_norm_classifier()
    before = _spread(model, x[:64])
    report = model.meta_initialize((x, y), method="metainit", steps=5, batch_size=16,
                                   verbose=0, seed=0)
    after = _spread(model, x[:64])
    assert after >= core.DEAD_RATIO * before, (before, after)
    assert any(n.startswith("kept responsive") for n in report.notes), report.notes


def test_the_relative_step_keeps_the_head_alive_by_itself():
    model, x, y = _layer_norm_classifier()
    report = model.meta_initialize(
        (x, y), method=km.methods.MetaInit(steps=5, step="relative"), batch_size=16, verbose=0,
        seed=0)
    head = report.tensors[-2]  # kernel of the head (its bias follows)
    assert head["name"].endswith("kernel") and head["scale"] > 0.5, report.tensors
    assert not any(n.startswith("kept responsive") for n in report.notes), report.notes


def _constant_output_model():
    """A ReLU layer whose bias (-100) keeps every unit off: the output does not depend on the
    input, though every kernel has a nonzero norm (MobileNetV3Small's start, in miniature)."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, "relu", bias_initializer=keras.initializers.Constant(-100.0)),
        keras.layers.Dense(32, "relu"), keras.layers.Dense(3),
    ])


@pytest.mark.parametrize("method", ["metainit", "gradinit", "gradcosine"])
def test_a_model_with_constant_output_gets_the_no_signal_note(method):
    model = _constant_output_model()
    x = np.random.rand(64, 16).astype("float32")
    y = np.random.randint(0, 3, 64)
    with pytest.warns(UserWarning, match="no signal"):
        report = model.meta_initialize((x, y), method=method, steps=2, batch_size=16,
                                       verbose=0, seed=0)
    note = next(n for n in report.notes if n.startswith("no signal"))
    assert "lsuv" in note.lower()


def test_a_responsive_model_gets_no_no_signal_note():
    model, x, y = _layer_norm_classifier()
    report = model.meta_initialize((x, y), method="gradinit", steps=2, batch_size=16,
                                   verbose=0, seed=0)
    assert not any(n.startswith("no signal") for n in report.notes), report.notes


def test_output_spread_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 3, 2)), rng.normal(size=(8, 5))
    spread, magnitude = core.output_spread([keras.ops.convert_to_tensor(a, "float32"),
                                            keras.ops.convert_to_tensor(b, "float32")])
    want = np.mean([np.std(a.reshape(8, -1), axis=0).mean(), np.std(b, axis=0).mean()])
    np.testing.assert_allclose(float(spread), want, rtol=1e-5)
    np.testing.assert_allclose(float(magnitude), np.mean([np.abs(a).mean(), np.abs(b).mean()]),
                               rtol=1e-5)


@pytest.mark.parametrize("method", [None, "lsuv", "sylvester", "metainit", "gradinit",
                                    "gradcosine"])
def test_nothing_to_initialize_is_a_value_error(method):
    """The default call (LSUV) used to return a report on a model with no layer to set."""
    model = keras.Sequential([keras.Input((20,)), keras.layers.Activation("relu")])
    kwargs = {} if method is None else {"method": method}
    with pytest.raises(ValueError, match="nothing for|no tensor for"):
        model.meta_initialize(np.random.rand(64, 20).astype("float32"), verbose=0, **kwargs)
