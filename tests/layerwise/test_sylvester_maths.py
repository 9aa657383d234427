"""layerwise/sylvester_maths.py: the Sylvester solve against its equation, its minimizer and
SciPy's Bartels–Stewart; the ridge of a singular system; the latent codes."""
import numpy as np
import pytest
import scipy.linalg

from keras_metainit import layerwise
from keras_metainit.layerwise import LayerwiseError


def objective(W, X, S, lam):
    return np.sum((X - W.T @ S) ** 2) + lam * np.sum((W @ X - S) ** 2)


def test_solution_satisfies_the_sylvester_equation():
    rng = np.random.default_rng(0)
    d, k, n, lam = 30, 12, 300, 0.7
    X = rng.standard_normal((d, n)) * rng.uniform(0.1, 3, (d, 1))
    S = layerwise.latent_code("orthogonal", k, n, rng)
    np.testing.assert_allclose(S @ S.T, n * np.eye(k), atol=1e-9)  # orthonormal rows, unit variance
    np.testing.assert_allclose(S.mean(axis=1), 0, atol=1e-12)
    sol = layerwise.sylvester_solve(X, S, lam)
    A, B, C = S @ S.T, lam * X @ X.T, (1 + lam) * S @ X.T
    assert sol.W.shape == (k, d) and sol.ridge == 0.0
    assert np.linalg.norm(A @ sol.W + sol.W @ B - C) / np.linalg.norm(C) < 1e-6
    assert sol.residual < 1e-6
    # it is the minimizer: every small perturbation increases the objective
    f0 = objective(sol.W, X, S, lam)
    for _ in range(3):
        assert objective(sol.W + 1e-3 * rng.standard_normal(sol.W.shape), X, S, lam) > f0


def test_solution_beats_random_kernels_on_fashion_mnist(fmnist):
    x, _ = fmnist
    rng = np.random.default_rng(1)
    X = x[:600].astype(np.float64).T  # d = 784 > n = 600: X Xᵀ is singular, S Sᵀ is not
    S = layerwise.latent_code("orthogonal", 64, X.shape[1], rng)
    sol = layerwise.sylvester_solve(X, S, 1.0)
    assert sol.ridge == 0.0 and sol.residual < 1e-6
    f = objective(sol.W, X, S, 1.0)
    norm = np.linalg.norm(sol.W)
    for _ in range(3):
        R = rng.standard_normal(sol.W.shape)
        assert f < objective(R * norm / np.linalg.norm(R), X, S, 1.0)
    # and than the same kernel rescaled, or a random kernel in the data's span
    assert f < min(objective(c * sol.W, X, S, 1.0) for c in (0.0, 0.8, 1.25))
    R = rng.standard_normal((64, X.shape[1])) @ X.T
    assert f < objective(R * norm / np.linalg.norm(R), X, S, 1.0)


def test_fewer_samples_than_units_and_inputs_is_solved_exactly_in_the_span():
    rng = np.random.default_rng(2)
    d, k, n, lam = 40, 30, 10, 1.0  # n < k and n < d: S Sᵀ and X Xᵀ are both singular
    X, S = rng.standard_normal((d, n)), layerwise.latent_code("random", k, n, rng)
    sol = layerwise.sylvester_solve(X, S, lam)
    A, B, C = S @ S.T, lam * X @ X.T, (1 + lam) * S @ X.T
    assert sol.ridge == 0.0
    assert np.linalg.norm(A @ sol.W + sol.W @ B - C) / np.linalg.norm(C) < 1e-6
    # the minimum-norm solution: nothing outside the span of the samples
    q, _ = np.linalg.qr(X)
    np.testing.assert_allclose(sol.W - sol.W @ q @ q.T, 0, atol=1e-8)


