"""JAX's side of the seam: ``jax.value_and_grad`` and ``jax.vjp``.

JAX's transformations nest: a gradient taken inside a function that an outer ``jax.grad``
differentiates is differentiated in turn (MetaInit's scale gradient is a third derivative through
``model.stateless_call``). ``jax.lax.stop_gradient`` blocks every level, as TensorFlow's does.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["value_and_grad", "values_and_grads", "stop_gradient"]


def _arg(params):
    return list(params) if isinstance(params, (list, tuple)) else params


def value_and_grad(f, params, has_aux: bool = False):
    return jax.value_and_grad(f, has_aux=has_aux)(_arg(params))


def values_and_grads(f, params, has_aux: bool = False):
    """One forward pass, one pullback per value (as a persistent tape does)."""
    if has_aux:
        values, pullback, aux = jax.vjp(f, _arg(params), has_aux=True)
    else:
        values, pullback = jax.vjp(f, _arg(params))
    values = list(values)
    grads = []
    for i in range(len(values)):
        cotangent = [jnp.ones_like(v) if j == i else jnp.zeros_like(v)
                     for j, v in enumerate(values)]
        grads.append(pullback(cotangent)[0])
    return ((values, aux) if has_aux else values), grads


stop_gradient = jax.lax.stop_gradient

