"""Objectives against independent float64 references and finite differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import objectives
from keras_metainit.losses import resolve_loss
from keras_metainit.model_fn import make_loss_fn

# values against references: CI runs them on both CPU kernel paths
pytestmark = pytest.mark.numerics


def _tiny_model(dtype="float64", seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((5,), dtype=dtype),
        keras.layers.Dense(6, activation="tanh", bias_initializer="random_normal", dtype=dtype),
        keras.layers.Dense(4, activation="tanh", bias_initializer="random_normal", dtype=dtype),
        keras.layers.Dense(3, dtype=dtype),
    ])


def _numpy_forward_grad(weights, x, y):
    """Loss and gradient of the tiny tanh MLP, written out by hand in float64 NumPy."""
    (w1, b1, w2, b2, w3, b3) = weights
    h1 = np.tanh(x @ w1 + b1)
    h2 = np.tanh(h1 @ w2 + b2)
    z = h2 @ w3 + b3
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = len(x)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dz = p.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    gw3, gb3 = h2.T @ dz, dz.sum(0)
    dh2 = dz @ w3.T * (1 - h2**2)
    gw2, gb2 = h1.T @ dh2, dh2.sum(0)
    dh1 = dh2 @ w2.T * (1 - h1**2)
    gw1, gb1 = x.T @ dh1, dh1.sum(0)
    return loss, [gw1, gb1, gw2, gb2, gw3, gb3]


def _reference_gq(weights, x, y, eps=1e-5, h=1e-5):
    """GQ with the Hessian-gradient product by central differences of the hand-written gradient."""
    _, g = _numpy_forward_grad(weights, x, y)
    plus = [w + h * gi for w, gi in zip(weights, g)]
    minus = [w - h * gi for w, gi in zip(weights, g)]
    _, gp = _numpy_forward_grad(plus, x, y)
    _, gm = _numpy_forward_grad(minus, x, y)
    hg = [(a - b) / (2 * h) for a, b in zip(gp, gm)]
    g_flat = np.concatenate([t.ravel() for t in g])
    hg_flat = np.concatenate([t.ravel() for t in hg])
    sign = np.where(g_flat >= 0, 1.0, -1.0)
    return np.mean(np.abs((g_flat - hg_flat) / (g_flat + eps * sign) - 1.0))


@pytest.fixture(scope="module")
def tiny():
    model = _tiny_model()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 5))
    y = rng.integers(0, 3, size=16)
    return model, x, y


@pytest.mark.backend_neutral
def test_gradient_quotient_matches_float64_reference(tiny):
    model, x, y = tiny
    weights = [v.numpy() for v in model.trainable_variables]
    expected = _reference_gq(weights, x, y)
    got = km.gradient_quotient(model, (x, y), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert abs(got - expected) / expected < 1e-4, (got, expected)


def _gq(loss_fn, params, batch):
    return objectives.gradient_quotient(loss_fn, params, batch)[0]


def _objective_of_scales(model, x, y, scales, objective=_gq):
    """``(f, f(scales), ∇f(scales))`` for ``f(s)`` = the objective at the kernels scaled by ``s``."""
    spec = resolve_loss(model, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss_fn = make_loss_fn(model, spec)
    kernels = [i for i, v in enumerate(model.trainable_variables) if len(v.shape) >= 2]

    def f(s):
        params = [v.value for v in model.trainable_variables]
        for j, i in enumerate(kernels):
            params[i] = s[j] * params[i]
        return objective(loss_fn, params, (tf.constant(x), tf.constant(y)))

    s = tf.constant(scales, model.trainable_variables[0].dtype)
    with tf.GradientTape() as tape:
        tape.watch(s)
        value = f(s)
    return f, value, tape.gradient(value, s)


def _gc_target(independent):
    def objective(loss_fn, params, batch):  # GradCosine's released target: -GC - Σ‖g_i‖
        gc, _, norms, _ = objectives.grad_cosine(loss_fn, params, batch, 4, 0.2, independent)
        return -gc - tf.reduce_sum(norms)
    return objective


@pytest.mark.parametrize("objective", [_gq, _gc_target(True), _gc_target(False)],
                         ids=["gq", "gc_chunkwise", "gc_masked"])
def test_scale_gradient_matches_central_differences(tiny, objective):
    model, x, y = tiny
    scales = np.array([0.9, 1.1, 0.8])
    f, _, grad = _objective_of_scales(model, x, y, scales, objective)
    h = 1e-5
    fd = []
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd.append((float(f(tf.constant(scales + e))) - float(f(tf.constant(scales - e)))) / (2 * h))
    np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-4, atol=1e-7)
    assert np.all(np.abs(fd) > 1e-4), "test needs a non-trivial gradient"


@pytest.mark.numerics
@pytest.mark.parametrize("eps", [1e-2, 1e-5])
def test_finite_difference_gq_and_scale_gradient_match_exact_in_float32(tiny, eps):
    """GQ with ``hvp="finite_difference"`` (a central difference of the gradient in float32, at
    Stan's step) against the exact one, value and scale gradient, on a smooth MLP; a step 1000×
    too large is caught by the same comparison."""
    _, x, y = tiny
    model = _tiny_model("float32")
    x = x.astype("float32")
    scales = np.array([0.9, 1.1, 0.8])
    root_eps = float(np.sqrt(np.finfo("float32").eps))

    def compare(hvp, fd_step=None):
        def objective(loss_fn, params, batch):
            return objectives.gradient_quotient(loss_fn, params, batch, eps, hvp, fd_step)[0]
        _, value, grad = _objective_of_scales(model, x, y, scales, objective)
        return float(value), grad.numpy()

    exact, exact_grad = compare("exact")
    assert np.all(np.abs(exact_grad) > 1e-2), "test needs a non-trivial scale gradient"

    def agree(value, grad):
        cosine = grad @ exact_grad / np.linalg.norm(grad) / np.linalg.norm(exact_grad)
        return (abs(value - exact) <= 1e-2 * exact and cosine > 0.99
                and np.linalg.norm(grad - exact_grad) <= 0.03 * np.linalg.norm(exact_grad))

    approx, approx_grad = compare("finite_difference")
    assert agree(approx, approx_grad), (approx, exact, approx_grad, exact_grad)
    assert not agree(*compare("finite_difference", 1e3 * root_eps))


@pytest.mark.backend_neutral
def test_chunk_bounds_follow_the_formula():
    # B = 20, D = 4, r = 0.2: l = 5; chunk i = [4 i, 6 (i + 1)) clipped to 20.
    assert objectives.chunk_bounds(20, 4, 0.2) == [(0, 6), (4, 12), (8, 18), (12, 20)]
    assert objectives.chunk_bounds(8, 2, 0.0) == [(0, 4), (4, 8)]
    with pytest.raises(ValueError, match="splits"):
        objectives.chunk_bounds(8, 1)
    with pytest.raises(ValueError, match="overlap"):
        objectives.chunk_bounds(8, 2, 1.5)


@pytest.mark.backend_neutral
def test_grad_cosine_matches_chunk_by_chunk_computation(tiny):
    model, x, y = tiny
    weights = [v.numpy() for v in model.trainable_variables]
    got = km.grad_cosine(model, (x, y), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                         splits=4, overlap=0.2)
    # Independent: per-chunk gradients one by one (hand-written), cosines averaged over pairs.
    bounds = [(0, 4), (3, 9), (6, 14), (9, 16)]  # B = 16, l = 4: [3.2 i, 4.8 (i + 1)), rounded down
    assert objectives.chunk_bounds(16, 4, 0.2) == bounds
    grads = []
    for lo, hi in bounds:
        _, g = _numpy_forward_grad(weights, x[lo:hi], y[lo:hi])
        grads.append(np.concatenate([t.ravel() for t in g]))
    cos = [grads[i] @ grads[j] / np.linalg.norm(grads[i]) / np.linalg.norm(grads[j])
           for i in range(4) for j in range(4) if i != j]
    assert abs(got["gc"] - np.mean(cos)) < 1e-5
    assert abs(got["gn"] - np.mean([np.linalg.norm(g) for g in grads])) < 1e-5 * got["gn"]


def test_grad_cosine_chunkwise_forward_gives_the_same_values(tiny):
    """Running each chunk forward on its own (no batch statistics) changes nothing but cost."""
    model, x, y = tiny
    spec = resolve_loss(model, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss_fn = make_loss_fn(model, spec)
    assert loss_fn.examples_independent
    params = [v.value for v in model.trainable_variables]
    batch = (tf.constant(x), tf.constant(y))
    whole = objectives.grad_cosine(loss_fn, params, batch, 4, 0.2, examples_independent=False)
    split = objectives.grad_cosine(loss_fn, params, batch, 4, 0.2, examples_independent=True)
    for a, b in zip(whole, split):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)
