"""torch's side of the seam: ``torch.autograd.grad``.

A gradient taken while an outer derivative is being formed is taken with ``create_graph=True``:
it is itself recorded by autograd, so the outer derivative differentiates it again (MetaInit's
scale gradient is a third derivative through ``model.stateless_call``). Whether a gradient is
such an inner one is known from the seam itself: it is taken while another
:func:`value_and_grad` or :func:`values_and_grads` is evaluating its function. The outermost
gradient records nothing, so its graph is freed once it is computed. Nothing here uses
``torch.compile`` (its graphs do not nest derivatives) nor ``torch.func.functional_call`` (zero
gradients through Keras models, keras-team/keras#20279): parameters reach the model through
``model.stateless_call`` (:mod:`keras_metainit.model_fn`).

``stop_gradient`` is ``Tensor.detach``: a constant for every derivative, outer ones included.
"""
from __future__ import annotations

import contextlib
from typing import Any, List

import torch

__all__ = ["value_and_grad", "values_and_grads", "stop_gradient", "no_gradients"]

_depth = 0  # functions being differentiated by this seam right now (nesting level)


@contextlib.contextmanager
def _differentiating():
    global _depth
    _depth += 1
    try:
        with torch.enable_grad():
            yield
    finally:
        _depth -= 1


def _inputs(params):
    """``(single, tensors)``: the parameters as tensors autograd tracks. A tensor already in a
    graph (an outer derivative's input, or a variable) is used as it is, so the outer derivative
    sees through; a constant becomes a leaf that requires its gradient."""
    single = not isinstance(params, (list, tuple))
    tensors = [params] if single else list(params)
    return single, [p if p.requires_grad else p.detach().requires_grad_(True) for p in tensors]


def _grads(value, tensors: List[torch.Tensor], retain: bool):
    """``d value / d tensors``, dense, zeros where ``value`` does not depend on a tensor."""
    if not value.requires_grad:
        return [torch.zeros_like(t) for t in tensors]
    inner = _depth > 0  # an outer derivative will differentiate this gradient
    return list(torch.autograd.grad(value, tensors, create_graph=inner,
                                    retain_graph=inner or retain, allow_unused=True,
                                    materialize_grads=True))


def value_and_grad(f, params, has_aux: bool = False):
    single, tensors = _inputs(params)
    with _differentiating():
        out = f(tensors[0] if single else tensors)
    with torch.enable_grad():
        grads = _grads(out[0] if has_aux else out, tensors, retain=False)
    return out, grads[0] if single else grads


def values_and_grads(f, params, has_aux: bool = False):
    """One forward pass, one backward pass per value (the graph kept between them)."""
    single, tensors = _inputs(params)
    with _differentiating():
        out = f(tensors[0] if single else tensors)
    values = list(out[0] if has_aux else out)
    grads = []
    with torch.enable_grad():
        for i, v in enumerate(values):
            g = _grads(v, tensors, retain=i < len(values) - 1)
            grads.append(g[0] if single else g)
    return out, grads


def stop_gradient(x: Any):
    return x.detach() if isinstance(x, torch.Tensor) else x


no_gradients = torch.no_grad
