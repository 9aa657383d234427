"""Analytic initializers: weight-norm init for plain nets and ResNets, and Fixup.

Every initializer here is a small `keras.initializers.Initializer`, registered for Keras
serialization under the package name ``keras_metainit`` (importing ``keras_metainit`` is enough for
``keras.models.load_model`` to find them).

Seeds differ from Keras's own initializers on purpose. In Keras, an unseeded initializer returns
the same values on every call, so one instance shared by several layers gives them identical
kernels. Here:

- ``seed=None``: every call draws fresh values (one instance can be shared by many layers). Each
  call's seed comes from Python's global random state, like Keras's own unseeded seeds, so
  ``keras.utils.set_random_seed(n)`` makes a whole model reproducible.
- an ``int`` seed: identical values on every call (Keras's semantics; you asked for them).
- a ``keras.random.SeedGenerator``: passed through; it advances on every call. This is the way to
  get reproducible *and* distinct kernels from one shared instance.
"""
from __future__ import annotations

import math
import random as python_random
from typing import Sequence, Union

import keras
from keras import ops

from keras_metainit.validation import check, is_int, is_real

__all__ = ["WNInit", "WNResNetInit", "FixupInit"]

SeedLike = Union[None, int, keras.random.SeedGenerator]

_DIRECTIONS = ("orthogonal", "normal")
_MAX_SEED = 2**31 - 1


def _compute_fans(shape: Sequence[int]) -> tuple:
    """``(fan_in, fan_out)`` exactly as Keras's ``VarianceScaling`` computes them.

    A copy of ``keras.src.initializers.random_initializers.compute_fans`` (private in Keras):
    ``(in, out)`` for a Dense kernel, and for a convolution kernel ``(..., in, out)`` both fans are
    multiplied by the receptive field size (the product of the leading dimensions).
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _work_dtype(dtype) -> str:
    """The dtype to compute in: float64 stays float64, everything else is computed in float32."""
    dtype = keras.backend.standardize_dtype(dtype)
    return "float64" if dtype == "float64" else "float32"


def _check_kernel_shape(shape) -> tuple:
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ValueError(
            "The tensor to initialize must be at least two-dimensional (a Dense or convolution "
            f"kernel). Received: shape={shape} of rank {len(shape)}."
        )
    return shape


def _unit_columns(rows: int, cols: int, direction: str, seed, dtype: str):
    """A ``(rows, cols)`` matrix whose columns have unit norm.

    ``"orthogonal"``: orthonormal columns when ``rows >= cols``; otherwise orthonormal rows (the
    columns cannot all be orthogonal), each column then rescaled to unit norm.
    ``"normal"``: i.i.d. Gaussian columns, each rescaled to unit norm.
    """
    if direction == "orthogonal":
        tall = keras.random.normal((max(rows, cols), min(rows, cols)), seed=seed, dtype=dtype)
        q, r = ops.qr(tall)
        # Multiply by the signs of diag(r) so that q is Haar distributed (Mezzadri, 2007).
        d = ops.diagonal(r)
        q = q * ops.where(d < 0, -ops.ones_like(d), ops.ones_like(d))
        matrix = q if rows >= cols else ops.transpose(q)
    else:
        matrix = keras.random.normal((rows, cols), seed=seed, dtype=dtype)
    return matrix / ops.sqrt(ops.sum(ops.square(matrix), axis=0, keepdims=True))


class _FreshSeedInitializer(keras.initializers.Initializer):
    """Base class: seed handling shared by this module's initializers (see the module docstring)."""

    def __init__(self, seed: SeedLike = None):
        self._init_seed = seed
        if isinstance(seed, dict):
            seed = keras.saving.deserialize_keras_object(seed)
        if seed is None:
            # Each call draws a fresh int seed from Python's global random state (what
            # keras.utils.set_random_seed seeds). Not a lazily created keras SeedGenerator, which
            # would create a variable inside whatever scope the first call happens in.
            pass
        elif is_int(seed):
            seed = self._init_seed = int(seed)  # also a NumPy integer: keep a plain int
        else:
            check(isinstance(seed, keras.random.SeedGenerator), "seed", seed,
                  "None, an integer or a `keras.random.SeedGenerator`")
        self.seed = seed

    def _draw_seed(self):
        """The seed for one call: fresh when unseeded, otherwise the user's int or generator."""
        if self.seed is None:
            return python_random.randint(0, _MAX_SEED - 1)
        return self.seed

    def get_config(self) -> dict:
        return {"seed": keras.saving.serialize_keras_object(self._init_seed)}


