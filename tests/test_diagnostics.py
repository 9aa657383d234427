"""diagnostics.py on a model: layer_signal, diagnose and its HealthLimits.

(gradient_quotient and grad_cosine against float64 references: tests/test_objectives.py.)
"""
import keras
import numpy as np
import pytest

import keras_metainit
from keras_metainit.diagnostics import HealthLimits, diagnose, layer_signal


def _mlp(scale, depth=3, width=16, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((8,))]
        + [keras.layers.Dense(width, "relu", kernel_initializer="he_normal") for _ in range(depth)]
        + [keras.layers.Dense(4, kernel_initializer="he_normal")])
    for layer in model.layers:
        layer.kernel.assign(layer.kernel * scale)
    return model


def _batch(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8)).astype("float32"), rng.integers(0, 4, n)


def test_public_names():
    assert keras_metainit.diagnose is diagnose
    assert keras_metainit.HealthLimits is HealthLimits
    assert keras_metainit.layer_signal is layer_signal


def test_layer_signal_is_the_rms_of_every_layer_output():
    model = _mlp(1.0)
    x, _ = _batch()
    rows = layer_signal(model, x)
    assert [r["name"] for r in rows] == [l.name for l in model.layers]
    h = x.astype("float64")  # the same forward pass, by hand
    for layer, row in zip(model.layers, rows):
        kernel, bias = (w.astype("float64") for w in layer.get_weights())
        h = h @ kernel + bias
        if layer is not model.layers[-1]:
            h = np.maximum(h, 0)
        np.testing.assert_allclose(row["rms"], np.sqrt(np.mean(h ** 2)), rtol=1e-5)


def test_diagnose_reports_the_objectives_and_the_signal_ratio():
    model = _mlp(1.0)
    batch = _batch()
    result = diagnose(model, batch)
    assert result["gq"] == pytest.approx(keras_metainit.gradient_quotient(model, batch))
    assert result["gc"] == pytest.approx(keras_metainit.grad_cosine(model, batch)["gc"])
    input_rms = np.sqrt(np.mean(batch[0].astype("float64") ** 2))
    assert result["input_rms"] == pytest.approx(input_rms)
    assert result["signal_ratio"] == pytest.approx(result["layers"][-1]["rms"] / input_rms)
    assert result["healthy"] and result["problems"] == []


@pytest.mark.parametrize("scale,problem", [(0.05, "RMS ratio"), (10.0, "RMS ratio")])
def test_diagnose_flags_a_vanishing_or_exploding_signal(scale, problem):
    result = diagnose(_mlp(scale), _batch())
    assert not result["healthy"]
    assert any(problem in p for p in result["problems"]), result["problems"]


def test_limits_decide_what_is_healthy():
    model, batch = _mlp(1.0), _batch()
    gq = diagnose(model, batch)["gq"]
    strict = diagnose(model, batch, HealthLimits(max_gq=gq / 2))
    assert not strict["healthy"] and strict["problems"] == [f"GQ {gq:.4g} > max {gq / 2:g}"]
    assert diagnose(model, batch, HealthLimits(max_gq=gq * 2))["healthy"]


def test_diagnose_flags_non_finite_values():
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    model.layers[0].kernel.assign(np.full((784, 10), np.nan, "float32"))
    x = np.ones((16, 784), "float32")
    result = diagnose(model, (x, np.zeros(16, "int64")))
    assert not result["healthy"] and any("not finite" in p for p in result["problems"])
