"""experiments.stats: the one statistics convention (sample std) and the verdict rule (beyond two
standard errors of the difference), against NumPy and SciPy."""
import math

import numpy as np
import pytest

from keras_metainit.experiments import stats


def test_mean_std_is_the_sample_std():
    values = [0.81, 0.79, 0.85, 0.6, 0.77]
    mean, std = stats.mean_std(values)
    assert mean == pytest.approx(np.mean(values))
    assert std == pytest.approx(np.std(values, ddof=1))
    assert std != pytest.approx(np.std(values))  # not the population std
    assert stats.mean_std([0.5]) == (0.5, 0.0)
    assert stats.fmt(values) == f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def test_margin_is_twice_the_welch_standard_error():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.7, 0.05, 5), rng.normal(0.65, 0.08, 7)
    cmp = stats.compare(a, b)
    t = scipy_stats.ttest_ind(a, b, equal_var=False).statistic
    # Welch's t is the difference over one standard error of the difference
    assert cmp.diff / (cmp.margin / 2) == pytest.approx(t, rel=1e-10)
    assert cmp.diff == pytest.approx(a.mean() - b.mean())


def test_verdict_rule_at_its_boundary():
    # a = [1, 3]: mean 2, sample std sqrt(2); b all zero: the margin is 2 * sqrt(2 / 2) = 2
    at = stats.compare([1.0, 3.0], [0.0, 0.0])
    assert at.margin == pytest.approx(2.0) and at.diff == pytest.approx(2.0)
    assert not at.above and not at.below and at.word == "within the seed spread of"
    beyond = stats.compare([1.01, 3.01], [0.0, 0.0])  # same spread, difference 2.01
    assert beyond.above and not beyond.below and beyond.word == "above"
    assert stats.compare([0.0, 0.0], [1.01, 3.01]).below
    # identical constant rows: no difference counts
    assert not stats.compare([0.1] * 5, [0.1] * 5).above


def test_seeds():
    assert stats.seeds(5) == [0, 1, 2, 3, 4]
    assert math.isnan(stats.mean_std([])[0])
