"""The Sylvester initialization: the maths (latent codes, the solve) and the method object.

Das, Bhalgat & Porikli, "Data-driven Weight Initialization with Sylvester Solvers", 2021,
reconstructed from the abstract as the semantic-autoencoder form
``min_W ‖X − WᵀS‖² + λ‖WX − S‖²``, whose stationarity condition is a Sylvester equation.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import scipy.linalg
import tensorflow as tf

from keras_metainit import validation
from keras_metainit.layerwise.activations import LayerwiseError, describe, subsample, warn
from keras_metainit.layerwise.kinds import stage_variance
from keras_metainit.methods import LayerwiseMethod

__all__ = ["Sylvester", "SylvesterSolution", "latent_code", "sylvester_solve",
           "sylvester_solve_groups", "RIDGE", "RCOND",
           "LABEL_NOISE", "LATENTS"]


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

    Example:
        >>> sol = sylvester_solve(X, S, lam=1.0)
        >>> kernel = sol.W.T            # a Dense kernel (d, k)

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

    Example:
        >>> sol = sylvester_solve_groups(patches.transpose(1, 2, 0), codes, lam=1.0)
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


def _class_labels(y: np.ndarray, label_kind: str, units: Optional[int]) -> Tuple[np.ndarray, int]:
    """Integer classes and their number C, from labels in the loss's format."""
    if label_kind == "sparse":
        labels = y.reshape(-1).astype(np.int64)
        return labels, max(int(units or 0), int(labels.max()) + 1)
    if label_kind == "onehot":
        return np.argmax(y.reshape(len(y), -1), axis=-1), int(y.reshape(len(y), -1).shape[-1])
    if label_kind == "binary" and y.reshape(len(y), -1).shape[-1] == 1:
        return (y.reshape(-1) > 0.5).astype(np.int64), 2
    raise ValueError(
        "Sylvester(latent='labels') needs class labels (a sparse or categorical cross-entropy, "
        f"or a binary loss with one output unit). Received labels for a {label_kind!r} loss of "
        f"shape {tuple(y.shape)}."
    )



