"""Layers: weight-normalized ``WNDense`` and ``WNConv2D``, and Fixup's scalar ``FixupScale`` and
``FixupBias``.

All are registered for Keras serialization under the package name ``keras_metainit``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import keras
from keras import ops

from keras_metainit.initializers import WNInit
from keras_metainit.validation import check, is_int, is_real, positive_int

__all__ = ["WNDense", "WNConv2D", "FixupScale", "FixupBias"]

InitializerLike = Union[None, str, dict, keras.initializers.Initializer, Callable]


def _column_norms(v, epsilon: float):
    """Norm of every output unit's column: over all axes except the last, ``epsilon`` inside the
    square root (so a zero column has a finite norm and a finite gradient)."""
    axes = tuple(range(len(v.shape) - 1))
    return ops.sqrt(ops.sum(ops.square(v), axis=axes) + epsilon)


def _int_pair(name: str, value) -> tuple:
    pair = (value, value) if is_int(value) else tuple(value)
    check(len(pair) == 2 and all(is_int(d) and d >= 1 for d in pair), name, value,
          "a positive integer or a tuple of 2 positive integers")
    return tuple(int(d) for d in pair)


class _WeightNorm(keras.layers.Layer):
    """Base class of the weight-normalized layers: the ``v``/``g`` weights and the ``kernel``."""

    def __init__(
        self,
        activation: Union[None, str, Callable] = None,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = None,
        bias_initializer: InitializerLike = "zeros",
        epsilon: float = 1e-12,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(
            WNInit() if kernel_initializer is None else kernel_initializer
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        check(is_real(epsilon) and epsilon >= 0, "epsilon", epsilon, "a non-negative float")
        self.epsilon = float(epsilon)

    def _build_weights(self, kernel_shape: tuple, units: int) -> None:
        # Draw the kernel once; v takes it as is and g its column norms, so that the effective
        # kernel g * v / ||v|| is, at init, exactly the kernel the initializer gives a plain layer.
        k = ops.convert_to_tensor(self.kernel_initializer(kernel_shape, dtype=self.variable_dtype))
        g = _column_norms(k, self.epsilon)
        self.v = self.add_weight(
            name="v", shape=kernel_shape, initializer=lambda shape, dtype=None: ops.cast(k, dtype)
        )
        self.g = self.add_weight(
            name="g", shape=(units,), initializer=lambda shape, dtype=None: ops.cast(g, dtype)
        )
        self.bias = (
            self.add_weight(name="bias", shape=(units,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    @property
    def kernel(self):
        """The effective kernel ``g * v / ||v||`` (norm over all axes but the last)."""
        return self.g * self.v / _column_norms(self.v, self.epsilon)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="keras_metainit")
class WNDense(_WeightNorm):
    """A weight-normalized ``Dense`` layer: ``activation(x @ (g * v / ||v||) + bias)``.

    Trainable weights: ``v`` (the direction, the full kernel shape ``(input_dim, units)``), ``g``
    (one gain per output unit, shape ``(units,)``) and ``bias``. At build the layer draws one
    kernel ``k`` from ``kernel_initializer`` and sets ``v = k`` and ``g = ||k||`` per column, so its
    effective kernel at init is exactly the kernel a plain ``Dense`` layer would get from the same
    initializer; training then moves directions and gains separately (Salimans & Kingma, 2016).

    Args:
        units: Positive integer, the number of output units.
        activation: Activation function, as for ``keras.layers.Dense``; none by default.
        use_bias: Whether the layer has a bias vector.
        kernel_initializer: Initializer of the kernel ``v`` and its gains ``g``. Defaults to a fresh
            `keras_metainit.WNInit` (``gamma=2``, for ReLU layers).
        bias_initializer: Initializer of the bias vector.
        epsilon: Non-negative float added to ``||v||^2`` under the square root, so a zero column
            stays finite.
        **kwargs: Base layer arguments (``name``, ``dtype``, ``trainable`` ...).

    Returns:
        Called on ``(batch, ..., input_dim)``, a tensor ``(batch, ..., units)``.

    Examples:
        ```python
        import keras
        from keras_metainit.layers import WNDense

        model = keras.Sequential(
            [keras.Input((784,))]
            + [WNDense(128, activation="relu") for _ in range(20)]
            + [WNDense(10, kernel_initializer="glorot_uniform")]
        )
        model.layers[0].kernel  # the effective kernel g * v / ||v||
        ```

    Reference:
        Salimans & Kingma, "Weight Normalization: A Simple Reparameterization to Accelerate
        Training of Deep Neural Networks", NeurIPS 2016. https://arxiv.org/abs/1602.07868
    """

    def __init__(
        self,
        units: int,
        activation: Union[None, str, Callable] = None,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = None,
        bias_initializer: InitializerLike = "zeros",
        epsilon: float = 1e-12,
        **kwargs: Any,
    ):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer, epsilon,
                         **kwargs)
        self.units = positive_int("units", units)
        self.input_spec = keras.InputSpec(min_ndim=2)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        input_dim = input_shape[-1]
        self._build_weights((input_dim, self.units), self.units)
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        outputs = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_metainit")
class WNConv2D(_WeightNorm):
    """A weight-normalized 2D convolution: ``activation(conv(x, g * v / ||v||) + bias)``.

    Trainable weights: ``v`` (the direction, the full kernel shape
    ``(kernel_h, kernel_w, in_channels, filters)``), ``g`` (one gain per filter, shape
    ``(filters,)``) and ``bias``; ``||v||`` is taken per filter, over the other three axes. At
    build the layer draws one kernel ``k`` from ``kernel_initializer`` and sets ``v = k`` and
    ``g = ||k||`` per filter, so its effective kernel at init is exactly the kernel a plain
    ``Conv2D`` layer would get from the same initializer.

    Args:
        filters: Positive integer, the number of output channels.
        kernel_size: An integer or a tuple of 2 integers, the height and width of the kernel.
        strides: An integer or a tuple of 2 integers.
        padding: ``"valid"`` or ``"same"`` (case-insensitive).
        dilation_rate: An integer or a tuple of 2 integers.
        activation: Activation function; none by default.
        use_bias: Whether the layer has a bias vector.
        kernel_initializer: Initializer of the kernel ``v`` and its gains ``g``. Defaults to a fresh
            `keras_metainit.WNInit` (``gamma=2``, for ReLU layers).
        bias_initializer: Initializer of the bias vector.
        data_format: ``"channels_last"`` or ``"channels_first"``; defaults to
            ``keras.config.image_data_format()``.
        epsilon: Non-negative float added to ``||v||^2`` under the square root.
        **kwargs: Base layer arguments (``name``, ``dtype``, ``trainable`` ...).

    Returns:
        Called on ``(batch, height, width, channels)`` (channels last), the convolved tensor.

    Examples:
        ```python
        import keras
        from keras_metainit import WNResNetInit
        from keras_metainit.layers import WNConv2D

        conv = WNConv2D(32, 3, padding="same", activation="relu",
                        kernel_initializer=WNResNetInit("branch_in", blocks_per_stage=3))
        y = conv(keras.random.normal((2, 28, 28, 16)))
        ```

    Reference:
        Salimans & Kingma (2016), the weight-normalization paper cited by `WNDense`.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Union[int, Sequence[int]],
        strides: Union[int, Sequence[int]] = 1,
        padding: str = "valid",
        dilation_rate: Union[int, Sequence[int]] = 1,
        activation: Union[None, str, Callable] = None,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = None,
        bias_initializer: InitializerLike = "zeros",
        data_format: Optional[str] = None,
        epsilon: float = 1e-12,
        **kwargs: Any,
    ):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer, epsilon,
                         **kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = _int_pair("kernel_size", kernel_size)
        self.strides = _int_pair("strides", strides)
        self.dilation_rate = _int_pair("dilation_rate", dilation_rate)
        padding = padding.lower() if isinstance(padding, str) else padding
        check(padding in ("valid", "same"), "padding", padding, "'valid' or 'same'")
        self.padding = padding
        data_format = keras.config.image_data_format() if data_format is None else data_format
        check(data_format in ("channels_last", "channels_first"), "data_format", data_format,
              "'channels_last' or 'channels_first'")
        self.data_format = data_format
        self.input_spec = keras.InputSpec(ndim=4)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        channel_axis = -1 if self.data_format == "channels_last" else 1
        in_channels = input_shape[channel_axis]
        self._build_weights(self.kernel_size + (in_channels, self.filters), self.filters)
        self.input_spec = keras.InputSpec(ndim=4, axes={channel_axis: in_channels})

    def call(self, inputs):
        outputs = ops.conv(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            shape = (1, 1, 1, self.filters) if self.data_format == "channels_last" else (
                1, self.filters, 1, 1)
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        return self.activation(outputs)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "data_format": self.data_format,
        }


