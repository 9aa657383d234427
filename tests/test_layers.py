"""WNDense, WNConv2D, FixupScale, FixupBias; and a 100-layer WNDense MLP that trains."""
import re
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit.layers import FixupBias, FixupScale, WNConv2D, WNDense

INITIALIZERS = {
    "WNInit": lambda: km.WNInit(seed=3),
    "glorot_uniform": lambda: keras.initializers.GlorotUniform(seed=3),
    "he_normal": lambda: keras.initializers.HeNormal(seed=3),
}


def rng_array(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_wndense_effective_kernel_at_init_is_the_initializers_kernel(name):
    layer = WNDense(12, kernel_initializer=INITIALIZERS[name]())
    layer.build((None, 20))
    expected = INITIALIZERS[name]()((20, 12))  # int seed: the same values on every call
    np.testing.assert_allclose(layer.kernel, expected, rtol=1e-5, atol=1e-7)
    plain = keras.layers.Dense(12, kernel_initializer=INITIALIZERS[name]())
    plain.build((None, 20))
    np.testing.assert_allclose(layer.kernel, plain.kernel, rtol=1e-5, atol=1e-7)
    # v is the drawn kernel and g its column norms.
    np.testing.assert_allclose(layer.v, expected, rtol=1e-6)
    np.testing.assert_allclose(layer.g, np.linalg.norm(np.asarray(expected), axis=0), rtol=1e-5)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_wnconv2d_effective_kernel_at_init_is_the_initializers_kernel(name):
    layer = WNConv2D(6, 3, kernel_initializer=INITIALIZERS[name]())
    layer.build((None, 9, 9, 4))
    plain = keras.layers.Conv2D(6, 3, kernel_initializer=INITIALIZERS[name]())
    plain.build((None, 9, 9, 4))
    assert tuple(layer.v.shape) == (3, 3, 4, 6) and tuple(layer.g.shape) == (6,)
    np.testing.assert_allclose(layer.kernel, plain.kernel, rtol=1e-5, atol=1e-7)


@pytest.mark.backend_neutral
def test_wndense_default_initializer_is_wninit():
    layer = WNDense(16)
    layer.build((None, 32))
    np.testing.assert_allclose(layer.g, np.sqrt(2 * 32 / 16), rtol=1e-5)
    assert isinstance(layer.kernel_initializer, km.WNInit)


@pytest.mark.backend_neutral
def test_wndense_output_is_x_kernel_plus_bias():
    layer = WNDense(5, activation="tanh")
    layer.build((None, 7))
    layer.v.assign(rng_array((7, 5), 1))
    layer.g.assign(rng_array((5,), 2))
    layer.bias.assign(rng_array((5,), 3))
    x = rng_array((4, 7), 4)
    v = np.asarray(layer.v, np.float64)
    kernel = np.asarray(layer.g, np.float64) * v / np.linalg.norm(v, axis=0)
    np.testing.assert_allclose(layer.kernel, kernel, rtol=1e-5)
    np.testing.assert_allclose(layer(x), np.tanh(x @ kernel + np.asarray(layer.bias)), rtol=1e-5,
                               atol=1e-6)
    # Rank > 2 inputs act on the last axis, like Dense.
    assert tuple(layer(rng_array((2, 3, 7))).shape) == (2, 3, 5)


def _skip_unless_platform_convolves(data_format, shape):
    """Skip (never fail) where the platform's own Conv2D cannot run this data format: TensorFlow's
    CPU kernels without oneDNN support only NHWC ("The Conv2D op currently only supports the NHWC
    tensor format on the CPU")."""
    try:
        keras.layers.Conv2D(1, 1, data_format=data_format)(np.zeros(shape, "float32"))
    except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError) as e:
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines()
        why = next((line.strip() for line in lines if "support" in line), lines[0])
        pytest.skip(f"a plain keras.layers.Conv2D with {data_format} fails on this platform: {why}")