class Sylvester(LayerwiseMethod):
    """Data-driven init: each kernel solves a Sylvester equation on its input activations.

    Layer by layer, in the order the model calls them, for every layer with a matrix view
    (``Dense``, ``EinsumDense`` on trailing axes, ``Conv1D/2D/3D``, ``DepthwiseConv1D/2D`` per
    channel, ``SeparableConv1D/2D`` as its depthwise then its pointwise stage, and any layer
    taught with :func:`keras_metainit.layerwise.register_layer`): gather the rows its kernel
    multiplies, ``X`` (``d × n``; for a convolution, the image patches with the layer's stride,
    padding and dilation, ordered like the kernel), at most ``max_samples`` of them (subsampled
    with the seed); build a latent code ``S`` (``k × n``, ``k`` the layer's units); solve, in
    float64 (Bartels–Stewart, which for these symmetric matrices is two eigendecompositions),

        (S Sᵀ) W + W (λ X Xᵀ) = (1+λ) S Xᵀ,

    the stationarity condition of ``min_W ‖X − WᵀS‖² + λ‖WX − S‖²`` (encoding plus decoding
    loss); write ``Wᵀ`` as the kernel (in the layer's layout), set the bias to zero (the code is
    centred), rescale the kernel to unit pre-activation variance when ``rescale``, and go on with
    the new activations. Transposed convolutions have no matrix view and are skipped (LSUV sets
    them).

    Latent codes (``latent``):

    - ``"orthogonal"``: random orthonormal rows, orthogonal to the all-ones vector, scaled so
      every unit has mean 0 and variance 1 (``SSᵀ = n·I``). It needs more samples than units
      (``n > k``): the walk draws ``max(max_samples, k + 1)`` rows (patches for a convolution,
      more batches for a ``Dense``); when the data has fewer distinct examples, that layer falls
      back to the random code, says so in its row (``latent``, ``status``) and warns.
    - ``"random"``: i.i.d. standard normal.
    - ``"labels"``: unit ``j`` codes class ``j mod C`` (``C`` classes): the standardized
      indicator of that class over the samples, plus Gaussian noise of standard deviation 0.1 so
      that units coding the same class differ. It needs class labels (a sparse or categorical
      cross-entropy, or a binary loss with one unit) and raises ``ValueError`` when the data
      has none and the engine drew random labels.

    Numerics (:func:`sylvester_solve`): when ``SSᵀ`` is positive definite the solution is unique
    even if ``XXᵀ`` is singular (constant pixels). With fewer samples than inputs (``n < d``)
    the equation is solved in the span of the samples (``W = M Xᵀ``, an ``n × n`` system), which
    is exact, the minimum-norm minimizer, even with fewer samples than units. When the system is
    still singular or ill-conditioned a ridge ``ρ = 1e-6 · (tr(SSᵀ)/k + λ·tr(XXᵀ)/d)`` is added
    (the row records ``ridge``, the status reads ``"set (ridge)"``). A non-finite solution,
    non-finite activations or a zero variance raise ``LayerwiseError`` naming the layer, and the
    model is restored to its weights before the call; a NaN kernel is never written.

    ``report.layers`` rows: ``name``, ``kind``, ``status``, ``samples``, ``latent`` (the code
    used), ``var_before``, ``var_after``, ``residual`` (relative residual of the unregularized
    equation, the largest over groups and stages), ``ridge``, ``seconds``; skipped layers as for
    :class:`~keras_metainit.methods.LSUV`.

    Args:
        latent: ``"orthogonal"``, ``"random"`` or ``"labels"``.
        lam: the weight ``λ ≥ 0`` of the decoding loss (1.0).
        max_samples: most input rows (examples, or patches) per layer (4096); an orthogonal
            code for ``k ≥ max_samples`` units takes ``k + 1``.
        rescale: rescale each kernel to unit pre-activation variance (True).
        seed: seed of the codes and subsampling (default: the ``seed`` of ``meta_initialize``).

    Example:
        >>> import keras_metainit
        >>> from keras_metainit.methods import Sylvester
        >>> report = keras_metainit.meta_initialize(model, (x, y), method=Sylvester(latent="labels"))
        >>> print(report)

    Reference:
        Das, Bhalgat & Porikli, "Data-driven Weight Initialization with Sylvester Solvers", 2021
        (reconstructed from the abstract: the semantic-autoencoder form above).
    """

    aliases = ("sylvester",)

    def __init__(self, latent: str = "orthogonal", lam: float = 1.0, max_samples: int = 4096,
                 rescale: bool = True, seed: Optional[int] = None):
        validation.check(latent in LATENTS, "latent", latent, "'orthogonal', 'random' or 'labels'")
        self.latent = latent
        self.lam = validation.real("lam", lam, low=0)
        self.max_samples = validation.positive_int("max_samples", max_samples)
        validation.check(self.max_samples >= 2, "max_samples", max_samples, "an integer >= 2")
        validation.check(isinstance(rescale, bool), "rescale", rescale, "a bool")
        self.rescale = rescale
        self.seed = validation.seed(seed)

    # -- the walk's hooks ---------------------------------------------------------------------
    def prepare(self, run) -> None:
        """Refuse ``latent="labels"`` on data without labels (the engine drew random ones)."""
        if self.latent == "labels" and getattr(run.loss_spec, "random_labels", False):
            raise ValueError(
                "Sylvester(latent='labels') needs labelled data, but the data has no labels: the "
                "engine drew random ones. Pass `data=(x, y)` (or a dataset of (x, y)), or use "
                "latent='orthogonal' or 'random'."
            )

    def skip_reason(self, view) -> Optional[str]:
        """Layers without a matrix view (transposed convolutions) are skipped."""
        if not all(s.has_matrix_view for s in view.stages):
            return "no matrix view for the Sylvester solve (a transposed convolution; LSUV sets it)"
        return None

    def _rows_wanted(self, k: int) -> int:
        return max(self.max_samples, k + 1) if self.latent == "orthogonal" else self.max_samples

    def examples_needed(self, target, first_batch: int) -> int:
        """Enough examples for ``max_samples`` rows (``k + 1`` for an orthogonal code of ``k``
        units), at least the first batch."""
        k = max(s.units for s in target.view.stages)
        return max(first_batch, -(-self._rows_wanted(k) // max(1, target.rows_per_example)))

    def set_layer(self, target, inputs: List[np.ndarray], y, run) -> Dict[str, Any]:
        """Solve every stage of the layer in order (see the class docstring); return its row."""
        layer, view, last = target.layer, target.view, len(target.view.stages) - 1
        var_before = stage_variance(view, last, inputs, layer)
        classes = None
        if self.latent == "labels":
            label_kind = getattr(run.loss_spec, "label_kind", "sparse")
            classes = _class_labels(tf.nest.flatten(y)[0], label_kind, run.output_units)
        ridge, residual, used, samples = 0.0, 0.0, self.latent, 0
        for si, stage in enumerate(view.stages):
            ins = [view.stage_inputs(x, si) for x in inputs]
            k = stage.units
            pers = [stage.rows_per_example(x) for x in ins]
            sizes = [len(x) * p for x, p in zip(ins, pers)]
            keep = subsample(sum(sizes), self._rows_wanted(k), run.rng)
            bounds = np.cumsum([0] + sizes)
            rows, owner = [], []
            for c, x in enumerate(ins):
                lo, hi = np.searchsorted(keep, bounds[c:c + 2])
                if hi > lo:
                    idx = keep[lo:hi] - bounds[c]
                    rows.append(stage.rows(x, idx))
                    owner.append(idx // pers[c])
            rows, owner = np.concatenate(rows), np.concatenate(owner)
            n = samples = rows.shape[0]
            latent = self.latent
            if latent == "orthogonal" and n <= k:
                latent = used = "random"
                warn(f"Sylvester: layer {describe(layer)} has k={k} units but the data gave only "
                     f"n={n} distinct samples: no orthogonal code exists, the random code is used.")
            labels = None if classes is None else classes[0][owner]
            codes = latent_codes(latent, stage.groups, k, n, run.rng, labels=labels,
                                 classes=None if classes is None else classes[1],
                                 layer_name=layer.name)
            try:
                if stage.groups == 1:
                    sol = sylvester_solve(rows[:, 0, :].T, codes[0], self.lam)
                    w = sol.W.T[None]
                else:
                    sol = sylvester_solve_groups(np.transpose(rows, (1, 2, 0)), codes, self.lam)
                    w = np.swapaxes(sol.W, 1, 2)
            except ValueError as err:
                raise LayerwiseError(f"Sylvester: layer {describe(layer)}: {err} The layer "
                                     "is unchanged.") from err
            ridge, residual = max(ridge, sol.ridge), max(residual, sol.residual)
            if not np.all(np.isfinite(w)):
                raise LayerwiseError(f"Sylvester: the kernel of layer {describe(layer)} is not "
                                     "finite. The layer is unchanged.")
            stage.assign(w)
            if stage.bias is not None:
                stage.bias.assign(np.zeros(tuple(stage.bias.shape), stage.bias.dtype))
            if self.rescale:  # bias zero: one division gives unit variance on the samples
                var = stage_variance(view, si, inputs, layer)
                if not var > 0:
                    raise LayerwiseError(
                        f"Sylvester: the solved kernel of layer {describe(layer)} gives "
                        f"pre-activation variance {var} on the batch; it cannot be rescaled.")
                stage.kernel.assign(stage.kernel.value / math.sqrt(var))
        status = "set" if ridge == 0 else "set (ridge)"
        if used != self.latent:
            status += f" (latent '{used}': only n={samples} samples for k={k} units)"
        return {"status": status, "samples": samples, "latent": used, "var_before": var_before,
                "var_after": stage_variance(view, last, inputs, layer), "residual": residual,
                "ridge": ridge}
