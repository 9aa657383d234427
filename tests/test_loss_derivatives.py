"""exact_losses.per_example is exact to the third derivative on every backend (backend-neutral: CI runs
this file under TensorFlow, JAX and torch).

Each case differentiates ``f(t) = Σ_i w_i · loss_i(z + t·d)`` three times at ``t = 0`` through the
seam (:mod:`keras_metainit.autodiff`, nested as MetaInit's scale gradient nests it), inside the
backend's compiled loss (a ``tf.function`` on TensorFlow, as the runner calls it), and compares
with closed forms in float64 NumPy, written independently of the code under test:

- softmax cross-entropy ``logsumexp(z) − q·z`` (``q`` one-hot or smoothed): ``f' = E_p[d] − q·d``,
  ``f'' = Var_p[d]``, ``f''' = E_p[(d − E_p d)³]``;
- normalized-probability cross-entropy ``−Σ q_j log p_j + Σq · log Σp``: each log term's
  ``n``-th derivative is ``(−1)^(n−1) (n−1)! (b/a)^n``;
- binary cross-entropy from logits: ``σ(1−σ)d²`` and ``σ(1−σ)(1−2σ)d³``;
- mean squared error: ``2·mean(d²)`` and zero.
"""
import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_metainit import autodiff as ad
from keras_metainit import exact_losses

pytestmark = pytest.mark.backend_neutral

B, C = 8, 5
RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, C, B)
ONEHOT = np.eye(C)[LABELS]
WEIGHTS = RNG.uniform(0.5, 1.5, B)  # every example counts differently
DIRECTION = RNG.normal(size=(B, C))


def _logits(scale):
    return RNG.normal(scale=scale, size=(B, C))


LOGITS = {"moderate": _logits(3.0), "saturated": _logits(60.0)}  # gaps ~100: softmax underflows


def _derivatives(fn, y, z0, d, transform=None):
    """``[f, f', f'', f''']`` at ``t = 0`` by nested seam gradients (float64 NumPy)."""
    y = ops.convert_to_tensor(np.asarray(y, "float32"))
    z0 = ops.convert_to_tensor(np.asarray(z0, "float32"))
    d = ops.convert_to_tensor(np.asarray(d, "float32"))
    w = ops.convert_to_tensor(np.asarray(WEIGHTS, "float32"))

    def f(t):
        z = z0 + t * d
        pred = transform(z) if transform is not None else z
        return ops.sum(w * exact_losses.per_example(fn, y, pred))

    def grad_of(g):
        return lambda t: ad.value_and_grad(g, t)[1]

    d1 = grad_of(f)
    d2 = grad_of(d1)
    d3 = grad_of(d2)
    run = ad.compiled_loss(lambda t: [f(t), d1(t), d2(t), d3(t)])
    return [float(ops.convert_to_numpy(v)) for v in run(ops.convert_to_tensor(0.0))]


def _softmax_ce_reference(z, q, d):
    z = z.astype("float32").astype(np.float64)
    d = d.astype("float32").astype(np.float64)
    m = z.max(-1, keepdims=True)
    p = np.exp(z - m)
    p /= p.sum(-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[:, 0]
    mean = (p * d).sum(-1, keepdims=True)
    c = d - mean
    per = [lse - (q * z).sum(-1), mean[:, 0] - (q * d).sum(-1), (p * c ** 2).sum(-1),
           (p * c ** 3).sum(-1)]
    return [float((WEIGHTS * v).sum()) for v in per]


def _log_derivative(a, b, n):
    """``n``-th derivative of ``log(a + t·b)`` at 0 (``n >= 1``)."""
    return (-1) ** (n - 1) * math.factorial(n - 1) * (b / a) ** n


def _close(got, want, rtol=2e-4):
    scale = max(abs(v) for v in want)
    for order, (g, w) in enumerate(zip(got, want)):
        assert math.isfinite(g), (order, got)
        assert abs(g - w) <= rtol * abs(w) + 1e-6 * scale, (order, got, want)


@pytest.mark.parametrize("logits", ["moderate", "saturated"])
@pytest.mark.parametrize("fn,y", [
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), LABELS),
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), LABELS[:, None]),
    (keras.losses.CategoricalCrossentropy(from_logits=True), ONEHOT),
    (keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), ONEHOT),
], ids=["sparse", "sparse_column", "categorical", "smoothed"])
def test_softmax_cross_entropy_from_logits_is_exact_to_third_order(fn, y, logits):
    z = LOGITS[logits]
    q = ONEHOT * 0.9 + 0.1 / C if getattr(fn, "_fn_kwargs", {}).get("label_smoothing") \
        else ONEHOT
    _close(_derivatives(fn, y, z, DIRECTION), _softmax_ce_reference(z, q, DIRECTION))