def test_singular_system_gets_a_recorded_ridge():
    rng = np.random.default_rng(2)
    d, k, n, lam = 40, 30, 10, 1.0
    X, S = rng.standard_normal((d, n)), layerwise.latent_code("random", k, n, rng)
    X[:, -1] = X[:, 0]  # a repeated sample: X Xᵀ restricted to the span is singular too
    sol = layerwise.sylvester_solve(X, S, lam)
    A, B, C = S @ S.T, lam * X @ X.T, (1 + lam) * S @ X.T
    expected = layerwise.RIDGE * (np.trace(A) / k + np.trace(B) / d)
    assert sol.ridge == pytest.approx(expected)
    assert np.all(np.isfinite(sol.W))
    # the documented fallback: the regularized equation holds (minimizer of objective + ρ‖W‖²)
    lhs = A @ sol.W + sol.W @ B + sol.ridge * sol.W
    assert np.linalg.norm(lhs - C) / np.linalg.norm(C) < 1e-6
    # same with n >= d (the direct path): a constant-zero input and n < k
    X2, S2 = rng.standard_normal((6, 8)), layerwise.latent_code("random", 12, 8, rng)
    X2[2] = 0.0
    sol2 = layerwise.sylvester_solve(X2, S2, lam)
    A2, B2, C2 = S2 @ S2.T, lam * X2 @ X2.T, (1 + lam) * S2 @ X2.T
    assert sol2.ridge > 0
    lhs2 = A2 @ sol2.W + sol2.W @ B2 + sol2.ridge * sol2.W
    assert np.linalg.norm(lhs2 - C2) / np.linalg.norm(C2) < 1e-6
    with pytest.raises(ValueError, match="both zero"):
        layerwise.sylvester_solve(np.zeros((d, n)), np.zeros((k, n)), lam)
    with pytest.raises(ValueError, match="NaN"):
        layerwise.sylvester_solve(np.full((d, n), np.nan), S, lam)


@pytest.mark.parametrize("d,k,n", [(9, 2, 50), (12, 3, 6), (5, 8, 4)])
def test_batched_group_solve_is_bartels_stewart_per_group(d, k, n):
    rng = np.random.default_rng(5)
    X, S = rng.standard_normal((4, d, n)), rng.standard_normal((4, k, n))
    X[2, :, -1] = X[2, :, 0]  # one group with a repeated sample (a ridge when n < k)
    X[3] = 0.0
    lam = 0.7
    batched = layerwise.sylvester_maths.sylvester_solve_groups(X, S, lam)
    ridges = []
    for g in range(4):
        A, B, C = S[g] @ S[g].T, lam * X[g] @ X[g].T, (1 + lam) * S[g] @ X[g].T
        one = layerwise.sylvester_solve(X[g], S[g], lam)
        np.testing.assert_allclose(batched.W[g], one.W, rtol=1e-6, atol=1e-8)
        ridges.append(one.ridge)
        W = batched.W[g]
        lhs = A @ W + W @ B + one.ridge * W  # the (regularized) equation holds
        assert np.linalg.norm(lhs - C) <= 1e-6 * np.linalg.norm(C) + 1e-12
        if one.ridge == 0 and n >= d:  # the reference: SciPy's general Bartels–Stewart
            np.testing.assert_allclose(W, scipy.linalg.solve_sylvester(A, B, C), rtol=1e-6,
                                       atol=1e-8)
    assert batched.ridge == pytest.approx(max(ridges))
    assert any(r > 0 for r in ridges) == (n < k)


def test_label_code():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 5)
    S = layerwise.latent_code("labels", 10, 20, rng, labels=labels, classes=4)
    # unit j codes class j mod 4: correlates with that class' indicator, noise keeps rows apart
    for j in range(10):
        ind = (labels == j % 4).astype(float)
        assert np.corrcoef(S[j], ind)[0, 1] > 0.95
    assert np.linalg.matrix_rank(S @ S.T) == 10
    with pytest.raises(LayerwiseError, match=r"k=10 units but only n=8"):
        layerwise.latent_code("orthogonal", 10, 8, rng, layer_name="dense_x")
