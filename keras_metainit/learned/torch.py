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

Where torch has no higher-order derivative for an operation of the model (its ``derivative for
... is not implemented`` error, e.g. ``torch.cdist``'s second derivative), the run stops before
any scale is written with a ``NotImplementedError`` that names the operation and the
alternatives. (A custom ``torch.autograd.Function`` marked ``once_differentiable`` records no
graph for its gradient, which torch does not report: its higher derivatives come out as zeros.)

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
    """``fn`` itself, its results detached from autograd's graph; torch's missing higher-order
    derivatives refused by name."""

    def call(*args):
        try:
            out = fn(*args)
        except NotImplementedError as e:
            if "derivative for" not in str(e):
                raise
            raise NotImplementedError(
                f"torch cannot take the higher-order derivatives a learned method needs "
                f"(MetaInit's scale gradient is a third derivative, GradInit's and GradCosine's "
                f"a second) through this model: {e} The model is unchanged. Use "
                "KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax, or a layer-wise method "
                "(method='lsuv' or 'sylvester'), which takes no derivative.") from e
        return keras.tree.map_structure(ad.stop_gradient, out)

    return call


class TorchRun(FunctionalRun):
    """One learned-method run on torch: the step run eagerly (see the module doc); the
    arguments are :class:`~keras_metainit.learned.core.Run`'s."""

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