@pytest.mark.backend_neutral
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_wnconv2d_matches_conv2d_with_the_effective_kernel(data_format):
    kwargs = dict(strides=2, padding="same", dilation_rate=1, activation="relu",
                  data_format=data_format)
    layer = WNConv2D(4, (3, 2), **kwargs)
    shape = (2, 8, 8, 3) if data_format == "channels_last" else (2, 3, 8, 8)
    _skip_unless_platform_convolves(data_format, shape)
    x = rng_array(shape, 5)
    layer.build(shape)
    layer.g.assign(rng_array((4,), 6))
    layer.bias.assign(rng_array((4,), 7))
    plain = keras.layers.Conv2D(4, (3, 2), **kwargs)
    plain.build(shape)
    plain.set_weights([np.asarray(layer.kernel), np.asarray(layer.bias)])
    np.testing.assert_allclose(layer(x), plain(x), rtol=1e-5, atol=1e-6)
    # Dilation too.
    dilated = WNConv2D(4, 3, dilation_rate=2, use_bias=False)
    dilated.build((2, 9, 9, 3))
    plain = keras.layers.Conv2D(4, 3, dilation_rate=2, use_bias=False)
    plain.build((2, 9, 9, 3))
    plain.set_weights([np.asarray(dilated.kernel)])
    x = rng_array((2, 9, 9, 3), 8)
    np.testing.assert_allclose(dilated(x), plain(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: WNDense(6), lambda: WNConv2D(6, 3)])
def test_gradients_flow_to_g_v_and_bias(make):
    layer = make()
    x = rng_array((3, 5, 5, 4) if isinstance(layer, WNConv2D) else (3, 4), 9)
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x) - 1.0))
    grads = dict(zip(["v", "g", "bias"], tape.gradient(loss, [layer.v, layer.g, layer.bias])))
    for name, grad in grads.items():
        assert grad is not None and np.all(np.isfinite(grad)), name
        assert np.abs(grad).max() > 1e-4, name
    # Weight norm: the loss does not depend on ||v||, so its gradient is orthogonal to v per unit.
    v = np.asarray(layer.v).reshape(-1, 6)
    dv = np.asarray(grads["v"]).reshape(-1, 6)
    cos = np.sum(v * dv, axis=0) / np.linalg.norm(v, axis=0) / np.linalg.norm(dv, axis=0)
    np.testing.assert_allclose(cos, 0.0, atol=1e-4)
    before = np.asarray(layer(x))
    layer.v.assign(layer.v * 3.0)
    np.testing.assert_allclose(layer(x), before, rtol=1e-5, atol=1e-6)