@keras.saving.register_keras_serializable(package="keras_metainit")
class WNInit(_FreshSeedInitializer):
    """Weight-norm initializer (Arpit, Campos & Bengio, 2019): unit directions times one gain.

    The kernel is viewed as a matrix of shape ``(prod(shape[:-1]), shape[-1])``, one column per
    output unit (a Dense kernel ``(in, out)``, a convolution kernel ``(..., in, out)``). Every
    column is a unit direction times the same gain

        g = sqrt(gamma * fan_in / fan_out),

    with ``fan_in`` and ``fan_out`` as Keras's ``VarianceScaling`` computes them (receptive field
    included). ``gamma=2`` preserves the norm of the forward signal through a ReLU layer (the
    paper's forward-preserving form); for a square kernel that is ``g = sqrt(2)``.

    Directions:

    - ``"orthogonal"``: when the matrix has at least as many rows as columns, the columns are
      orthonormal (so the kernel's columns are orthogonal with norm ``g`` each). When it has fewer
      rows than columns the columns cannot all be orthogonal: the rows are orthonormal and each
      column is then rescaled to unit norm, so every column still has norm ``g``.
    - ``"normal"``: Gaussian directions, each column rescaled to unit norm.

    Used as the ``kernel_initializer`` of a plain ``Dense`` or ``Conv2D`` layer it gives the
    kernel the paper gives a weight-normalized layer; `keras_metainit.layers.WNDense` and
    `keras_metainit.layers.WNConv2D` split it into a direction and a per-unit gain.

    Args:
        gamma: Positive float, the gain factor: ``2`` for ReLU hidden layers, ``1`` for linear
            ones.
        direction: ``"orthogonal"`` (default) or ``"normal"``.
        seed: ``None`` (default): every call draws fresh values, so one instance shared by several
            layers gives each its own kernel; each call's seed comes from Python's global random
            state, so ``keras.utils.set_random_seed`` makes the model reproducible. An ``int``:
            the same values on every call (Keras's semantics). A ``keras.random.SeedGenerator``: advances on every call, reproducible and
            distinct kernels from one shared instance.

    Returns:
        Called as ``initializer(shape, dtype=None)``, a tensor of that shape and dtype.

    Raises:
        ValueError: for a non-positive ``gamma``, an unknown ``direction``, a bad ``seed``, or
            (when called) a shape of rank below 2.

    Examples:
        ```python
        import keras
        from keras_metainit import WNInit

        init = WNInit()  # gamma=2: ReLU layers
        model = keras.Sequential(
            [keras.layers.Dense(256, activation="relu", kernel_initializer=init)
             for _ in range(50)] + [keras.layers.Dense(10)]
        )
        kernel = WNInit(gamma=1.0, seed=0)((64, 32))  # columns orthogonal, norm sqrt(64 / 32)
        ```

    Reference:
        Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for
        WeightNorm & ResNets", NeurIPS 2019. https://arxiv.org/abs/1906.02341
    """

    def __init__(self, gamma: float = 2.0, direction: str = "orthogonal", seed: SeedLike = None):
        check(is_real(gamma) and math.isfinite(gamma) and gamma > 0, "gamma", gamma,
              "a positive float")
        check(direction in _DIRECTIONS, "direction", direction, f"one of {_DIRECTIONS}")
        self.gamma = float(gamma)
        self.direction = direction
        super().__init__(seed=seed)

    def gain(self, shape: Sequence[int]) -> float:
        """The norm of every output-unit column of a kernel of this shape.

        Args:
            shape: the kernel's shape.

        Returns:
            ``sqrt(gamma * fan_in / fan_out)``.
        """
        fan_in, fan_out = _compute_fans(shape)
        return math.sqrt(self.gamma * fan_in / fan_out)

    def __call__(self, shape: Sequence[int], dtype=None):
        shape = _check_kernel_shape(shape)
        work = _work_dtype(dtype)
        columns = _unit_columns(
            math.prod(shape[:-1]), shape[-1], self.direction, self._draw_seed(), work
        )
        kernel = ops.reshape(columns * self.gain(shape), shape)
        return ops.cast(kernel, keras.backend.standardize_dtype(dtype))

    def get_config(self) -> dict:
        return {"gamma": self.gamma, "direction": self.direction, **super().get_config()}


