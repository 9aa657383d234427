"""DeepNorm: the constants (paper and torchscale), the initializer's distribution, the residual
layer's output and its round trip through model.save, and the method on built models."""
import math
import warnings

import keras
import numpy as np
import pytest

from keras_metainit.transformers import (DeepNorm, DeepNormInit, DeepNormResidual,
                                         deepnorm_constants)

D, FF, HEADS = 64, 128, 4


def test_constants_match_the_paper_and_torchscale():
    n, m = 6, 4
    assert deepnorm_constants(encoder_layers=n) == {
        "encoder": pytest.approx(((2 * n) ** 0.25, (8 * n) ** -0.25))}
    assert deepnorm_constants(decoder_layers=m) == {
        "decoder": pytest.approx(((2 * m) ** 0.25, (8 * m) ** -0.25))}
    both = deepnorm_constants(n, m)
    assert both["encoder"] == pytest.approx((0.81 * (n ** 4 * m) ** (1 / 16),
                                             0.87 * (n ** 4 * m) ** (-1 / 16)))
    assert both["decoder"] == pytest.approx(((3 * m) ** 0.25, (12 * m) ** -0.25))
    # torchscale (encoder.py 236-242): p.div_(pow(pow(N, 4) * M, 0.0625) / 1.15)
    code = deepnorm_constants(n, m, source="torchscale")
    assert code["encoder"][1] == pytest.approx(1 / (math.pow(math.pow(n, 4) * m, 0.0625) / 1.15))
    assert code["encoder"][0] == both["encoder"][0] and code["decoder"] == both["decoder"]
    with pytest.raises(ValueError, match="Argument `source` must be one of"):
        deepnorm_constants(2, source="blog")


def test_deepnorm_init_is_xavier_normal_with_gain(ks):
    init = DeepNormInit(0.3, seed=4)
    w = keras.ops.convert_to_numpy(init((256, 512)))
    ks(w, "normal", 0.3 * math.sqrt(2 / (256 + 512)), p_min=1e-3)
    assert np.array_equal(w, keras.ops.convert_to_numpy(init((256, 512))))  # an int seed repeats
    fresh = DeepNormInit(0.3)
    assert not np.array_equal(keras.ops.convert_to_numpy(fresh((4, 4))),
                              keras.ops.convert_to_numpy(fresh((4, 4))))
    again = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(again, DeepNormInit) and again.get_config() == init.get_config()
    with pytest.raises(ValueError, match="Argument `gain` must be a positive float"):
        DeepNormInit(-1.0)


def test_residual_is_alpha_x_plus_fx_and_round_trips(tmp_path):
    x = keras.Input((5, 8))
    f = keras.layers.Dense(8, kernel_initializer=DeepNormInit(0.5, seed=1))(x)
    y = keras.layers.LayerNormalization()(DeepNormResidual(2.5, name="res")([x, f]))
    model = keras.Model(x, y)
    data = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    merged = keras.Model(x, model.get_layer("res").output)
    fx = keras.Model(x, f)(data)
    np.testing.assert_allclose(merged(data), 2.5 * data + keras.ops.convert_to_numpy(fx),
                               rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "deepnorm.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    assert isinstance(loaded.get_layer("res"), DeepNormResidual)
    assert loaded.get_layer("res").alpha == 2.5
    np.testing.assert_allclose(loaded(data), model(data), rtol=1e-6, atol=1e-6)
    assert isinstance(loaded.layers[1].kernel_initializer, DeepNormInit)
    with pytest.raises(ValueError, match="Argument `alpha` must be a positive float"):
        DeepNormResidual(0)
    with pytest.raises(ValueError, match="called on two tensors"):
        DeepNormResidual(2.0)([x, x, x])


def _check(model, report, ks, expected_beta):
    variables = {v.path: v for v in model.weights}
    for row in (r for r in report.layers if r["status"] == "set"):
        w = keras.ops.convert_to_numpy(variables[row["name"]].value)
        part = row["part"].split("_")[-1]
        fans = ((w.shape[0] * w.shape[1], w.shape[2]) if part == "output" else
                (w.shape[0], w.shape[1] * w.shape[2]) if w.ndim == 3 else w.shape)
        gain = 1.0 if part in ("query", "key") else expected_beta[row["role"]]
        ks(w, "normal", gain * math.sqrt(2 / sum(fans)), p_min=1e-5)


def test_method_on_an_encoder_built_with_deepnorm_residuals(build, ks):
    n = 3
    alpha, beta = (2 * n) ** 0.25, (8 * n) ** -0.25
    model = build(n, d=D, ff=FF, heads=HEADS, residual=lambda role: DeepNormResidual(alpha))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: every block is found
        report = model.meta_initialize(method="deepnorm", seed=0, verbose=0)
    assert len([r for r in report.layers if r["status"] == "set"]) == 6 * n
    _check(model, report, ks, {"encoder": beta})
    assert not any("needs alpha" in note for note in report.notes)


def test_method_on_an_encoder_decoder_with_plain_adds(build, ks):
    n, m = 2, 3
    model = build(n, m, d=D, ff=FF, heads=HEADS)
    with pytest.warns(UserWarning, match=f"DeepNorm: {n + m} blocks are not the DeepNorm"):
        report = model.meta_initialize(method=DeepNorm(), seed=1, verbose=0)
    _check(model, report, ks, {"encoder": 0.87 * (n ** 4 * m) ** (-1 / 16),
                               "decoder": (12 * m) ** -0.25})
    mismatch = [note for note in report.notes if "DeepNorm needs alpha" in note]
    assert len(mismatch) == n + m  # every plain Add is named, with the alpha it needs
    assert f"{0.81 * (n ** 4 * m) ** (1 / 16):.4g}" in mismatch[0]
