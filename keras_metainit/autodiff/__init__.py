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
  nest the same way;
- ``torch`` (:mod:`keras_metainit.autodiff.torch`): ``torch.autograd.grad``, with
  ``create_graph=True`` for every gradient an outer one differentiates.

Functions (the same signatures on every backend):

- ``value_and_grad(f, params, has_aux=False)``: ``f(params)`` (a scalar, or ``(scalar, aux)``)
  and its gradient with respect to the list ``params``, as ``(value, grads)`` or
  ``((value, aux), grads)``. Gradients are dense, zeros where ``f`` does not depend on a tensor.
- ``values_and_grads(f, params, has_aux=False)``: for ``f`` returning a list of scalars, their
  values and one gradient list per scalar, from one forward pass: ``(values, grads)`` or
  ``((values, aux), grads)``.
- ``stop_gradient(x)``: ``x`` as a constant for every derivative, outer ones included.
- ``softmax_logits(y)``: the logits of a softmax output where only the graph knows them
  (TensorFlow's ``Softmax`` op inside a ``tf.function``), else None; the loss
  (:mod:`keras_metainit.losses`) is then a ``log_softmax`` of them, exact at every order.
- ``compiled_loss(fn, separate=False)``: the per-example loss as this backend runs it inside a
  step: a ``tf.function`` on TensorFlow (``separate``: never inlined, see
  :func:`keras_metainit.autodiff.tensorflow.compiled_loss`); ``fn`` itself on JAX (``jax.jit``
  compiles the whole step) and torch (run eagerly).
- ``no_gradients()``: a context for forward passes nothing differentiates (the layer-wise
  methods' activations): ``torch.no_grad()`` on torch, where a variable's tensor records every
  use; nothing to do on TensorFlow and JAX, which record only under a tape or a transform.
- ``BACKEND``: the name of the backend in use.
"""
from __future__ import annotations

import contextlib

import keras

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    from keras_metainit.autodiff.tensorflow import (compiled_loss, softmax_logits, stop_gradient,
                                                    value_and_grad, values_and_grads)

    no_gradients = contextlib.nullcontext
elif BACKEND in ("jax", "torch"):
    if BACKEND == "jax":
        from keras_metainit.autodiff.jax import stop_gradient, value_and_grad, values_and_grads

        no_gradients = contextlib.nullcontext
    else:
        from keras_metainit.autodiff.torch import (no_gradients, stop_gradient, value_and_grad,
                                                   values_and_grads)

    def softmax_logits(y_pred):
        """None: a softmax output's logits are found only through ``_keras_logits`` here."""
        return None

    def compiled_loss(fn, separate: bool = False):
        """``fn``: the step that calls it is compiled (JAX) or run eagerly (torch) as a whole."""
        return fn
else:
    raise ImportError(
        f"keras_metainit runs on Keras's 'tensorflow', 'jax' and 'torch' backends; the backend "
        f"in use is {BACKEND!r}, which has no automatic differentiation. Set "
        "KERAS_BACKEND=jax, KERAS_BACKEND=torch or KERAS_BACKEND=tensorflow.")

__all__ = ["BACKEND", "value_and_grad", "values_and_grads", "stop_gradient", "softmax_logits",
           "compiled_loss", "no_gradients"]
