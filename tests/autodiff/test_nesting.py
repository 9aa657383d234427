"""The autodiff seam's nesting on every backend (backend-neutral: CI runs this file under
TensorFlow, JAX and torch): gradients nest to the third order (MetaInit's scale gradient),
``stop_gradient`` blocks outer derivatives too, and gradients reach a Keras model's weights
through ``stateless_call`` (on torch, keras-team/keras#20279 reports zero gradients through
``torch.func.functional_call``). The first-order contract is ``test_autodiff.py``'s."""
import keras
import numpy as np
import pytest
from keras import ops

from keras_metainit import autodiff as ad

pytestmark = pytest.mark.backend_neutral

A = np.array([0.3, -0.7, 1.1], "float32")
B = np.array([[0.5, -0.2], [0.9, 0.4]], "float32")


def _t(a):
    return ops.convert_to_tensor(np.asarray(a, "float32"))


def _np(t):
    return np.asarray(ops.convert_to_numpy(t), np.float64)


def _f(p):
    """``f(a, B) = Σ sin(a) · Σ B²``."""
    return ops.sum(ops.sin(p[0])) * ops.sum(ops.square(p[1]))


def test_gradients_nest_to_the_third_order():
    """``d³/dt³ f(a + t·u, B)`` at 0 by three nested gradients, against its closed form
    ``−Σ cos(a) u³ · Σ B²``: a gradient taken inside a function an outer gradient
    differentiates is differentiated again."""
    u = np.array([1.0, -0.5, 2.0], "float32")

    def along(t):
        return _f([_t(A) + t * _t(u), _t(B)])

    def derivative(g):
        return lambda t: ad.value_and_grad(g, t)[1]

    third = ad.compiled_loss(derivative(derivative(derivative(along))))
    got = float(_np(third(_t(0.0))))
    a, b, u64 = A.astype(np.float64), B.astype(np.float64), u.astype(np.float64)
    want = -np.sum(np.cos(a) * u64 ** 3) * np.sum(b ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_stop_gradient_blocks_outer_derivatives():
    """``g(x) = x · stop(x²)``: the inner gradient is ``stop(x²)`` and the outer derivative of
    that gradient is zero, at every level."""

    def g(x):
        return ops.sum(x * ad.stop_gradient(ops.square(x)))

    def inner(x):
        return ops.sum(ad.value_and_grad(g, x)[1])

    value, grad = ad.value_and_grad(g, _t(A))
    np.testing.assert_allclose(_np(grad), A.astype(np.float64) ** 2, rtol=1e-6)
    _, outer = ad.value_and_grad(inner, _t(A))
    np.testing.assert_array_equal(_np(outer), np.zeros(3))


def test_gradients_reach_a_models_weights_through_stateless_call():
    """Dense(2) then a sum of squares: ``∂/∂W Σ (xW + b)² = 2 xᵀ(xW + b)``, nonzero."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    weights = [v.value for v in model.trainable_variables]

    def f(p):
        y, _ = model.stateless_call(p, model.non_trainable_variables, _t(x))
        return ops.sum(ops.square(y))

    _, grads = ad.value_and_grad(f, weights)
    w, b = (_np(v) for v in weights)
    z = x.astype(np.float64) @ w + b
    np.testing.assert_allclose(_np(grads[0]), 2 * x.T.astype(np.float64) @ z, rtol=1e-5)
    np.testing.assert_allclose(_np(grads[1]), 2 * z.sum(0), rtol=1e-5)
    assert np.all(_np(grads[0]) != 0)
