"""QuadraticWarmup: values, continuity, the `after` schedule, use in an optimizer, serialization."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_metainit.schedules import QuadraticWarmup

LR, T = 0.2, 40


def decay():
    return keras.optimizers.schedules.ExponentialDecay(LR, decay_steps=7, decay_rate=0.5)


@pytest.mark.backend_neutral
def test_warmup_values_follow_the_formula_then_stay_constant():
    schedule = QuadraticWarmup(LR, T)
    for step in [0, 1, 7, T // 2, T - 1]:
        assert float(schedule(step)) == pytest.approx(LR * (step / T) ** 2, rel=1e-6, abs=1e-12)
    for step in [T, T + 1, 10 * T, 10**6]:
        assert float(schedule(step)) == pytest.approx(LR, rel=1e-6)


@pytest.mark.backend_neutral
def test_after_schedule_is_shifted_by_the_warmup():
    after = decay()
    schedule = QuadraticWarmup(LR, T, after=after)
    for k in [0, 3, 14, 100]:
        assert float(schedule(T + k)) == pytest.approx(float(after(k)), rel=1e-6)
    for step in [0, 5, T - 1]:  # the warmup is unchanged by `after`
        assert float(schedule(step)) == pytest.approx(LR * (step / T) ** 2, rel=1e-6, abs=1e-12)


@pytest.mark.backend_neutral
def test_after_schedule_with_integer_boundaries_gets_integer_steps():
    after = keras.optimizers.schedules.PiecewiseConstantDecay([5, 10], [LR, LR / 2, LR / 4])
    schedule = QuadraticWarmup(LR, T, after=after)
    assert [float(schedule(T + k)) for k in (0, 6, 11)] == pytest.approx([LR, LR / 2, LR / 4])


@pytest.mark.backend_neutral
@pytest.mark.parametrize("after", [None, "decay"])
def test_continuous_at_the_end_of_the_warmup(after):
    schedule = QuadraticWarmup(LR, T, after=decay() if after else None)
    just_before = float(schedule(tf.constant(T - 1e-3, tf.float32)))
    assert just_before == pytest.approx(float(schedule(T)), rel=1e-4)
    assert just_before < float(schedule(T))  # still in the warmup


def test_in_an_optimizer_and_under_tf_function():
    schedule = QuadraticWarmup(LR, T, after=decay())
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    for step in [3, T + 5]:
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(float(schedule(step)), rel=1e-6)
    compiled = tf.function(schedule)
    step = tf.Variable(0, dtype=tf.int64)
    for value in [2, T + 9]:
        step.assign(value)
        assert float(compiled(step)) == pytest.approx(float(schedule(value)), rel=1e-6)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("after", [None, "decay"])
def test_serialize_round_trip(after):
    schedule = QuadraticWarmup(LR, T, after=decay() if after else None)
    config = keras.optimizers.schedules.serialize(schedule)
    restored = keras.optimizers.schedules.deserialize(config)
    assert isinstance(restored, QuadraticWarmup)
    assert restored.get_config() == schedule.get_config()
    if after:
        assert isinstance(restored.after, keras.optimizers.schedules.ExponentialDecay)
    for step in [0, 11, T, T + 13]:
        assert float(restored(step)) == pytest.approx(float(schedule(step)), rel=1e-6)
    # and through the plain get_config / from_config pair
    again = QuadraticWarmup.from_config(schedule.get_config())
    assert float(again(T + 13)) == pytest.approx(float(schedule(T + 13)), rel=1e-6)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(learning_rate=LR, warmup_steps=0), "warmup_steps"),
        (dict(learning_rate=LR, warmup_steps=2.5), "warmup_steps"),
        (dict(learning_rate=-0.1, warmup_steps=T), "learning_rate"),
        (dict(learning_rate=0.0, warmup_steps=T), "learning_rate"),
        (dict(learning_rate=LR, warmup_steps=T, after="constant"), "after"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*Received: {argument}="):
        QuadraticWarmup(**kwargs)


@pytest.mark.backend_neutral
def test_learning_rate_value_is_kept_as_a_float():
    assert np.isclose(QuadraticWarmup(1, 5).get_config()["learning_rate"], 1.0)
    assert isinstance(QuadraticWarmup(1, 5).get_config()["learning_rate"], float)