#: gamma of each WNResNetInit role, as a function of the number of blocks per stage.
_ROLE_GAMMA = {
    "branch_in": lambda blocks: 2.0,
    "branch_out": lambda blocks: 1.0 / blocks,
    "shortcut": lambda blocks: 1.0,
    "stem": lambda blocks: 1.0,
}


@keras.saving.register_keras_serializable(package="keras_metainit")
class WNResNetInit(WNInit):
    """`WNInit` for the layers of a ResNet, with ``gamma`` chosen by the layer's role.

    For a residual block ``h <- h + F(h)`` with ``F = conv2(ReLU(conv1(h)))`` and no ReLU after the
    addition (Arpit et al., 2019):

    | role           | layer                          | gamma                  |
    |----------------|--------------------------------|------------------------|
    | ``"branch_in"``  | ``conv1``, before the ReLU     | ``2``                  |
    | ``"branch_out"`` | ``conv2``, last of the branch  | ``1 / blocks_per_stage`` |
    | ``"shortcut"``   | 1x1 projection shortcut        | ``1``                  |
    | ``"stem"``       | the first convolution          | ``1``                  |

    ``1 / blocks_per_stage`` folds the ``1/sqrt(B)`` scale of each residual branch into its last
    layer, so the signal does not grow with depth. The classifier keeps a standard initializer and
    biases start at zero. Pair it with a quadratic learning-rate warmup
    (`keras_metainit.schedules.QuadraticWarmup`).

    Args:
        role: ``"branch_in"``, ``"branch_out"``, ``"shortcut"`` or ``"stem"``.
        blocks_per_stage: Integer >= 1, the number B of residual blocks in the layer's stage.
        direction: ``"orthogonal"`` (default) or ``"normal"``, as in `WNInit`.
        seed: ``None``, an ``int`` or a ``keras.random.SeedGenerator``, as in `WNInit`: ``None``
            draws fresh values on every call (reproducible after ``keras.utils.set_random_seed``),
            an ``int`` gives the same values on every call, a generator advances on every call.

    Returns:
        Called as ``initializer(shape, dtype=None)``, a tensor of that shape and dtype.

    Raises:
        ValueError: for an unknown ``role`` or ``direction``, ``blocks_per_stage < 1`` or a bad
            ``seed``.

    Examples:
        ```python
        import keras
        from keras_metainit import WNResNetInit

        B = 3  # blocks per stage

        def block(h):
            f = keras.layers.Conv2D(
                16, 3, padding="same", activation="relu",
                kernel_initializer=WNResNetInit("branch_in", blocks_per_stage=B))(h)
            f = keras.layers.Conv2D(
                16, 3, padding="same",
                kernel_initializer=WNResNetInit("branch_out", blocks_per_stage=B))(f)
            return keras.layers.Add()([h, f])  # no ReLU after the addition
        ```

    Reference:
        Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for
        WeightNorm & ResNets", NeurIPS 2019. https://arxiv.org/abs/1906.02341
    """

    def __init__(
        self,
        role: str,
        blocks_per_stage: int = 1,
        direction: str = "orthogonal",
        seed: SeedLike = None,
    ):
        check(role in _ROLE_GAMMA, "role", role, f"one of {tuple(_ROLE_GAMMA)}")
        check(is_int(blocks_per_stage) and blocks_per_stage >= 1, "blocks_per_stage",
              blocks_per_stage, "an integer >= 1")
        self.role = role
        self.blocks_per_stage = int(blocks_per_stage)
        super().__init__(
            gamma=_ROLE_GAMMA[role](self.blocks_per_stage), direction=direction, seed=seed
        )

    def get_config(self) -> dict:
        config = super().get_config()
        del config["gamma"]
        return {"role": self.role, "blocks_per_stage": self.blocks_per_stage, **config}


