"""validation.py: the argument checks and their Keras-style messages, ``Argument `name` must be
what. Received: name=value``."""
import re

import numpy as np
import pytest

from keras_metainit import validation

pytestmark = pytest.mark.backend_neutral


def message(name, what, value):
    return re.escape(f"Argument `{name}` must be {what}. Received: {name}={value!r}")


def test_check_raises_keras_style_message_only_when_the_condition_fails():
    validation.check(True, "gamma", -1.0, "a positive float")
    with pytest.raises(ValueError) as info:
        validation.check(False, "gamma", -1.0, "a positive float")
    assert str(info.value) == "Argument `gamma` must be a positive float. Received: gamma=-1.0"
    with pytest.raises(ValueError, match=message("target", "'gc' or 'gc_gn'", "nope")):
        validation.check(False, "target", "nope", "'gc' or 'gc_gn'")  # strings shown quoted


@pytest.mark.parametrize("value,is_int,is_real", [
    (3, True, True), (np.int64(3), True, True), (True, False, False), (3.0, False, True),
    (np.float32(0.5), False, True), ("3", False, False), (None, False, False),
])
def test_numbers_but_never_bools(value, is_int, is_real):
    assert validation.is_int(value) is is_int
    assert validation.is_real(value) is is_real


def test_positive_int():
    assert validation.positive_int("units", np.int64(4)) == 4
    assert type(validation.positive_int("units", np.int64(4))) is int
    for bad in (0, -2, 2.5, True, "4"):
        with pytest.raises(ValueError, match=message("units", "an integer >= 1", bad)):
            validation.positive_int("units", bad)


@pytest.mark.parametrize("kwargs,what", [
    ({}, "a real number"),
    ({"low": 0}, "a real number >= 0"),
    ({"low": 0, "low_open": True}, "a real number > 0"),
    ({"high": 1}, "a real number <= 1"),
    ({"high": 1, "high_open": True}, "a real number < 1"),
    ({"low": 0, "high": 1, "low_open": True}, "a real number in (0, 1]"),
    ({"low": 0, "high": 1, "high_open": True}, "a real number in [0, 1)"),
])
def test_real_names_its_range(kwargs, what):
    inside = 0.5
    assert validation.real("lam", inside, **kwargs) == 0.5
    assert type(validation.real("lam", np.float32(inside), **kwargs)) is float
    for bad in (float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=message("lam", what, bad)):
            validation.real("lam", bad, **kwargs)


@pytest.mark.parametrize("kwargs,bad", [
    ({"low": 0}, -1e-9), ({"low": 0, "low_open": True}, 0), ({"high": 1}, 1.5),
    ({"high": 1, "high_open": True}, 1),
])
def test_real_refuses_the_edges_it_excludes(kwargs, bad):
    with pytest.raises(ValueError, match=re.escape(f"Received: lam={bad!r}")):
        validation.real("lam", bad, **kwargs)
    edge = kwargs.get("low", kwargs.get("high"))
    if not (kwargs.get("low_open") or kwargs.get("high_open")):
        assert validation.real("lam", edge, **kwargs) == edge  # a closed end is inside


def test_seed_and_steps():
    assert validation.seed(None) is None and validation.seed(7) == 7
    with pytest.raises(ValueError, match=message("seed", "None or an integer", 1.5)):
        validation.seed(1.5)
    assert validation.steps(3) == 3 and validation.steps(2.7) == 2  # int() truncates
    for bad in (0, 0.5, True, "3"):
        with pytest.raises(ValueError, match=message("steps", "an integer >= 1", bad)):
            validation.steps(bad)
