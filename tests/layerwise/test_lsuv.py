"""layerwise/lsuv.py: LSUV sets every layer's pre-activation variance to 1 (measured
independently), and refuses a layer it cannot rescale."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit.layerwise import LayerwiseError
from keras_metainit.methods import LSUV
from tests.layerwise.util import assert_unchanged, mlp, run_lsuv, stream, weights


def independent_preactivation_variance(model, layer, x):
    x_in = keras.Model(model.inputs[0], layer.input)(x)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    if isinstance(layer, keras.layers.Conv2D):
        z = tf.nn.convolution(x_in, kernel, layer.strides, layer.padding.upper(),
                              dilations=layer.dilation_rate).numpy() + bias
    else:
        z = np.asarray(x_in) @ kernel + bias
    return float(np.var(z.astype(np.float64)))


@pytest.mark.parametrize("orthogonal", [True, False])
def test_lsuv_sets_unit_preactivation_variance(orthogonal, fmnist):
    x, y = fmnist
    x, y = x[:128].reshape(-1, 28, 28, 1), y[:128]
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu",
                            bias_initializer=keras.initializers.RandomNormal(0.3, 0.2))(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, "relu", bias_initializer=keras.initializers.RandomNormal(0, 0.5))(h)
    model = keras.Model(inp, keras.layers.Dense(10)(h))
    handled = [layer for layer in model.layers
               if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    before = [independent_preactivation_variance(model, layer, x) for layer in handled]
    tol = 0.05
    # one batch = the 128 examples (order does not matter for the variance)
    report = km.meta_initialize(model, (x, y), method=LSUV(tol=tol, orthogonal=orthogonal),
                                batch_size=128, seed=0, verbose=0)
    assert [r["name"] for r in report.layers] == [layer.name for layer in handled]
    for layer, row in zip(handled, report.layers):
        var = independent_preactivation_variance(model, layer, x)
        assert abs(var - 1) < tol, (layer.name, var)
        assert row["var_after"] == pytest.approx(var, rel=1e-4)
        assert row["status"] == "set"
    assert any(abs(v - 1) > 0.3 for v in before), "the start should be off (else nothing is shown)"
    if orthogonal:
        k = handled[-1].kernel.numpy()  # columns orthogonal (rescaled orthonormal)
        g = k.T @ k
        np.testing.assert_allclose(g, np.eye(10) * g[0, 0], atol=1e-5 * g[0, 0])
    else:
        assert max(r["iterations"] for r in report.layers) >= 2  # the biases made it iterate


def test_zero_inputs_cannot_be_rescaled():
    model = mlp()
    before = weights(model)
    with pytest.raises(LayerwiseError, match="'h0'.*variance 0"):
        run_lsuv(model, stream(np.zeros((32, 12))))
    assert_unchanged(model, before)


def test_lsuv_arguments_are_validated():
    with pytest.raises(ValueError, match="max_iter=0"):
        LSUV(max_iter=0)
    with pytest.raises(ValueError, match="tol=0"):
        LSUV(tol=0)
    assert isinstance(km.methods.get("lsuv"), LSUV)
