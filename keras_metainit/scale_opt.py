"""Scale updates: pure ``(init, update)`` pairs with explicit state, in the manner of optax.

Every learned method tunes one positive scale ``s_k`` per tensor, ``W_k = s_k · W_k⁰``. Given the
gradient of the objective with respect to the scales, ``∂J/∂s_k = <∂J/∂W_k, W_k⁰>``, an update
returns the new scales and the new state. The engine owns the state (as variables) and calls
``update`` inside its compiled step; nothing here touches a model.

- :func:`sign_momentum`: MetaInit's update, on the tensor *norms* (Dauphin & Schoenholz 2019).
- :func:`rescale_adam`: GradInit's and NIO's "RescaleAdam" on the scales (Zhu et al. 2021).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

from keras import ops

__all__ = ["ScaleTransform", "sign_momentum", "rescale_adam"]

Tensor = Any  # a backend tensor
State = Dict[str, Tensor]


class ScaleTransform(NamedTuple):
    """A scale update as two pure functions.

    Attributes:
        init: ``init(scales, base_norms) -> state``.
        update: ``update(grads, state, scales, base_norms, constraint) -> (new_scales, new_state)``;
            ``constraint`` is a scalar bool tensor, true when the step reduces a constraint
            (GradInit's and NIO's gradient-norm bound) instead of the objective.
    """

    init: Callable[[Tensor, Tensor], State]
    update: Callable[..., Tuple[Tensor, State]]


def sign_momentum(lr: float = 0.1, momentum: float = 0.9, min_norm: float = 1e-3,
                  relative: bool = False) -> ScaleTransform:
    """MetaInit's update of each tensor's norm.

    ``d_k = sign(∂J/∂‖W_k‖)``, ``m_k ← momentum·m_k − lr·d_k``, then ``‖W_k‖ ← ‖W_k‖ + m_k``: the
    norm moves by ``m_k`` in absolute units (the paper's step), the direction never changes. With
    ``relative=True`` the step is taken on the log of the norm, ``‖W_k‖ ← ‖W_k‖·exp(m_k)``: each
    tensor's step is proportional to its norm, so a tensor of small norm (a classifier head at
    std 0.02) is not driven through zero by steps sized for norms of 10. The reference has no
    floor; here the norm is kept ``≥ min_norm·‖W_k⁰‖``.

    Args:
        lr: step on the norm per unit of sign (reference 0.1); with ``relative``, on its log.
        momentum: heavy-ball momentum (reference 0.9).
        min_norm: floor of the norm as a fraction of the starting norm.
        relative: multiplicative steps (``exp(m_k)``) instead of the paper's additive ones.
    """

    def init(scales, base_norms):
        return {"m": ops.zeros_like(scales)}

    def update(grads, state, scales, base_norms, constraint=None):
        # s > 0, so sign(∂J/∂‖W‖) = sign(∂J/∂s) = sign(∂J/∂log s).
        m = momentum * state["m"] - lr * ops.sign(grads)
        if relative:
            return ops.maximum(scales * ops.exp(m), min_norm), {"m": m}
        norms = ops.maximum(scales * base_norms + m, min_norm * base_norms)
        return norms / base_norms, {"m": m}

    return ScaleTransform(init, update)


def rescale_adam(
    lr: float = 1e-3,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
    min_scale: float = 0.01,
    clip: Optional[float] = 1.0,
    normalize: bool = False,
) -> ScaleTransform:
    """RescaleAdam: Adam on one scale ``α_k`` per tensor, floored at ``min_scale``.

    The gradient ``<∂J/∂W_k, W_k>·‖W_k⁰‖/‖W_k‖`` of the reference equals ``∂J/∂α_k``; it is clipped
    to ``±clip``. As in the reference code (zhuchen03/gradinit's and HarborYuan/GradCosine's
    ``RescaleAdam``), constraint steps and objective steps keep separate first moments and step
    counts, while the second moment is shared: every step updates it, and its bias correction
    counts the steps of both kinds (``benchmarks/parity.py``: with a second moment per kind the
    scales left the authors' at the first step of the other kind).

    Args:
        lr: Adam's learning rate on the scales.
        beta_1: Adam's first-moment decay.
        beta_2: Adam's second-moment decay.
        epsilon: Adam's denominator constant.
        min_scale: floor of every scale (GradInit: 0.01).
        clip: clip of the per-scale gradient; None for no clip.
        normalize: divide each scale's gradient by the largest magnitude it has had so far
            before the clip and Adam (not in the reference). Adam is scale invariant except for
            ``epsilon``: where a scale's gradients have vanished (~1e-20 for the first layers of
            a deep net started too small) its step is ``lr·|g|/epsilon`` ≈ 0 and the scale never
            moves. Normalized, the update of every scale is invariant to its gradient's
            magnitude (Adam with an ``epsilon`` relative to each scale's own gradients). A
            gradient that was always zero stays zero.
    """

    def init(scales, base_norms):
        z = ops.zeros_like(scales)
        zero = ops.zeros([], scales.dtype)
        return {"m": z, "t": zero, "cm": z, "ct": zero, "v": z, "r": z}

    def update(grads, state, scales, base_norms, constraint=None):
        r = ops.maximum(state["r"], ops.abs(grads))  # each scale's largest gradient so far
        if normalize:
            grads = ops.divide_no_nan(grads, r)
        g = grads if clip is None else ops.clip(grads, -clip, clip)
        constraint = False if constraint is None else constraint
        pick = lambda c, o: ops.where(constraint, c, o)  # noqa: E731
        # the first moment and the step count of this step's kind
        m = beta_1 * pick(state["cm"], state["m"]) + (1.0 - beta_1) * g
        t = pick(state["ct"], state["t"]) + 1.0
        # the second moment of every step, bias-corrected by all the steps taken
        v = beta_2 * state["v"] + (1.0 - beta_2) * ops.square(g)
        total = state["t"] + state["ct"] + 1.0
        step = (lr / (1.0 - beta_1**t)) * m / (ops.sqrt(v / (1.0 - beta_2**total)) + epsilon)
        new = {
            "m": pick(state["m"], m), "t": pick(state["t"], t),
            "cm": pick(m, state["cm"]), "ct": pick(t, state["ct"]), "v": v, "r": r,
        }
        return ops.maximum(scales - step, min_scale), new

    return ScaleTransform(init, update)