def test_zero_kernel_is_finite():
    layer = WNDense(3, kernel_initializer="zeros")
    x = rng_array((2, 4))
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        out = layer(x)
        loss = tf.reduce_sum(out)
    grads = tape.gradient(loss, [layer.v, layer.g])
    np.testing.assert_array_equal(out, 0.0)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_fixup_scalar_layers():
    x = rng_array((2, 3, 4))
    scale, bias = FixupScale(), FixupBias()
    np.testing.assert_array_equal(scale(x), x)
    np.testing.assert_array_equal(bias(x), x)
    for layer in (scale, bias):
        assert len(layer.trainable_weights) == 1 and tuple(layer.trainable_weights[0].shape) == ()
    scale.trainable_weights[0].assign(2.5)
    bias.trainable_weights[0].assign(-0.5)
    np.testing.assert_allclose(scale(x), 2.5 * x)
    np.testing.assert_allclose(bias(x), x - 0.5)
    np.testing.assert_allclose(FixupScale(3.0)(x), 3.0 * x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(FixupBias(name="b")(scale(x)))
    grad = float(tape.gradient(loss, scale.trainable_weights[0]))
    assert grad == pytest.approx(x.sum(), rel=1e-5)


@pytest.mark.backend_neutral
def test_fixup_block_from_the_docstring_is_identity_plus_relu_at_init():
    init = km.FixupInit(num_branches=4, branch_depth=2)

    def fixup_block(h, filters):
        f = FixupBias()(h)
        f = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_initializer=init)(f)
        f = FixupBias()(f)
        f = keras.layers.ReLU()(f)
        f = FixupBias()(f)
        f = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_initializer="zeros")(f)
        f = FixupScale()(f)
        f = FixupBias()(f)
        return keras.layers.ReLU()(keras.layers.Add()([h, f]))

    inputs = keras.Input((6, 6, 4))
    model = keras.Model(inputs, fixup_block(fixup_block(inputs, 4), 4))
    x = rng_array((2, 6, 6, 4))
    np.testing.assert_allclose(model(x), np.maximum(x, 0), atol=1e-6)
    # The first convolution of each branch is not zero, and gets a gradient once the last one moves.
    first = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)][0]
    assert np.std(np.asarray(first.kernel)) > 0


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: WNDense(0), "units"),
        (lambda: WNDense(4, epsilon=-1.0), "epsilon"),
        (lambda: WNConv2D(0, 3), "filters"),
        (lambda: WNConv2D(4, (3, 3, 3)), "kernel_size"),
        (lambda: WNConv2D(4, 3, strides=0), "strides"),
        (lambda: WNConv2D(4, 3, padding="causal"), "padding"),
        (lambda: WNConv2D(4, 3, data_format="nhwc"), "data_format"),
        (lambda: FixupScale("one"), "initial_value"),
    ],
)
def test_bad_layer_arguments_name_the_argument(build, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        build()


def train_deep_mlp(make_hidden, x, y, x_test, y_test, depth=100, epochs=5, lr=5e-4, warmup=100):
    """Train a `depth`-layer ReLU MLP with Adam, quadratic warmup then cosine decay; return the
    test accuracy and the wall time."""
    start = time.time()
    model = keras.Sequential(
        [keras.Input((x.shape[1],))]
        + [make_hidden() for _ in range(depth)]
        + [keras.layers.Dense(10)]
    )
    batch = 64
    steps = epochs * -(-len(x) // batch)
    schedule = km.QuadraticWarmup(
        lr, warmup, after=keras.optimizers.schedules.CosineDecay(lr, steps - warmup)
    )
    model.compile(
        keras.optimizers.Adam(schedule),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)[1]
    return accuracy, time.time() - start


@pytest.mark.backend_neutral
@pytest.mark.slow
def test_100_layer_wndense_mlp_trains_where_default_init_does_not():
    from keras_metainit.datasets import load_fashion_mnist

    x, y = load_fashion_mnist("train", flatten=True)  # the bundled 6,000 images
    x_test, y_test = load_fashion_mnist("test", flatten=True)
    mean, std = x.mean(axis=0), x.std()  # standardized inputs: a steadier start at depth 100
    x, x_test = (x - mean) / std, (x_test - mean) / std
    keras.utils.set_random_seed(0)
    init = km.WNInit(seed=keras.random.SeedGenerator(0))  # reproducible, distinct kernels
    wn_acc, wn_time = train_deep_mlp(
        lambda: WNDense(64, activation="relu", kernel_initializer=init), x, y, x_test, y_test
    )
    keras.utils.set_random_seed(0)
    default_acc, default_time = train_deep_mlp(
        lambda: keras.layers.Dense(64, activation="relu"), x, y, x_test, y_test
    )
    print(
        f"\n100-layer ReLU MLP, width 64, 5 epochs of 6,000 Fashion-MNIST images, test accuracy: "
        f"WNDense + WNInit {wn_acc:.3f} ({wn_time:.1f} s), "
        f"Dense + glorot_uniform (Keras default) {default_acc:.3f} ({default_time:.1f} s)"
    )
    assert wn_acc > 0.4
    assert default_acc < 0.2
