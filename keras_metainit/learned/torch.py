"""The learned-method runner on Keras's torch backend: the same objectives, scale updates, guard
and write-back as on every backend (:mod:`keras_metainit.learned.core`), the step run eagerly.

The step is :class:`~keras_metainit.learned.core.FunctionalRun`'s pure function of ``(scales,
state, weights, batches)``, shared with JAX, called as a plain Python function on torch tensors:
the objective's gradient with respect to the scales (a third derivative for MetaInit) is taken
by ``torch.autograd.grad`` through ``model.stateless_call``, every inner gradient with
``create_graph=True`` (:mod:`keras_metainit.autodiff.torch`). No ``torch.compile``: its graphs do
not nest derivatives. The weights at the start enter detached, so autograd records only what
depends on the scales, and the step's results are detached, so no graph outlives a step. The
host reads the step's metrics once per step, as on every backend (:func:`~keras_metainit.learned.core.drive`).

Data: the NumPy batches of :mod:`keras_metainit.data`, moved to Keras's device (a GPU where torch
sees one). ``tf.distribute`` strategies and ``micro_batches`` need the TensorFlow backend, and
Keras's ``keras.distribution`` has no torch implementation: one device runs the step.
"""
from __future__ import annotations

from typing import Optional

import keras

from keras_metainit import autodiff as ad
from keras_metainit.learned.core import FunctionalRun, refuse_tensorflow_options, start

__all__ = ["run", "TorchRun"]


def _eager(fn):
    """``fn`` itself, its results detached from autograd's graph."""

    def call(*args):
        return keras.tree.map_structure(ad.stop_gradient, fn(*args))

    return call


class TorchRun(FunctionalRun):
    """One learned-method run on torch: the step run eagerly (see the module doc).

    Args:
        model: the model.
        method: the learned method.
        loss_fn: the per-example loss (:func:`~keras_metainit.model_fn.make_loss_fn`).
        report: the report being filled.
        size: examples per batch of the step.
    """

    def __init__(self, model, method, loss_fn, report, size: int):
        super().__init__(model, method, loss_fn, report, size, _eager, tracing=False)

    def weights(self) -> list:
        """The trainable weights' current values, detached: constants of the step (a torch
        variable's tensor requires its gradient)."""
        return [ad.stop_gradient(w) for w in super().weights()]


def run(model, method, dataset, loss_spec, steps, verbose, report, strategy=None,
        micro_batches: int = 1, started: Optional[float] = None):
    """:func:`keras_metainit.learned.run_learned` on the torch backend (the same arguments)."""
    refuse_tensorflow_options(strategy, micro_batches, "torch")
    if keras.distribution.distribution() is not None:
        raise NotImplementedError("A keras.distribution needs the JAX backend; on torch the "
                                  "step runs on one device. Unset it, or use KERAS_BACKEND=jax.")
    loss_fn, step_batches = start(model, method, dataset, loss_spec)
    run_ = TorchRun(model, method, loss_fn, report, step_batches.size)
    return run_.run(step_batches, steps, verbose, report, started)
