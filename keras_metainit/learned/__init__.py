"""The learned-method runner: one compiled step (objective, its gradient with respect to one scale
per tuned tensor, the method's scale update), the guard that keeps the run's best scales, and the
write-back.

The model's weights are evaluated at ``θ = s · W⁰`` through ``model.stateless_call``, so the model is
never touched during the run. Every candidate is scored by the method's own objective on one fixed
probe batch (the first), and the best scales the run reached are written back with ``assign`` at
the end; if none beats the start, the model is left unchanged and the report says so. A run that
diverges (a non-finite objective, gradient or scale) or is interrupted ends the same way, so the
weights are never worse than they started, and never NaN.

The package is split as keras-tuner splits ``BaseTuner`` from ``Tuner``:
:mod:`~keras_metainit.learned.core` owns the backend-neutral loop (:func:`~keras_metainit.learned.core.drive`),
and one module per backend owns how a step is compiled and run
(:mod:`~keras_metainit.learned.tensorflow`: ``tf.function``, ``tf.distribute``, micro-batches;
:mod:`~keras_metainit.learned.jax`: ``jax.jit``, ``keras.distribution``;
:mod:`~keras_metainit.learned.torch`: eager steps, ``torch.autograd.grad``). The backend's
module is chosen once, here, by :data:`keras_metainit.autodiff.BACKEND`, and only it is imported.
"""
from __future__ import annotations

from typing import Optional

from keras_metainit.autodiff import BACKEND

if BACKEND == "jax":
    from keras_metainit.learned.jax import run as _run
elif BACKEND == "torch":
    from keras_metainit.learned.torch import run as _run
else:  # autodiff refuses any backend other than tensorflow, jax and torch
    from keras_metainit.learned.tensorflow import run as _run

__all__ = ["run_learned"]


def run_learned(model, method, dataset, loss_spec, steps: int, verbose: int, report,
                strategy=None, micro_batches: int = 1, started: Optional[float] = None):
    """Run a learned method on ``model`` in place with the backend's runner; fill ``report``.

    Called by :func:`keras_metainit.meta_initialize` once it has resolved the method and the data;
    the arguments are in the forms it resolved them to.

    Args:
        model: a built Keras model.
        method: a :class:`~keras_metainit.methods.LearnedMethod`.
        dataset: the stream of batches (:func:`keras_metainit.data.make_dataset`).
        loss_spec: the resolved loss (:class:`keras_metainit.losses.LossSpec`).
        steps: number of steps.
        verbose: 0 silent, 1 progress bar, 2 one line per call.
        report: the :class:`~keras_metainit.report.InitReport` to fill.
        strategy: a ``tf.distribute.Strategy`` (TensorFlow only; None: the enclosing scope's or
            the model's variables', else none). On JAX a ``keras.distribution`` is used instead;
            torch runs on one device.
        micro_batches: parts each replica's batch is split into (TensorFlow only).
        started: ``time.perf_counter()`` at the start of the call, for the report's wall time.

    Returns:
        ``report``, filled: metrics before and after, history, tensor table, notes.

    Raises:
        ValueError: no tensor to tune, or a batch that cannot be split evenly.
        keras_metainit.data.DataError: a batch with NaN or Inf.
    """
    return _run(model, method, dataset, loss_spec, steps, verbose, report, strategy,
                micro_batches, started)
