"""GradInit: tune one scale per tensor so that the first optimizer step helps most
(:class:`GradInit`)."""
from __future__ import annotations

import numpy as np
from keras import tree

from keras_metainit import objectives
from keras_metainit.methods.base import ConstrainedMethod
from keras_metainit.validation import check, is_real

__all__ = ["GradInit"]


class GradInit(ConstrainedMethod):
    """GradInit: tune one scale per tensor so that the first optimizer step helps most.

    Each step takes two batches ``S`` and ``S̃`` that share ``overlap`` of their examples and
    minimizes the loss on ``S̃`` after one step of the target optimizer from ``θ_α``,
    ``L(S̃; θ_α − η·A[g_S]) / η`` (:func:`~keras_metainit.objectives.lookahead_loss`), subject to
    ``‖g_S(θ_α)‖ ≤ γ`` (ℓ2 norm for ``step="sgd"``, ℓ1 for ``"adam"``, as in the reference code).
    The rest (which tensors get a scale, their update) is :class:`ConstrainedMethod`'s.

    Args:
        steps: number of steps (reference: about one epoch, 390 on CIFAR-10).
        lr: RescaleAdam's learning rate (reference recipes: 3e-3 to 1e-2; 1e-2 for VGG-19
            without normalization).
        eta: the look-ahead step size η (0.1).
        gamma: the gradient-norm bound γ (1.0).
        min_scale: floor of every scale (0.01).
        step: ``"sgd"`` (normalized gradient step) or ``"adam"`` (sign step).
        overlap: fraction of ``S̃`` shared with ``S`` (0.5).
        normalize: for ``step="sgd"``, step along ``g/‖g‖₂`` (the reference recipes'
            ``--gradinit-normalize-grad``) rather than ``g``.
        batch_size: examples in each of ``S`` and ``S̃``.
        scale_invariant: normalize the scale gradient before RescaleAdam (not in the paper;
            see :class:`ConstrainedMethod`).

    Examples:
        >>> import keras, keras_metainit, numpy as np
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
        ...                           keras.layers.BatchNormalization(), keras.layers.ReLU(),
        ...                           keras.layers.Dense(3)])
        >>> rng = np.random.default_rng(0)
        >>> data = (rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64))
        >>> report = keras_metainit.meta_initialize(model, data, method="gradinit", steps=3,
        ...                                         batch_size=16, verbose=0)
        >>> report.steps_run, sorted(report.after)
        (3, ['gnorm', 'lookahead', 'loss'])

    Reference:
        Zhu, Ni, Xu, Kong, Huang & Goldstein, "GradInit: Learning to Initialize Neural Networks
        for Stable and Efficient Training", NeurIPS 2021.
    """

    aliases = ("gradinit", "grad_init")
    batches_per_step = 2
    metric_names = ("lookahead", "loss", "gnorm")

    def __init__(self, steps: int = 390, lr: float = 1e-2, eta: float = 0.1, gamma: float = 1.0,
                 min_scale: float = 0.01, step: str = "sgd", overlap: float = 0.5,
                 normalize: bool = True, batch_size: int = 128, scale_invariant: bool = False):
        super().__init__(steps=steps, lr=lr, gamma=gamma, min_scale=min_scale,
                         batch_size=batch_size, scale_invariant=scale_invariant)
        check(is_real(eta) and eta > 0, "eta", eta, "positive")
        check(step in ("sgd", "adam"), "step", step, "'sgd' or 'adam'")
        check(is_real(overlap) and 0 <= overlap <= 1, "overlap", overlap, "in [0, 1]")
        self.eta, self.step, self.overlap, self.normalize = eta, step, overlap, normalize

    def prepare(self, batches):
        """``(S, S̃)``: ``S̃`` is the first ``overlap`` of ``S`` and the rest of the next batch."""
        s, other = batches
        shared = int(round(self.overlap * int(tree.flatten(s)[0].shape[0])))
        s_tilde = tree.map_structure(lambda a, b: np.concatenate([a[:shared], b[shared:]], 0),
                                     s, other)
        return s, s_tilde

    def objective(self, loss_fn, params, shards):
        s, s_tilde = shards
        loss, grads = objectives.gradient(loss_fn, params, s)
        gnorm = objectives.gradient_norm(grads, 1 if self.step == "adam" else 2)
        look = objectives.lookahead_loss(loss_fn, params, grads, s_tilde, self.eta, self.step,
                                         self.normalize)
        value, constraint = self.constrained(gnorm, look)
        return value, constraint, {"lookahead": look, "loss": loss, "gnorm": gnorm}
