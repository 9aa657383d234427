"""The model as a pure loss of ``(params, batch)``: ``stateless_call`` at given weights, dropout
and noise off, float32 compute under mixed precision. Nothing here writes a model variable."""
from __future__ import annotations

import contextlib
from typing import List

import keras

from keras_metainit import _compat
from keras_metainit import autodiff as ad
from keras_metainit import losses

__all__ = ["make_loss_fn", "make_forward", "noise_off", "float32_compute", "all_layers",
           "lower_precision_policies"]

# Layers whose randomness is switched off during initialization, and the attribute that does it.
_NOISE_ATTRS = (
    (keras.layers.Dropout, "rate"),
    (keras.layers.GaussianDropout, "rate"),
    (keras.layers.AlphaDropout, "rate"),
    (keras.layers.GaussianNoise, "stddev"),
)


@contextlib.contextmanager
def noise_off(model):
    """Dropout and noise layers act as the identity inside this context, even with training=True."""
    saved = []
    for layer in all_layers(model):
        for cls, attr in _NOISE_ATTRS:
            if isinstance(layer, cls):
                saved.append((layer, attr, getattr(layer, attr)))
                object.__setattr__(layer, attr, 0.0)
    try:
        yield
    finally:
        for layer, attr, value in saved:
            object.__setattr__(layer, attr, value)


@contextlib.contextmanager
def float32_compute(model):
    """Layers with a lower-precision compute dtype (mixed_float16, mixed_bfloat16) compute in
    float32 inside this context; their policies are restored on exit."""
    float32 = keras.DTypePolicy("float32")
    saved = []
    for layer in [model] + all_layers(model):
        policy = _compat.dtype_policy(layer)
        if (isinstance(policy, keras.DTypePolicy) and policy.compute_dtype != "float32"
                and policy.variable_dtype == "float32" and policy.quantization_mode is None):
            saved.append((layer, policy))
            _compat.set_dtype_policy(layer, float32)
    try:
        yield
    finally:
        for layer, policy in saved:
            _compat.set_dtype_policy(layer, policy)


def lower_precision_policies(model) -> List[str]:
    policies = [getattr(layer, "dtype_policy", None) for layer in [model] + all_layers(model)]
    return sorted({p.name for p in policies if p is not None and p.compute_dtype in
                   ("float16", "bfloat16")})


def all_layers(model):
    return _compat.flatten_layers(model, include_self=False)


def make_forward(model, training: bool = False):
    """``forward(params, x) -> y_pred``: the model's output at the given trainable parameters,
    without side effects (the forward pass of :func:`make_loss_fn`, which see).

    ``params`` replace ``model.trainable_variables`` one for one; the non-trainable variables are
    read and any update of them is discarded; dropout and noise layers are off; lower-precision
    policies compute in float32.
    """
    non_trainable = model.non_trainable_variables
    takes_training = _compat.call_has_training_arg(model)

    def forward(params, x):
        with noise_off(model), float32_compute(model):
            if takes_training:
                y_pred, _ = model.stateless_call(list(params), non_trainable, x,
                                                 training=training)
                return y_pred
            # a subclassed call() without `training`: __call__ hands it to the layers
            mapping = (list(zip(model.trainable_variables, params))
                       + list(zip(model.non_trainable_variables, non_trainable)))
            with keras.StatelessScope(state_mapping=mapping):
                return model(x, training=training)

    return forward


def make_loss_fn(model, loss_spec: losses.LossSpec, training: bool = False):
    """``per_example_loss(params, batch) -> (B,)``: the model's loss at the given trainable
    parameters, without side effects.

    ``batch`` is ``(x, y)`` in the structures the data has (several inputs, one target per
    output); the loss is :meth:`LossSpec.per_example <keras_metainit.losses.LossSpec.per_example>`:
    for a multi-output model the ``loss_weights``-weighted sum of the per-output losses, so its
    batch mean is the compiled loss ``model.fit`` minimizes.

    ``params`` replace ``model.trainable_variables`` one for one; the non-trainable variables
    (normalization statistics) are read, and any update of them is discarded. With
    ``training=True`` normalization layers use batch statistics; dropout and noise layers are off
    in both modes. Under a mixed-precision policy the computation runs in float32 (higher-order
    derivatives in float16 lose most of their digits); the model keeps its policy.

    On TensorFlow the loss is a ``tf.function`` (:func:`keras_metainit.autodiff.compiled_loss`),
    never inlined in a model with convolutions (their third-order graphs can turn cyclic under
    oneDNN's rewrite; see :func:`keras_metainit.autodiff.tensorflow.compiled_loss`); a
    convolution this check misses (a custom layer calling ``keras.ops.conv``, not named
    ``*Conv*``) still runs, through the runner's XLA fallback for a cyclic graph. On JAX it is
    compiled with the whole step by ``jax.jit``; on torch it runs eagerly.

    Args:
        model: the model (built).
        loss_spec: its resolved loss (:func:`keras_metainit.losses.resolve_loss`).
        training: normalization layers on batch statistics.

    Returns:
        ``per_example_loss(params, batch) -> (B,)``, with an ``examples_independent`` attribute:
        whether no layer mixes the examples of a batch in this mode.

    Examples:

    ```python
    import keras
    import numpy as np
    from keras_metainit.losses import resolve_loss
    from keras_metainit.model_fn import make_loss_fn

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x, y = np.ones((8, 4), "float32"), np.zeros(8, "int64")
    loss_fn = make_loss_fn(model, resolve_loss(model, "sparse_categorical_crossentropy"))
    per = loss_fn([v.value for v in model.trainable_variables], (x, y))  # shape (8,)
    ```
    """
    loss_head = loss_spec.per_example  # written once in keras.ops
    forward = make_forward(model, training)

    def per_example_loss(params, batch):
        x, y = batch[0], batch[1]
        y_pred = forward(params, x)
        per = loss_head(y, y_pred)
        if len(batch) > 2:  # sample weights, one per example: fit's weighted loss, summed / N
            per = per * keras.ops.cast(keras.ops.reshape(batch[2], [-1]), per.dtype)
        return per

    has_conv = any("Conv" in type(layer).__name__ for layer in all_layers(model))
    compiled = ad.compiled_loss(per_example_loss, separate=has_conv)
    # Whether examples are independent: no layer computes batch statistics in this mode.
    compiled.examples_independent = not (
        training and any(isinstance(layer, keras.layers.BatchNormalization)
                         for layer in all_layers(model)))
    return compiled
