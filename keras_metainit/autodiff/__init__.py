"""The seam for backends: gradients (differentiable again by an outer derivative), stop-gradient
and compilation, in the few forms the objectives need.

This package is the only place that imports a framework's autodiff API. The objectives
(:mod:`keras_metainit.objectives`), the exact split of a batch (:mod:`keras_metainit.shards`) and
the scale updates (:mod:`keras_metainit.scale_opt`) are written once, with these functions for
derivatives and ``keras.ops`` for arithmetic; the module chosen here by Keras's backend supplies
the derivatives:

- ``tensorflow`` (:mod:`keras_metainit.autodiff.tensorflow`): a ``tf.GradientTape`` watching the
  parameters, itself recorded by any tape outside it, so a gradient can be differentiated again;
- ``jax`` (:mod:`keras_metainit.autodiff.jax`): ``jax.value_and_grad`` and ``jax.vjp``, which
  nest the same way.

Functions (the same signatures on every backend):

- ``value_and_grad(f, params, has_aux=False)``: ``f(params)`` (a scalar, or ``(scalar, aux)``)
  and its gradient with respect to the list ``params``, as ``(value, grads)`` or
  ``((value, aux), grads)``. Gradients are dense, zeros where ``f`` does not depend on a tensor.
- ``values_and_grads(f, params, has_aux=False)``: for ``f`` returning a list of scalars, their
  values and one gradient list per scalar, from one forward pass: ``(values, grads)`` or
  ``((values, aux), grads)``.
- ``stop_gradient(x)``: ``x`` as a constant for every derivative, outer ones included.
- ``tensorflow_function(fn)``: ``fn``, written with TensorFlow ops (the per-example loss of
  :class:`keras_metainit.losses.LossSpec`, whose cross-entropies are exact at every order), made
  callable on this backend's tensors and differentiable to any order: itself on TensorFlow; on
  JAX through ``jax2tf.call_tf``, which embeds its XLA computation in the compiled JAX program
  and differentiates it by TensorFlow's gradients, so the loss is written once.
- ``BACKEND``: the name of the backend in use.
"""
from __future__ import annotations

import keras

BACKEND = keras.backend.backend()

if BACKEND == "jax":
    from keras_metainit.autodiff.jax import (stop_gradient, tensorflow_function, value_and_grad,
                                             values_and_grads)
elif BACKEND == "tensorflow":
    from keras_metainit.autodiff.tensorflow import (stop_gradient, tensorflow_function,
                                                    value_and_grad, values_and_grads)
else:  # pragma: no cover - torch / numpy backends
    raise ImportError(
        f"keras_metainit supports the 'tensorflow' and 'jax' backends of Keras; the backend in "
        f"use is {BACKEND!r}. Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax.")

__all__ = ["BACKEND", "value_and_grad", "values_and_grads", "stop_gradient",
           "tensorflow_function"]
