"""The Sylvester maths: the latent codes a layer is fitted to and the solve of the Sylvester
equation, in float64 NumPy (the method object that applies them: :mod:`keras_metainit.layerwise.sylvester`).

Das, Bhalgat & Porikli, "Data-driven Weight Initialization with Sylvester Solvers", 2021,
reconstructed from the abstract as the semantic-autoencoder form
``min_W ‖X − WᵀS‖² + λ‖WX − S‖²``, whose stationarity condition is a Sylvester equation.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np
import scipy.linalg

from keras_metainit.layerwise.activations import LayerwiseError

__all__ = ["SylvesterSolution", "latent_code", "latent_codes", "sylvester_solve",
           "sylvester_solve_groups", "RIDGE", "RCOND", "LABEL_NOISE", "LATENTS"]


#: Relative ridge of a singular or ill-conditioned Sylvester system: ``ρ = RIDGE · (tr(SSᵀ)/k +
#: λ·tr(XXᵀ)/d)``, i.e. ``RIDGE`` times the mean eigenvalue of the operator ``W ↦ SSᵀW + λWXXᵀ``.
RIDGE = 1e-6
_eigh = np.linalg.eigh  # the one decomposition of the solve (a test breaks it on purpose)
#: The system counts as ill-conditioned when its smallest eigenvalue is below ``RCOND`` times its
#: largest (the operator's eigenvalues are the sums ``a_i + b_j`` of those of SSᵀ and λXXᵀ).
RCOND = 1e-10
#: Standard deviation of the noise added to the label code (``latent="labels"``).
LABEL_NOISE = 0.1
LATENTS = ("orthogonal", "random", "labels")


class SylvesterSolution(NamedTuple):
    """The result of :func:`sylvester_solve`.

    Attributes:
        W: the solution, ``k × d`` (float64).
        ridge: the ridge ``ρ`` added to the operator (0.0 when none was needed).
        residual: ``‖A W + W B − C‖_F / ‖C‖_F`` of the *unregularized* equation (about
            ``ρ‖W‖/‖C‖`` when a ridge was added).
    """

    W: np.ndarray
    ridge: float
    residual: float



def latent_code(latent: str, k: int, n: int, rng: np.random.Generator,
                labels: Optional[np.ndarray] = None, classes: Optional[int] = None,
                layer_name: str = "?") -> np.ndarray:
    """The latent code ``S`` (``k × n``) a layer of ``k`` units is fitted to.

    - ``"orthogonal"``: rows orthonormal and orthogonal to the all-ones vector, times ``√n``:
      every unit has mean 0 and variance exactly 1 over the samples and ``SSᵀ = n·I``. Needs
      ``n > k``.
    - ``"random"``: i.i.d. standard normal.
    - ``"labels"``: unit ``j`` codes class ``j mod C``: its row is the indicator of that class,
      standardized over the samples (mean 0, variance 1; a class absent from the samples gives
      zeros), plus ``LABEL_NOISE`` (0.1) standard normal noise so that units coding the same
      class differ and ``SSᵀ`` is nonsingular when ``n ≥ k``.

    Args:
        latent: ``"orthogonal"``, ``"random"`` or ``"labels"``.
        k: units of the layer (rows of ``S``).
        n: samples (columns of ``S``).
        rng: the random generator.
        labels: integer class of every sample, ``(n,)`` (``latent="labels"`` only).
        classes: number of classes ``C`` (default ``labels.max() + 1``).
        layer_name: the layer, for error messages.

    Returns:
        ``S``, float64 ``(k, n)``.

    Raises:
        LayerwiseError: ``latent="orthogonal"`` with ``n <= k``.
        ValueError: unknown ``latent``, or ``latent="labels"`` without labels.
    """
    if latent == "orthogonal":
        if n <= k:
            raise LayerwiseError(
                f"latent='orthogonal' needs more samples than units: layer '{layer_name}' has "
                f"k={k} units but only n={n} samples (no {k} orthonormal zero-mean codes exist in "
                f"{n} dimensions). Pass more data (or raise `max_samples`), or use latent='random' "
                "or 'labels', which work with fewer samples than units."
            )
        g = rng.standard_normal((n, k))
        g -= g.mean(axis=0, keepdims=True)  # orthogonal to the all-ones vector: zero-mean units
        q, r = scipy.linalg.qr(g, mode="economic")
        q *= np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
        return math.sqrt(n) * q.T
    if latent == "random":
        return rng.standard_normal((k, n))
    if latent == "labels":
        if labels is None:
            raise ValueError("latent='labels' needs the class of every sample. Received: labels=None")
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        c = int(classes) if classes is not None else int(labels.max()) + 1
        s = np.zeros((k, n))
        for j in range(k):
            ind = (labels == j % c).astype(np.float64)
            p = ind.mean()
            if 0.0 < p < 1.0:
                s[j] = (ind - p) / math.sqrt(p * (1.0 - p))
        return s + LABEL_NOISE * rng.standard_normal((k, n))
    raise ValueError(f"Argument `latent` must be one of {LATENTS}. Received: latent={latent!r}")


def sylvester_solve(X: np.ndarray, S: np.ndarray, lam: float = 1.0) -> SylvesterSolution:
    """Solve ``(S Sᵀ) W + W (λ X Xᵀ) = (1+λ) S Xᵀ`` for ``W`` in float64.

    This is the stationarity condition of ``min_W ‖X − WᵀS‖² + λ‖WX − S‖²`` (encoding plus
    decoding loss). ``SSᵀ`` and ``λXXᵀ`` are symmetric, so Bartels–Stewart reduces to their
    eigendecompositions (their Schur forms are diagonal): with ``SSᵀ = U diag(α) Uᵀ`` and
    ``λXXᵀ = V diag(β) Vᵀ``, ``W = U [(Uᵀ C V) / (α_i + β_j)] Vᵀ`` (:func:`sylvester_solve_groups`
    with one group; a quarter of the time of ``scipy.linalg.solve_sylvester``'s general Schur
    decompositions).

    - ``n ≥ d``: the equation is solved as it stands (``d × d`` on the right).
    - ``n < d`` (fewer samples than inputs): the solution lies in the span of the samples,
      ``W = M Xᵀ`` with ``(SSᵀ) M + M (λ XᵀX) = (1+λ) S``, an ``n × n`` system on the right:
      cheaper, and exact even when ``SSᵀ`` is singular (``n < k``), where it gives the
      minimum-norm minimizer.

    The operator's eigenvalues are the sums ``a_i + b_j`` of the eigenvalues of ``SSᵀ`` and of
    the right-hand matrix (``λXXᵀ`` or ``λXᵀX``), so with ``SSᵀ`` positive definite the solution
    is unique even when ``XXᵀ`` is singular (constant pixels). When the smallest sum is below
    ``RCOND`` (1e-10) times the largest (both matrices singular: e.g. fewer samples than units
    *and* repeated or zero samples), a ridge ``ρ·W`` is added to the left-hand side with
    ``ρ = RIDGE · (tr(SSᵀ)/k + λ·tr(XXᵀ)/d)``, ``RIDGE = 1e-6``: the solution then minimizes
    the objective plus ``ρ‖W‖²``.

    Args:
        X: inputs, ``d × n`` (one column per sample).
        S: latent code, ``k × n``.
        lam: the weight ``λ ≥ 0`` of the decoding loss.

    Returns:
        A :class:`SylvesterSolution` ``(W, ridge, residual)`` with ``W`` of shape ``k × d``.

    Raises:
        ValueError: mismatched shapes, non-finite inputs, or a system that even a ridge cannot
            make solvable (``X`` and ``S`` both zero); a non-finite solution.

    Examples:
        >>> import numpy as np
        >>> from keras_metainit.layerwise import latent_code, sylvester_solve
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(20, 100))              # d = 20 inputs, n = 100 samples
        >>> S = latent_code("orthogonal", 8, 100, rng)  # k = 8 units
        >>> sol = sylvester_solve(X, S, lam=1.0)
        >>> kernel = sol.W.T                            # a Dense kernel (d, k)
        >>> kernel.shape, sol.ridge, bool(sol.residual < 1e-6)
        ((20, 8), 0.0, True)

    Reference:
        Das, Bhalgat & Porikli, "Data-driven Weight Initialization with Sylvester Solvers", 2021.
    """
    X = np.asarray(X, np.float64)
    S = np.asarray(S, np.float64)
    if X.ndim != 2 or S.ndim != 2 or X.shape[1] != S.shape[1]:
        raise ValueError(f"`X` (d × n) and `S` (k × n) must share n. Received: X.shape={X.shape}, "
                         f"S.shape={S.shape}")
    sol = sylvester_solve_groups(X[None], S[None], lam)
    return SylvesterSolution(sol.W[0], sol.ridge, sol.residual)



def sylvester_solve_groups(X: np.ndarray, S: np.ndarray, lam: float = 1.0) -> SylvesterSolution:
    """:func:`sylvester_solve` for ``G`` independent systems at once (a depthwise kernel).

    ``SSᵀ`` and ``λXXᵀ`` are symmetric, so with their eigendecompositions ``U diag(α) Uᵀ`` and
    ``V diag(β) Vᵀ`` the solution is ``W = U [(Uᵀ C V) / (α_i + β_j)] Vᵀ`` (Bartels–Stewart for
    symmetric matrices), with the span path for ``n < d`` and the ridge rule of
    :func:`sylvester_solve` per group, in a few batched calls.

    Args:
        X: inputs, ``G × d × n``.
        S: latent codes, ``G × k × n``.
        lam: the weight ``λ ≥ 0`` of the decoding loss.

    Returns:
        A :class:`SylvesterSolution` with ``W`` of shape ``G × k × d``, the largest ridge and
        the largest residual over the groups.

    Raises:
        ValueError: mismatched shapes, non-finite inputs, a group whose ``X`` and ``S`` are both
            zero, or a non-finite solution.

    Examples:
        >>> import numpy as np
        >>> from keras_metainit.layerwise.sylvester_maths import (sylvester_solve,
        ...                                                       sylvester_solve_groups)
        >>> rng = np.random.default_rng(0)
        >>> X, S = rng.normal(size=(3, 9, 50)), rng.normal(size=(3, 4, 50))  # 3 groups
        >>> sol = sylvester_solve_groups(X, S, lam=1.0)
        >>> sol.W.shape
        (3, 4, 9)
        >>> bool(np.allclose(sol.W[1], sylvester_solve(X[1], S[1], lam=1.0).W))  # group by group
        True
    """
    X = np.asarray(X, np.float64)
    S = np.asarray(S, np.float64)
    if X.ndim != 3 or S.ndim != 3 or X.shape[0] != S.shape[0] or X.shape[2] != S.shape[2]:
        raise ValueError(f"`X` (G × d × n) and `S` (G × k × n) must share G and n. Received: "
                         f"X.shape={X.shape}, S.shape={S.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(S))):
        raise ValueError("`X` and `S` must be finite; they contain NaN or Inf.")
    if lam < 0:
        raise ValueError(f"Argument `lam` must be >= 0. Received: lam={lam!r}")
    (_, k, n), d = S.shape, X.shape[1]
    Xt = np.swapaxes(X, 1, 2)
    a, c = S @ np.swapaxes(S, 1, 2), (1.0 + lam) * (S @ Xt)
    in_span = n < d
    b, rhs = (lam * (Xt @ X), (1.0 + lam) * S) if in_span else (lam * (X @ Xt), c)
    alpha, u = _eigh(a)
    beta, v = _eigh(b)
    lo, hi = alpha[:, 0] + beta[:, 0], alpha[:, -1] + beta[:, -1]
    tr = np.trace(a, axis1=1, axis2=2) / k + np.trace(b, axis1=1, axis2=2) / d
    ridge = np.where(lo > RCOND * hi, 0.0, RIDGE * tr)
    if np.any((lo <= RCOND * hi) & ~(ridge > 0)):
        raise ValueError("The Sylvester system is singular and cannot be regularized: `X` and `S` "
                         "are both zero.")
    ut = np.swapaxes(u, 1, 2)
    m = u @ ((ut @ rhs @ v) / (alpha[:, :, None] + beta[:, None, :] + ridge[:, None, None])) \
        @ np.swapaxes(v, 1, 2)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"The Sylvester solve gave a non-finite solution (ridge={ridge.max():.3g}).")
    w = m @ Xt if in_span else m
    lhs = a @ w + lam * ((w @ X) @ Xt)
    c_norm = np.linalg.norm(c, axis=(1, 2))
    residual = np.linalg.norm(lhs - c, axis=(1, 2)) / np.where(c_norm > 0, c_norm, 1.0)
    return SylvesterSolution(w, float(ridge.max()), float(residual.max()))


def latent_codes(latent: str, groups: int, k: int, n: int, rng: np.random.Generator,
                 labels: Optional[np.ndarray] = None, classes: Optional[int] = None,
                 layer_name: str = "?") -> np.ndarray:
    """:func:`latent_code` for ``groups`` independent groups, ``(groups, k, n)`` float64 (the
    orthogonal and random codes drawn in one batch)."""
    if latent == "orthogonal" and n > k and groups == 1:
        return latent_code(latent, k, n, rng)[None]
    if latent == "orthogonal" and n > k:
        g = rng.standard_normal((groups, n, k))
        g -= g.mean(axis=1, keepdims=True)
        q, r = np.linalg.qr(g)
        diag = np.diagonal(r, axis1=1, axis2=2)
        q = q * np.sign(np.where(diag == 0, 1.0, diag))[:, None, :]
        return math.sqrt(n) * np.swapaxes(q, 1, 2)
    if latent == "random":
        return rng.standard_normal((groups, k, n))
    return np.stack([latent_code(latent, k, n, rng, labels=labels, classes=classes,
                                 layer_name=layer_name) for _ in range(groups)])
