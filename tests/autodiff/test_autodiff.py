"""The autodiff seam on the backend in use: ``value_and_grad`` and ``values_and_grads`` against
central finite differences in float64 NumPy, ``has_aux``, ``stop_gradient``, and a second
derivative taken through a first one (the nesting every objective relies on)."""
import numpy as np
import pytest
from keras import ops

from keras_metainit import autodiff as ad

pytestmark = pytest.mark.backend_neutral

RNG = np.random.default_rng(0)
A = RNG.normal(size=(2, 3))
B = RNG.normal(size=(3, 2))


def f_np(a, b):
    """sum(sin(a) @ b) + sum(a²) · sum(b³), in float64."""
    return np.sum(np.sin(a) @ b) + np.sum(a ** 2) * np.sum(b ** 3)


def f(params):
    a, b = params
    return ops.sum(ops.matmul(ops.sin(a), b)) + ops.sum(a ** 2) * ops.sum(b ** 3)


def g_np(a, b):
    """The second scalar of ``values_and_grads``: sum(a · b.T) ** 2."""
    return np.sum(a * b.T) ** 2


def g(params):
    a, b = params
    return ops.sum(a * ops.transpose(b)) ** 2


def grad_np(a, b):
    """The gradient of :func:`f_np`, written out (checked against finite differences below)."""
    return (np.cos(a) * b.sum(axis=1)[None, :] + 2 * a * np.sum(b ** 3),
            np.sin(a).sum(axis=0)[:, None] * np.ones_like(b) + 3 * b ** 2 * np.sum(a ** 2))


def finite_differences(fn, arrays, h=1e-6):
    """Central differences of ``fn(*arrays)`` with respect to every entry, float64."""
    out = []
    for k, x in enumerate(arrays):
        d = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            up = [a.copy() for a in arrays]
            down = [a.copy() for a in arrays]
            up[k][idx] += h
            down[k][idx] -= h
            d[idx] = (fn(*up) - fn(*down)) / (2 * h)
        out.append(d)
    return out


def tensors(*arrays):
    return [ops.convert_to_tensor(a.astype("float32")) for a in arrays]


def test_the_written_out_reference_gradient_is_right():
    for want, got in zip(finite_differences(f_np, [A, B]), grad_np(A, B)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_value_and_grad_matches_finite_differences():
    value, grads = ad.value_and_grad(f, tensors(A, B))
    np.testing.assert_allclose(float(value), f_np(A, B), rtol=1e-5)
    assert len(grads) == 2
    for got, want in zip(grads, finite_differences(f_np, [A, B])):
        np.testing.assert_allclose(ops.convert_to_numpy(got), want, rtol=1e-4, atol=1e-5)


def test_has_aux_returns_the_aux_and_differentiates_the_value_only():
    (value, aux), grads = ad.value_and_grad(lambda p: (f(p), {"twice": 2.0 * f(p)}),
                                            tensors(A, B), has_aux=True)
    np.testing.assert_allclose(float(aux["twice"]), 2 * f_np(A, B), rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(grads[0]), grad_np(A, B)[0], rtol=1e-4,
                               atol=1e-5)


def test_values_and_grads_gives_one_gradient_list_per_value():
    values, grads = ad.values_and_grads(lambda p: [f(p), g(p)], tensors(A, B))
    np.testing.assert_allclose([float(v) for v in values], [f_np(A, B), g_np(A, B)], rtol=1e-5)
    for fn, per_value in zip((f_np, g_np), grads):
        for got, want in zip(per_value, finite_differences(fn, [A, B])):
            np.testing.assert_allclose(ops.convert_to_numpy(got), want, rtol=1e-4, atol=1e-5)


def test_a_tensor_the_function_does_not_use_gets_a_zero_gradient():
    _, grads = ad.value_and_grad(lambda p: ops.sum(p[0] ** 2), tensors(A, B))
    np.testing.assert_array_equal(ops.convert_to_numpy(grads[1]), np.zeros_like(B))


def test_stop_gradient_makes_a_constant():
    # d/da sum(a · stop(a)) = stop(a) = a, where without the stop it would be 2a
    _, grads = ad.value_and_grad(lambda p: ops.sum(p[0] * ad.stop_gradient(p[0])), tensors(A))
    np.testing.assert_allclose(ops.convert_to_numpy(grads[0]), A, rtol=1e-6)


def test_a_gradient_is_differentiated_again_by_an_outer_gradient():
    """The outer derivative of ⟨∇f(p), v⟩ is the Hessian-vector product H·v: zero if the inner
    gradient were a constant to the outer one."""
    v = [RNG.normal(size=A.shape), RNG.normal(size=B.shape)]
    v_t = tensors(*v)

    def directional(params):
        _, grads = ad.value_and_grad(f, params)
        return ops.sum(grads[0] * v_t[0]) + ops.sum(grads[1] * v_t[1])

    value, hv = ad.value_and_grad(directional, tensors(A, B))
    ga, gb = grad_np(A, B)
    np.testing.assert_allclose(float(value), np.sum(ga * v[0]) + np.sum(gb * v[1]), rtol=1e-4)
    h = 1e-6
    up = grad_np(A + h * v[0], B + h * v[1])
    down = grad_np(A - h * v[0], B - h * v[1])
    for got, u, d in zip(hv, up, down):
        np.testing.assert_allclose(ops.convert_to_numpy(got), (u - d) / (2 * h), rtol=1e-3,
                                   atol=1e-4)
