"""losses.per_example: Keras's values, and exact higher-order derivatives where the softmax
saturates, on either CPU kernel path (CI runs the `numerics` tests with TF_ENABLE_ONEDNN_OPTS=0)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_metainit import losses, objectives
from keras_metainit.model_fn import make_loss_fn

RNG = np.random.default_rng(0)
LOGITS = tf.constant(RNG.normal(scale=3.0, size=(8, 5)).astype("float32"))
SPARSE = tf.constant(RNG.integers(0, 5, 8))
ONEHOT = tf.one_hot(SPARSE, 5)


@pytest.mark.parametrize("fn,y,pred", [
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), SPARSE, LOGITS),
    (keras.losses.SparseCategoricalCrossentropy(), SPARSE, tf.nn.softmax(LOGITS)),
    (keras.losses.SparseCategoricalCrossentropy(), SPARSE[:, None], tf.nn.softmax(LOGITS)),
    (keras.losses.sparse_categorical_crossentropy, SPARSE, tf.nn.softmax(LOGITS)),
    (keras.losses.CategoricalCrossentropy(from_logits=True), ONEHOT, LOGITS),
    (keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), ONEHOT, LOGITS),
    (keras.losses.CategoricalCrossentropy(), ONEHOT, tf.nn.softmax(LOGITS)),
    (keras.losses.categorical_crossentropy, ONEHOT, tf.nn.softmax(LOGITS)),
    (keras.losses.MeanSquaredError(), ONEHOT, LOGITS),  # passed through
])
def test_per_example_equals_keras(fn, y, pred):
    y = tf.cast(y, pred.dtype)
    ours = losses.per_example(fn, y, pred)
    keras_own = fn.call(y, pred) if isinstance(fn, keras.losses.Loss) else fn(y, pred)
    np.testing.assert_allclose(ours.numpy(), keras_own.numpy(), rtol=2e-5, atol=1e-6)


def test_softmax_output_uses_its_logits():
    """A Dense(softmax) output: the loss is formed from the logits, as Keras's backend does, so it
    stays finite where the probabilities underflow."""
    big = LOGITS * 100.0
    y = tf.cast(SPARSE, "float32")
    fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def through_softmax(z):
        return losses.per_example(fn, y, tf.nn.softmax(z))

    exact = -tf.gather(tf.nn.log_softmax(big), SPARSE, batch_dims=1)
    np.testing.assert_allclose(through_softmax(big).numpy(), exact.numpy(), rtol=1e-5)


@pytest.mark.numerics
def test_gq_scale_gradient_points_downhill_on_a_saturated_net():
    """A 12-layer ReLU MLP at 3x He: logits ~1e6, the softmax saturated. With TF's fused
    cross-entropy op the third-order scale gradient had the wrong sign for every tensor on Eigen
    kernels (-8.7e15, where central differences of the objective give +8.6e7), so MetaInit's sign
    steps climbed. Here a small step against the gradient's signs must lower the objective, and
    a step along them raise it, on whichever kernel path runs the test."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((784,))]
                             + [keras.layers.Dense(96, "relu", kernel_initializer="he_normal")
                                for _ in range(12)] + [keras.layers.Dense(10)])
    for v in model.trainable_variables:
        if len(v.shape) == 2:
            v.assign(v * 3.0)
    x = tf.constant(RNG.normal(size=(128, 784)).astype("float32"))
    y = tf.constant(RNG.integers(0, 10, 128))
    loss_fn = make_loss_fn(model, losses.resolve_loss(
        model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), x))
    params0 = [v.value for v in model.trainable_variables]
    tuned = [i for i, p in enumerate(params0) if len(p.shape) == 2]

    def gq(s):
        params = list(params0)
        for j, i in enumerate(tuned):
            params[i] = s[j] * params0[i]
        return float(objectives.gradient_quotient(loss_fn, params, (x, y), eps=1e-2)[0])

    s0 = tf.ones([len(tuned)])
    with tf.GradientTape() as tape:
        tape.watch(s0)
        params = [s0[tuned.index(i)] * p if i in tuned else p for i, p in enumerate(params0)]
        value = objectives.gradient_quotient(loss_fn, params, (x, y), eps=1e-2)[0]
    step = 0.02 * np.sign(tape.gradient(value, s0).numpy())
    assert float(value) > 1e6, "the net should be saturated (else the test shows nothing)"
    assert gq(s0 - step) < float(value) < gq(s0 + step)