@keras.saving.register_keras_serializable(package="keras_metainit")
class FixupInit(_FreshSeedInitializer):
    """Fixup initializer for the non-last layers of residual branches (Zhang, Dauphin & Ma, 2019).

    He normal with ``fan_out`` (the reference code's choice: an untruncated normal with standard
    deviation ``sqrt(2 / fan_out)``, fans as Keras computes them), scaled by
    ``num_branches ** (-1 / (2 * branch_depth - 2))``: with ``L`` residual branches of ``m`` layers
    each, the first ``m - 1`` layers of every branch get this initializer.

    The rest of Fixup is not an initializer of its own:

    - the last layer of every residual branch and the classifier's kernel start at zero: Keras's
      ``"zeros"`` initializer does that;
    - every branch gets a scalar multiplier (initialized at 1) and scalar biases (initialized at 0)
      before each convolution, each activation and the multiplier:
      `keras_metainit.layers.FixupScale` and `keras_metainit.layers.FixupBias`.

    Args:
        num_branches: Integer >= 1, the number L of residual branches in the network.
        branch_depth: Integer >= 2, the number m of weight layers in each branch.
        seed: ``None`` (default): every call draws fresh values, so one instance shared by several
            layers gives each its own kernel (reproducible after ``keras.utils.set_random_seed``).
            An ``int``: the same values on every call (Keras's semantics). A ``keras.random.SeedGenerator``: advances on every call.

    Returns:
        Called as ``initializer(shape, dtype=None)``, a tensor of that shape and dtype.

    Raises:
        ValueError: for ``num_branches < 1``, ``branch_depth < 2`` or a bad ``seed``.

    Examples:
        A Fixup residual block (two 3x3 convolutions, 8 blocks in the network):

        ```python
        import keras
        from keras_metainit import FixupInit
        from keras_metainit.layers import FixupBias, FixupScale

        init = FixupInit(num_branches=8, branch_depth=2)

        def fixup_block(h, filters):
            f = FixupBias()(h)
            f = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    kernel_initializer=init)(f)
            f = FixupBias()(f)
            f = keras.layers.ReLU()(f)
            f = FixupBias()(f)
            f = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    kernel_initializer="zeros")(f)  # last layer: zero
            f = FixupScale()(f)
            f = FixupBias()(f)
            return keras.layers.ReLU()(keras.layers.Add()([h, f]))

        # ... and the classifier: keras.layers.Dense(10, kernel_initializer="zeros")
        ```

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization",
        ICLR 2019. https://arxiv.org/abs/1901.09321
    """

    def __init__(self, num_branches: int, branch_depth: int = 2, seed: SeedLike = None):
        check(is_int(num_branches) and num_branches >= 1, "num_branches", num_branches,
              "an integer >= 1")
        check(is_int(branch_depth) and branch_depth >= 2, "branch_depth", branch_depth,
              "an integer >= 2")
        self.num_branches = int(num_branches)
        self.branch_depth = int(branch_depth)
        super().__init__(seed=seed)

    @property
    def scale(self) -> float:
        """The Fixup factor ``num_branches ** (-1 / (2 * branch_depth - 2))``."""
        return self.num_branches ** (-1.0 / (2 * self.branch_depth - 2))

    def stddev(self, shape: Sequence[int]) -> float:
        """The standard deviation of a kernel of this shape.

        Args:
            shape: the kernel's shape.

        Returns:
            ``sqrt(2 / fan_out) * scale``.
        """
        _, fan_out = _compute_fans(shape)
        return math.sqrt(2.0 / max(1, fan_out)) * self.scale

    def __call__(self, shape: Sequence[int], dtype=None):
        shape = tuple(int(d) for d in shape)
        values = keras.random.normal(
            shape, stddev=self.stddev(shape), seed=self._draw_seed(), dtype=_work_dtype(dtype)
        )
        return ops.cast(values, keras.backend.standardize_dtype(dtype))

    def get_config(self) -> dict:
        return {
            "num_branches": self.num_branches,
            "branch_depth": self.branch_depth,
            **super().get_config(),
        }

