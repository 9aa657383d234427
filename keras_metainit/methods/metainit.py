"""MetaInit: tune each tensor's norm to minimize the gradient quotient (:class:`MetaInit`)."""
from __future__ import annotations

from typing import Optional

import keras

from keras_metainit import objectives, scale_opt, validation
from keras_metainit.methods.base import LearnedMethod
from keras_metainit.validation import check, is_real

__all__ = ["MetaInit"]


class MetaInit(LearnedMethod):
    """MetaInit: tune each tensor's norm to minimize the gradient quotient.

    The gradient quotient (:func:`keras_metainit.gradient_quotient`) measures how much one
    gradient step changes the gradient; MetaInit moves the norm of every weight tensor (kernels,
    embeddings: ``ndim >= 2``) by signed momentum steps on its derivative, never the direction.
    Normalization layers run in inference mode and dropout is off.

    Args:
        steps: number of steps (reference 500).
        lr: step on each norm per unit of sign: in absolute norm units with
            ``step="absolute"`` (reference 0.1), on the log of the norm with ``step="relative"``.
            None: 0.1 and 0.01 respectively.
        momentum: momentum of the norm steps (reference 0.9).
        eps: the ε of the gradient quotient. **Default 1e-2, not the paper's 1e-5**: ε sets
            where GQ's minimum lies, and with 1e-5 MetaInit shrinks deep ReLU nets far below He
            (the report's end-to-end gain shows it) so that they train poorly after it
            (``benchmarks/metainit_eps.py``, docs/methods/metainit.md). Pass ``eps=1e-5`` for the
            paper's setting.
        min_norm: floor of each norm as a fraction of its starting norm (the reference has none).
        batch_size: examples per step (reference: the size of its random batch; 128 here).
        step: ``"absolute"``, the paper's step (each norm moves by ``m`` in norm units), or
            ``"relative"`` (each norm is multiplied by ``exp(m)``, so a tensor's step is
            proportional to its norm: a classifier head of norm 0.2 is not driven to the floor
            by steps sized for norms of 10; :func:`~keras_metainit.scale_opt.sign_momentum`).
        hvp: how the gradient quotient's Hessian-gradient product is computed: ``"exact"``
            (double backprop, as the paper; the scale gradient is third order) or
            ``"finite_difference"`` (a central difference of the gradient along ``g/‖g‖``,
            :func:`~keras_metainit.objectives.hessian_gradient_fd`; the scale gradient is second
            order). On ReLU networks the difference crosses activation kinks, so it minimizes a
            different quotient, and on TensorFlow it was not cheaper per step: the default
            stays exact (docs/methods/metainit.md, ``benchmarks/metainit_hvp.py``).

    Examples:
        >>> import keras, keras_metainit
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu"),
        ...                           keras.layers.Dense(3)])
        >>> method = keras_metainit.methods.MetaInit(steps=5, batch_size=16)
        >>> report = model.meta_initialize(None, method=method, verbose=0)  # random data
        >>> report.steps_run, sorted(report.after)
        (5, ['gq', 'loss'])

    Reference:
        Dauphin & Schoenholz, "MetaInit: Initializing learning by learning to initialize",
        NeurIPS 2019.
    """

    aliases = ("metainit", "meta_init")
    metric_names = ("gq", "loss")

    #: ``lr`` when none is given, per ``step``
    DEFAULT_LR = {"absolute": 0.1, "relative": 0.01}

    def __init__(self, steps: int = 500, lr: Optional[float] = None, momentum: float = 0.9,
                 eps: float = 1e-2, min_norm: float = 1e-3, batch_size: int = 128,
                 step: str = "absolute", hvp: str = "exact"):
        self.steps = validation.steps(steps)
        check(step in self.DEFAULT_LR, "step", step, "'absolute' or 'relative'")
        lr = self.DEFAULT_LR[step] if lr is None else lr
        check(is_real(lr) and lr > 0, "lr", lr, "positive")
        check(is_real(momentum) and 0 <= momentum < 1, "momentum", momentum, "in [0, 1)")
        check(is_real(eps) and eps > 0, "eps", eps, "positive")
        check(is_real(min_norm) and 0 < min_norm <= 1, "min_norm", min_norm, "in (0, 1]")
        check(hvp in objectives.HVP_MODES, "hvp", hvp, objectives.HVP_CHOICES)
        self.lr, self.momentum, self.eps = lr, momentum, eps
        self.min_norm, self.batch_size, self.step, self.hvp = min_norm, batch_size, step, hvp

    def objective(self, loss_fn, params, shards):
        gq, loss = objectives.gradient_quotient(loss_fn, params, shards[0], self.eps, self.hvp)
        return gq, keras.ops.convert_to_tensor(False), {"gq": gq, "loss": loss}

    def transform(self):
        return scale_opt.sign_momentum(self.lr, self.momentum, self.min_norm,
                                       relative=self.step == "relative")
