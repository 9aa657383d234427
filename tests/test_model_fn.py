"""model_fn.py: the model as a pure per-example loss of ``(params, batch)``: Keras's own loss at
the given weights, dropout and noise off, normalization statistics never written, sample
weights, and the mixed-precision helpers."""
import keras
import numpy as np
import pytest
from keras import ops

from keras_metainit import model_fn
from keras_metainit.losses import resolve_loss

pytestmark = pytest.mark.backend_neutral

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def classifier(noise=False, bn=False, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((6,)), keras.layers.Dense(8, "tanh", bias_initializer="random_normal")]
    if bn:
        layers.append(keras.layers.BatchNormalization())
    if noise:
        layers += [keras.layers.Dropout(0.5), keras.layers.GaussianNoise(1.0),
                   keras.layers.GaussianDropout(0.3)]
    return keras.Sequential(layers + [keras.layers.Dense(3)])


def batch(n=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def per_example(model, params, data, training=False):
    loss_fn = model_fn.make_loss_fn(model, resolve_loss(model, CE), training=training)
    return ops.convert_to_numpy(loss_fn(params, data))


def test_the_loss_is_keras_loss_at_the_given_weights_and_the_model_is_untouched():
    model = classifier()
    x, y = batch()
    start = [v.numpy().copy() for v in model.trainable_variables]
    params = [ops.convert_to_tensor(1.5 * w) for w in start]  # other weights than the model's
    got = per_example(model, params, (x, y))
    np.testing.assert_array_equal(model.trainable_variables[0].numpy(), start[0])  # untouched
    for v, w in zip(model.trainable_variables, start):
        v.assign(1.5 * w)
    want = ops.convert_to_numpy(CE(y, model(x)))  # Keras, with the weights written
    assert got.shape == (16,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dropout_and_noise_are_off_even_in_training_mode_and_restored_after():
    model = classifier(noise=True)
    x, y = batch()
    params = [v.value for v in model.trainable_variables]
    first = per_example(model, params, (x, y), training=True)
    second = per_example(model, params, (x, y), training=True)
    np.testing.assert_array_equal(first, second)  # no randomness
    want = ops.convert_to_numpy(CE(y, model(x, training=False)))  # the noise-free model
    np.testing.assert_allclose(first, want, rtol=1e-5, atol=1e-6)
    rates = [(type(layer).__name__, getattr(layer, "rate", getattr(layer, "stddev", None)))
             for layer in model.layers[1:-1]]
    assert rates == [("Dropout", 0.5), ("GaussianNoise", 1.0), ("GaussianDropout", 0.3)]
    with model_fn.noise_off(model):
        assert [getattr(layer, "rate", getattr(layer, "stddev", None))
                for layer in model.layers[1:-1]] == [0.0, 0.0, 0.0]


def test_batch_statistics_in_training_mode_and_moving_statistics_never_written():
    model = classifier(bn=True)
    bn = model.layers[1]
    x, y = batch()
    x = 3.0 + 2.0 * x  # far from the moving statistics' start (0, 1)
    params = [v.value for v in model.trainable_variables]
    moving = [v.numpy().copy() for v in bn.non_trainable_variables]
    train = per_example(model, params, (x, y), training=True)
    infer = per_example(model, params, (x, y), training=False)
    for v, m in zip(bn.non_trainable_variables, moving):
        np.testing.assert_array_equal(v.numpy(), m)
    np.testing.assert_allclose(infer, ops.convert_to_numpy(CE(y, model(x, training=False))),
                               rtol=1e-5, atol=1e-6)
    # training mode normalizes by the batch's own statistics: Keras's value before any update
    want = ops.convert_to_numpy(CE(y, model(x, training=True)))
    np.testing.assert_allclose(train, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(train, infer, rtol=1e-2)


def test_sample_weights_multiply_each_examples_loss():
    model = classifier()
    x, y = batch()
    w = np.linspace(0.0, 2.0, 16).astype("float32")
    params = [v.value for v in model.trainable_variables]
    np.testing.assert_allclose(per_example(model, params, (x, y, w)),
                               w * per_example(model, params, (x, y)), rtol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_lower_precision_layers_compute_in_float32_inside_the_context_only(policy):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, dtype=policy),
                              keras.layers.Dense(2)])
    assert model_fn.lower_precision_policies(model) == [policy]
    with model_fn.float32_compute(model):
        assert model.layers[0].compute_dtype == "float32"
        assert model_fn.lower_precision_policies(model) == []
    assert model.layers[0].compute_dtype == policy.split("_")[1]


def test_all_layers_finds_nested_layers():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="inner_dense")])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2, name="head")])
    names = [layer.name for layer in model_fn.all_layers(outer)]
    assert "inner_dense" in names and "head" in names and outer.name not in names
