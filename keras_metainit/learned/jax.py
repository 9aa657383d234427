"""The learned-method runner on Keras's JAX backend: the same objectives, scale updates, guard and
write-back as on TensorFlow (:mod:`keras_metainit.learned.core`), with the step compiled once by
``jax.jit``.

The objective is the method's own (:mod:`keras_metainit.objectives`, written once for every
backend); its gradient with respect to the scales is a third derivative for MetaInit, taken by
nested JAX transforms through ``model.stateless_call`` (:mod:`keras_metainit.autodiff`). The scales
and the update's state are a pytree carried from step to step; the trainable weights at the start
are an argument of the compiled step, not constants baked into it. The loop, the best-scales guard
(scored by the method's objective on a fixed probe batch, never worse than the start) and the
write-back are :func:`keras_metainit.learned.core.drive`, shared with TensorFlow.

Data: the ``tf.data`` pipeline of :mod:`keras_metainit.data` is iterated on the host and each
step's batches are handed to the compiled step as NumPy arrays. Under a ``keras.distribution``
(``DataParallel``) the batches are laid out over its devices along the batch axis and the step
runs as one SPMD program: XLA sums every statistic over the whole batch, so the scales are those
of one device. ``tf.distribute`` strategies and ``micro_batches`` need the TensorFlow backend.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops

from keras_metainit import _compat, shards
from keras_metainit.learned.core import (Run, all_finite, drive, guarded_update, scaled,
                                         start)

__all__ = ["run", "JaxRun"]


class _Scales:
    """The current scales, read like the TensorFlow runner's variable (``.numpy()``)."""

    def __init__(self, value):
        self.value = value

    def numpy(self) -> np.ndarray:
        return np.asarray(self.value)


class JaxRun(Run):
    """One learned-method run on JAX: the scales and the update's state are a pytree carried
    from step to step by the compiled :meth:`step`.

    Args:
        model: the model.
        method: the learned method.
        loss_fn: the per-example loss (:func:`~keras_metainit.model_fn.make_loss_fn`).
        report: the report being filled.
        size: examples per batch of the step.
        layout: a ``jax.sharding.Sharding`` for the batches (data parallel), or None.
    """

    def __init__(self, model, method, loss_fn, report, size: int, layout=None):
        super().__init__(model, method, loss_fn, report, size)
        self.scales = _Scales(jnp.ones([len(self.tuned)], jnp.float32))
        self.state = self.transform.init(self.scales.value, self.base_norms)
        self.layout = layout
        self._step = jax.jit(self._step_fn)
        self._eval = jax.jit(self._eval_fn)
        self._spread = jax.jit(self.spread_at)

    # -- pure functions of (scales, state, weights, batches), compiled once --------------------
    def _objective(self, weights):
        def objective(s, shards_):
            out = self.method.objective(self.loss_fn, scaled(weights, self.tuned, s),
                                        shards_)
            # constants a method made with TensorFlow (MetaInit's constraint: False) as arrays
            return keras.tree.map_structure(ops.convert_to_tensor, out)

        return objective

    def _step_fn(self, scales, state, weights, batches):
        self.traces += 1  # runs at trace time only
        value, grads, constraint, metrics = shards.value_and_grad(
            self._objective(weights), scales, [(batches, 0)], self.size)
        batch_ok = all_finite(batches)
        ok, new_s, new_state = guarded_update(self.transform, value, grads, state, scales,
                                                      self.base_norms, constraint, batch_ok)
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        return (keep(new_s, scales), jax.tree_util.tree_map(keep, new_state, state),
                {**metrics, "ok": ok, "batch_ok": batch_ok, "constraint": constraint})

    def _eval_fn(self, scales, weights, batches):
        value, constraint, metrics = shards.values(
            self._objective(weights), scales, [(batches, 0)], self.size)
        return value, constraint, metrics, all_finite(batches)

    # -- the runner's interface (drive) ----------------------------------------------------

    def place(self, batches):
        """Host batches as device arrays, split along the batch axis under a layout."""
        batches = keras.tree.map_structure(np.asarray, batches)
        if self.layout is None:
            return batches
        return jax.device_put(batches, self.layout)

    def step(self, batches):
        # the guard holds self.scales: its value changes, the object stays
        self.scales.value, self.state, out = self._step(self.scales.value, self.state,
                                                        self.weights(), batches)
        return out

    def evaluate(self, batches):
        return self._eval(self.scales.value, self.weights(), batches)

    def spread(self, x):
        return tuple(float(v) for v in self._spread(self.scales.value, self.weights(), x))


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
    if strategy is not None:
        raise ValueError("`strategy` is a tf.distribute strategy, which needs the TensorFlow "
                         "backend; on JAX set a keras.distribution (e.g. "
                         "keras.distribution.set_distribution(keras.distribution.DataParallel())) "
                         "instead.")
    if micro_batches != 1:
        raise NotImplementedError("`micro_batches` needs the TensorFlow backend; on JAX pass "
                                  "micro_batches=1 (a keras.distribution splits the batch over "
                                  "devices).")
    loss_fn, steps_ds, size = start(model, method, dataset, loss_spec)
    layout = _layout(size)
    run = JaxRun(model, method, loss_fn, report, size, layout)
    if layout is not None:
        devices = len(layout.device_set)
        if size % devices:
            raise ValueError(f"A batch of {size} examples cannot be split over {devices} "
                             f"devices; pass a `batch_size` that is a multiple of {devices}.")
        report.notes.append(f"distributed: {type(keras.distribution.distribution()).__name__}, "
                            f"{devices} device(s), global batch {size}")
    it = (run.place(b) for b in steps_ds.as_numpy_iterator())
    return drive(run, method, it, run.step, run.evaluate, steps, verbose, report, started)
