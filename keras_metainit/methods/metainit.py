"""MetaInit: tune each tensor's norm to minimize the gradient quotient (:class:`MetaInit`)."""
from __future__ import annotations

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
        lr: step on each norm per unit of sign, in absolute norm units (reference 0.1).
        momentum: momentum of the norm steps (reference 0.9).
        eps: the ε of the gradient quotient. **Default 1e-2, not the paper's 1e-5**: ε sets
            where GQ's minimum lies, and with 1e-5 MetaInit shrinks deep ReLU nets far below He
            (the report's end-to-end gain shows it) so that they train poorly after it
            (``benchmarks/metainit_eps.py``, docs/methods/metainit.md). Pass ``eps=1e-5`` for the
            paper's setting.
        min_norm: floor of each norm as a fraction of its starting norm (the reference has none).
        batch_size: examples per step (reference: the size of its random batch; 128 here).

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

    def __init__(self, steps: int = 500, lr: float = 0.1, momentum: float = 0.9,
                 eps: float = 1e-2, min_norm: float = 1e-3, batch_size: int = 128):
        self.steps = validation.steps(steps)
        check(is_real(lr) and lr > 0, "lr", lr, "positive")
        check(is_real(momentum) and 0 <= momentum < 1, "momentum", momentum, "in [0, 1)")
        check(is_real(eps) and eps > 0, "eps", eps, "positive")
        check(is_real(min_norm) and 0 < min_norm <= 1, "min_norm", min_norm, "in (0, 1]")
        self.lr, self.momentum, self.eps = lr, momentum, eps
        self.min_norm, self.batch_size = min_norm, batch_size

    def objective(self, loss_fn, params, shards):
        gq, loss = objectives.gradient_quotient(loss_fn, params, shards[0], self.eps)
        return gq, keras.ops.convert_to_tensor(False), {"gq": gq, "loss": loss}

    def transform(self):
        return scale_opt.sign_momentum(self.lr, self.momentum, self.min_norm)