@pytest.mark.parametrize("fn,y", [
    (keras.losses.SparseCategoricalCrossentropy(), LABELS),
    (keras.losses.CategoricalCrossentropy(), ONEHOT),
], ids=["sparse", "categorical"])
def test_a_softmax_output_is_exact_to_third_order(fn, y):
    """Probabilities from ``keras.activations.softmax``: the loss of its logits."""
    z = LOGITS["moderate"]
    got = _derivatives(fn, y, z, DIRECTION, keras.activations.softmax)
    _close(got, _softmax_ce_reference(z, ONEHOT, DIRECTION), rtol=1e-3)


@pytest.mark.skipif(ad.BACKEND == "jax", reason="a JAX array carries no `_keras_logits`: a "
                                                "saturated softmax output is clipped, as in "
                                                "Keras's JAX losses")
def test_a_saturated_softmax_output_is_read_from_its_logits():
    """Where the probabilities underflow, the derivatives are still those of the logits: found
    through ``_keras_logits`` (torch) or the graph's ``Softmax`` op (TensorFlow's special form,
    :func:`keras_metainit.autodiff.softmax_logits`); clipped probabilities would give zeros."""
    z = LOGITS["saturated"]
    if ad.BACKEND == "tensorflow":
        import tensorflow as tf  # the graph's Softmax op, with no `_keras_logits` attached

        softmax = tf.nn.softmax
    else:
        softmax = keras.activations.softmax
    got = _derivatives(keras.losses.SparseCategoricalCrossentropy(), LABELS, z, DIRECTION,
                       softmax)
    _close(got, _softmax_ce_reference(z, ONEHOT, DIRECTION))


def test_normalized_probabilities_cross_entropy_is_exact_to_third_order():
    p = RNG.uniform(0.2, 1.0, (B, C))  # unnormalized, away from the clip
    d = 0.1 * DIRECTION
    got = _derivatives(keras.losses.CategoricalCrossentropy(), ONEHOT, p, d)
    p64, d64 = p.astype("float32").astype(np.float64), d.astype("float32").astype(np.float64)
    want = [float((WEIGHTS * -(ONEHOT * np.log(p64 / p64.sum(-1, keepdims=True))).sum(-1)).sum())]
    for n in (1, 2, 3):
        per = (-(ONEHOT * _log_derivative(p64, d64, n)).sum(-1)
               + _log_derivative(p64.sum(-1), d64.sum(-1), n))
        want.append(float((WEIGHTS * per).sum()))
    _close(got, want)


def test_binary_cross_entropy_from_logits_is_exact_to_third_order():
    z, d = LOGITS["moderate"][:, :1], DIRECTION[:, :1]
    y = (LABELS[:, None] % 2).astype("float64")
    got = _derivatives(keras.losses.BinaryCrossentropy(from_logits=True), y, z, d)
    z64, d64 = z.astype("float32").astype(np.float64), d.astype("float32").astype(np.float64)
    s = 1.0 / (1.0 + np.exp(-z64))
    per = [np.logaddexp(0.0, z64) - y * z64, (s - y) * d64, s * (1 - s) * d64 ** 2,
           s * (1 - s) * (1 - 2 * s) * d64 ** 3]
    _close(got, [float((WEIGHTS * v[:, 0]).sum()) for v in per])


def test_mean_squared_error_is_exact_to_third_order():
    z = LOGITS["moderate"]
    got = _derivatives(keras.losses.MeanSquaredError(), ONEHOT, z, DIRECTION)
    z64, d64 = z.astype("float32").astype(np.float64), DIRECTION.astype("float32").astype(
        np.float64)
    per = [((ONEHOT - z64) ** 2).mean(-1), (-2 * (ONEHOT - z64) * d64).mean(-1),
           (2 * d64 ** 2).mean(-1), 0 * z64[:, 0]]
    want = [float((WEIGHTS * v).sum()) for v in per]
    _close(got, want)