class _Scalar(keras.layers.Layer):
    """Base class of the one-scalar layers."""

    def __init__(self, initial_value: float, **kwargs: Any):
        super().__init__(**kwargs)
        check(is_real(initial_value), "initial_value", initial_value, "a float")
        self.initial_value = float(initial_value)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        self.scalar = self.add_weight(
            name=self._weight_name,
            shape=(),
            initializer=keras.initializers.Constant(self.initial_value),
        )

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "initial_value": self.initial_value}


@keras.saving.register_keras_serializable(package="keras_metainit")
class FixupScale(_Scalar):
    """One trainable scalar multiplier, ``x * scale``: Fixup's multiplier of a residual branch.

    Args:
        initial_value: The scalar's initial value (Fixup: 1).
        **kwargs: Base layer arguments (``name``, ``dtype``, ``trainable`` ...).

    Returns:
        Called on a tensor, the tensor times the scalar (same shape).

    Examples:
        See `keras_metainit.FixupInit` for a whole Fixup block.

        ```python
        import keras
        from keras_metainit.layers import FixupScale

        x = keras.random.normal((2, 8, 8, 16))
        y = FixupScale()(x)  # y == x at init
        ```

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization",
        ICLR 2019. https://arxiv.org/abs/1901.09321
    """

    _weight_name = "scale"

    def __init__(self, initial_value: float = 1.0, **kwargs: Any):
        super().__init__(initial_value=initial_value, **kwargs)

    def call(self, inputs):
        return ops.multiply(inputs, self.scalar)


@keras.saving.register_keras_serializable(package="keras_metainit")
class FixupBias(_Scalar):
    """One trainable scalar bias, ``x + bias``: Fixup's scalar biases inside residual branches.

    The companion of :class:`FixupScale`, with the same arguments and reference: called on a
    tensor it returns the tensor plus the scalar; ``initial_value`` starts at 0 (Fixup's biases),
    so ``FixupBias()(x) == x`` at init. Where a Fixup block puts them: `keras_metainit.FixupInit`.
    """

    _weight_name = "bias"

    def __init__(self, initial_value: float = 0.0, **kwargs: Any):
        super().__init__(initial_value=initial_value, **kwargs)

    def call(self, inputs):
        return ops.add(inputs, self.scalar)
