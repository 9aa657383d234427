"""The Sylvester initialization: the method object the walk calls (the maths, latent codes and the
solve: :mod:`keras_metainit.layerwise.sylvester_maths`).

Das, Bhalgat & Porikli, "Data-driven Weight Initialization with Sylvester Solvers", 2021,
reconstructed from the abstract as the semantic-autoencoder form
``min_W ‖X − WᵀS‖² + λ‖WX − S‖²``, whose stationarity condition is a Sylvester equation.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from keras import tree

from keras_metainit import validation
from keras_metainit.layerwise.activations import LayerwiseError, describe, subsample, warn
from keras_metainit.layerwise.kinds import stage_variance
from keras_metainit.layerwise.sylvester_maths import (LATENTS, latent_codes, sylvester_solve,
                                                      sylvester_solve_groups)
from keras_metainit.methods.base import LayerwiseMethod

__all__ = ["Sylvester"]


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

    Examples:
        >>> import keras, keras_metainit
        >>> from keras_metainit.datasets import load_fashion_mnist
        >>> from keras_metainit.methods import Sylvester
        >>> x, y = load_fashion_mnist("train", flatten=True)
        >>> model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, "relu"),
        ...                           keras.layers.Dense(10)])
        >>> report = keras_metainit.meta_initialize(model, (x[:500], y[:500]), verbose=0,
        ...                                         method=Sylvester(latent="labels"))
        >>> [row["status"] for row in report.layers]
        ['set', 'set']

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
            classes = _class_labels(tree.flatten(y)[0], label_kind, run.output_units)
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
