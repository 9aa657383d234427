"""Learning-rate schedules: ``QuadraticWarmup``, registered for Keras serialization."""
from __future__ import annotations

import math
from typing import Optional

import keras
from keras import ops

from keras_metainit.validation import check, is_real, positive_int

__all__ = ["QuadraticWarmup"]

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package="keras_metainit")
class QuadraticWarmup(LearningRateSchedule):
    """Quadratic learning-rate warmup, then a constant or another schedule.

    At step ``t``:

        lr(t) = learning_rate * (t / warmup_steps) ** 2     for t < warmup_steps
        lr(t) = after(t - warmup_steps)                      for t >= warmup_steps

    and ``learning_rate`` after the warmup when ``after`` is None. The schedule is continuous at
    ``t = warmup_steps`` when ``after(0) == learning_rate`` (true for Keras's decay schedules
    started at ``learning_rate``). Arpit et al. (2019) pair their weight-norm initialization with
    this warmup.

    Args:
        learning_rate: Positive float, the learning rate reached at the end of the warmup.
        warmup_steps: Integer >= 1, the warmup's length in optimizer steps.
        after: ``None`` (keep ``learning_rate``) or a
            ``keras.optimizers.schedules.LearningRateSchedule``, evaluated at ``t - warmup_steps``.

    Returns:
        Called with a step, the learning rate as a float32 scalar tensor.

    Raises:
        ValueError: for ``learning_rate <= 0``, ``warmup_steps < 1`` or an ``after`` that is not a
            schedule.

    Examples:
        ```python
        import keras
        from keras_metainit.schedules import QuadraticWarmup

        decay = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=10_000)
        optimizer = keras.optimizers.SGD(
            learning_rate=QuadraticWarmup(0.1, warmup_steps=500, after=decay), momentum=0.9)
        ```

    Reference:
        The weight-norm paper of `keras_metainit.WNInit` (Arpit, Campos & Bengio, NeurIPS 2019),
        whose networks train with this warmup.
    """

    def __init__(
        self,
        learning_rate: float,
        warmup_steps: int,
        after: Optional[LearningRateSchedule] = None,
    ):
        check(is_real(learning_rate) and math.isfinite(learning_rate) and learning_rate > 0,
              "learning_rate", learning_rate, "a positive float")
        self.warmup_steps = positive_int("warmup_steps", warmup_steps)
        check(after is None or isinstance(after, LearningRateSchedule), "after", after,
              "None or a `keras.optimizers.schedules.LearningRateSchedule`")
        self.learning_rate = float(learning_rate)
        self.after = after

    def __call__(self, step):
        step = ops.convert_to_tensor(step)
        t = ops.cast(step, "float32")
        warmup_steps = float(self.warmup_steps)
        warm = self.learning_rate * ops.square(t / warmup_steps)
        if self.after is None:
            post = ops.full_like(warm, self.learning_rate)
        else:
            # `after` sees the step in the caller's dtype, shifted, and clamped at 0: it is also
            # evaluated (and discarded) during the warmup.
            shifted = ops.maximum(step - ops.cast(self.warmup_steps, step.dtype), 0)
            post = ops.cast(self.after(shifted), "float32")
        return ops.where(t < warmup_steps, warm, post)

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "after": None
            if self.after is None
            else keras.optimizers.schedules.serialize(self.after),
        }

    @classmethod
    def from_config(cls, config: dict) -> "QuadraticWarmup":
        config = dict(config)
        if config.get("after") is not None:
            config["after"] = keras.optimizers.schedules.deserialize(config["after"])
        return cls(**config)
