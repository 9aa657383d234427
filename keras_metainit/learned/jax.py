"""The learned-method runner on Keras's JAX backend: the same objectives, scale updates, guard and
write-back as on every backend (:mod:`keras_metainit.learned.core`), with the step compiled once by
``jax.jit``.

The objective is the method's own (:mod:`keras_metainit.objectives`, written once for every
backend); its gradient with respect to the scales is a third derivative for MetaInit, taken by
nested JAX transforms through ``model.stateless_call`` (:mod:`keras_metainit.autodiff`). The step
is :class:`~keras_metainit.learned.core.FunctionalRun`'s pure function of ``(scales, state,
weights, batches)``, shared with torch.

Data: the NumPy batches of :mod:`keras_metainit.data` are handed to the compiled step as they
are. Under a ``keras.distribution`` (``DataParallel``) the batches are laid out over its devices
along the batch axis and the step runs as one SPMD program: XLA sums every statistic over the
whole batch, so the scales are those of one device. ``tf.distribute`` strategies and
``micro_batches`` need the TensorFlow backend.
"""
from __future__ import annotations

from typing import Optional

import jax
import keras
import numpy as np

from keras_metainit import _compat
from keras_metainit.learned.core import FunctionalRun, refuse_tensorflow_options, start

__all__ = ["run", "JaxRun"]


class JaxRun(FunctionalRun):
    """One learned-method run on JAX: the step compiled once by ``jax.jit``.

    Args:
        model: the model.
        method: the learned method.
        loss_fn: the per-example loss (:func:`~keras_metainit.model_fn.make_loss_fn`).
        report: the report being filled.
        size: examples per batch of the step.
        layout: a ``jax.sharding.Sharding`` for the batches (data parallel), or None.
    """

    def __init__(self, model, method, loss_fn, report, size: int, layout=None):
        super().__init__(model, method, loss_fn, report, size, jax.jit, tracing=True)
        self.layout = layout

    def place(self, batches):
        """Host batches as device arrays, split along the batch axis under a layout."""
        batches = keras.tree.map_structure(np.asarray, batches)
        if self.layout is None:
            return batches
        return jax.device_put(batches, self.layout)


def _layout(size: int):
    """The batch sharding of the active ``keras.distribution`` (data parallel), or None."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return None
    layout = distribution.get_data_layout((size,))
    return _compat.jax_layout(layout)


def run(model, method, dataset, loss_spec, steps, verbose, report, strategy=None,
        micro_batches: int = 1, started: Optional[float] = None):
    """:func:`keras_metainit.learned.run_learned` on the JAX backend (the same arguments)."""
    refuse_tensorflow_options(
        strategy, micro_batches, "jax",
        " On JAX set a keras.distribution instead (e.g. keras.distribution.set_distribution("
        "keras.distribution.DataParallel())): it splits the batch over devices.")
    loss_fn, step_batches = start(model, method, dataset, loss_spec)
    size = step_batches.size
    layout = _layout(size)
    run_ = JaxRun(model, method, loss_fn, report, size, layout)
    if layout is not None:
        devices = len(layout.device_set)
        if size % devices:
            raise ValueError(f"A batch of {size} examples cannot be split over {devices} "
                             f"devices; pass a `batch_size` that is a multiple of {devices}.")
        report.notes.append(f"distributed: {type(keras.distribution.distribution()).__name__}, "
                            f"{devices} device(s), global batch {size}")
    return run_.run(step_batches, steps, verbose, report, started)
