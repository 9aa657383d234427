"""GradCosine (NIO): tune one scale per tensor to raise the cosine between per-sample gradients
(:class:`GradCosine`)."""
from __future__ import annotations

import keras

from keras_metainit import objectives
from keras_metainit.methods.base import ConstrainedMethod
from keras_metainit.validation import check, is_real

__all__ = ["GradCosine"]


class GradCosine(ConstrainedMethod):
    """NIO: tune one scale per tensor to raise the cosine between per-sample gradients.

    GradCosine (:func:`keras_metainit.grad_cosine`) is the mean pairwise cosine between the
    gradients of ``splits`` overlapping chunks of the batch; GN is their mean norm. While
    ``GN > gamma`` a step reduces GN (the constraint); otherwise it minimizes the target:
    ``"gc"`` = −GC, ``"gc_gn"`` = −GC − λ·Σ‖g_i‖², ``"gc_gn_sqrt"`` = −GC − λ·Σ‖g_i‖ (the
    released recipe, λ = ``gn_weight`` = 1). The rest is :class:`ConstrainedMethod`'s.

    Note: in the official logs on ResNet-50 the cosine barely moved while GN grew toward γ; the
    report shows GC and GN before and after so you can see what happened on your model.

    Args:
        steps: number of steps (100).
        lr: RescaleAdam's learning rate (released recipes: 3e-3 to 5e-2).
        splits: number of chunks D (4).
        overlap: overlap ratio r of the chunks (0.2).
        gamma: bound γ on GN (10, the released ImageNet recipe).
        target: ``"gc"``, ``"gc_gn"`` or ``"gc_gn_sqrt"``.
        gn_weight: λ of the GN terms of the target.
        min_scale: floor of every scale (0.01).
        batch_size: examples per step.
        scale_invariant: normalize the scale gradient before RescaleAdam (not in the paper;
            see :class:`ConstrainedMethod`).

    Examples:
        >>> import keras, keras_metainit
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "tanh"),
        ...                           keras.layers.Dense(3)])
        >>> report = model.meta_initialize(None, method="nio", steps=3, batch_size=16, verbose=0)
        >>> report.method, sorted(report.after)
        ('gradcosine', ['gc', 'gn', 'loss'])

    Reference:
        Yang, Wang, Zhou, Lin & Tao, "Towards Theoretically Inspired Neural Initialization
        Optimization", NeurIPS 2022.
    """

    aliases = ("gradcosine", "nio", "grad_cosine")
    metric_names = ("gc", "gn", "loss")

    def __init__(self, steps: int = 100, lr: float = 1e-2, splits: int = 4, overlap: float = 0.2,
                 gamma: float = 10.0, target: str = "gc_gn_sqrt", gn_weight: float = 1.0,
                 min_scale: float = 0.01, batch_size: int = 128, scale_invariant: bool = False):
        super().__init__(steps=steps, lr=lr, gamma=gamma, min_scale=min_scale,
                         batch_size=batch_size, scale_invariant=scale_invariant)
        check(is_real(splits) and splits >= 2, "splits", splits, "an integer >= 2")
        check(is_real(overlap) and 0 <= overlap < 1, "overlap", overlap, "in [0, 1)")
        check(target in ("gc", "gc_gn", "gc_gn_sqrt"), "target", target,
              "'gc', 'gc_gn' or 'gc_gn_sqrt'")
        check(is_real(gn_weight) and gn_weight >= 0, "gn_weight", gn_weight, ">= 0")
        self.splits, self.overlap = int(splits), overlap
        self.target, self.gn_weight = target, gn_weight

    def objective(self, loss_fn, params, shards):
        # examples_independent: set on the loss function by model_fn.make_loss_fn
        gc, gn, norms, loss = objectives.grad_cosine(
            loss_fn, params, shards[0], self.splits, self.overlap,
            getattr(loss_fn, "examples_independent", False))
        if self.target == "gc":
            target = -gc
        elif self.target == "gc_gn":
            target = -gc - self.gn_weight * keras.ops.sum(keras.ops.square(norms))
        else:
            target = -gc - self.gn_weight * keras.ops.sum(norms)
        value, constraint = self.constrained(gn, target)
        return value, constraint, {"gc": gc, "gn": gn, "loss": loss}
