"""experiments.training: divergence detection, per-step losses, warmup, and the compiled-model
reuse of Trainer (the same run as a fresh compile)."""
import math

import keras
import numpy as np
import pytest

from keras_metainit.experiments import models, training


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0).astype("int64")
    return x, y


def _mlp(seed=0, **kw):
    return models.mlp(3, 16, input_shape=(12,), classes=4, seed=seed, **kw)


def test_diverged_rule():
    assert training.diverged([2.3, 1.0, float("nan")])
    assert training.diverged([2.3, float("inf"), 1.0])
    assert training.diverged([2.3, 3.0, 4.0, 5.0])  # above its start
    assert not training.diverged([2.302585, 2.3026, 2.30261])  # flat at chance: stalled
    assert training.diverged([2.0] + [2.03] * 10)  # 1.5 % above its start
    assert not training.diverged([2.0] + [2.019] * 10)
    assert not training.diverged([2.3, 1.0, 0.5])
    assert not training.diverged([])
    # the mean of the last `tail` steps is compared, not the last step
    assert not training.diverged([2.0] + [1.0] * 9 + [2.5], tail=10)
    assert training.diverged([2.0] + [1.0] * 9 + [2.5], tail=1)


def test_an_exploding_run_counts_as_diverged_and_stops():
    train = _data()
    budget = training.Budget("sgd", 1e4, momentum=0.9, batch_size=32, steps=40)
    result = training.train(_mlp(kernel_initializer=keras.initializers.RandomNormal(stddev=3.0)),
                            train, _data(64, 1), budget)
    assert result.diverged
    assert not all(math.isfinite(v) for v in result.losses)
    assert len(result.losses) < 40  # stopped at the first non-finite loss
    good = training.train(_mlp(), train, _data(64, 1),
                          training.Budget("adam", 1e-2, batch_size=32, steps=40))
    assert not good.diverged and good.train_loss < good.losses[0]
    assert 0.0 <= good.test_acc <= 1.0


def test_first_recorded_loss_is_the_first_batch_before_any_step():
    x, y = _data()
    model = _mlp()
    budget = training.Budget("sgd", 0.1, batch_size=32, steps=5)
    xb, yb = training._repeat((x, y), 5 * 32, seed=3)
    expected = float(training.CE(yb[:32], model(xb[:32])))
    result = training.train(model, (x, y), (x, y), budget, seed=3)
    assert result.losses[0] == pytest.approx(expected, rel=1e-5)
    assert len(result.losses) == 5


def test_accuracy_counts_non_finite_logits_as_wrong():
    logits = np.array([[1.0, 0.0], [np.nan, 5.0], [0.0, 1.0]])
    assert training.accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_warmup_rate_is_linear_then_constant():
    rate = training.WarmupRate(0.1, 4)
    got = [float(rate(s)) for s in range(6)]
    np.testing.assert_allclose(got, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rtol=1e-6)
    assert float(training.WarmupRate(0.1, 1)(0)) == pytest.approx(0.1)
    quadratic = [float(training.WarmupRate(0.1, 4, power=2.0)(s)) for s in range(5)]
    np.testing.assert_allclose(quadratic, [0.1 / 16, 0.1 / 4, 0.1 * 9 / 16, 0.1, 0.1], rtol=1e-6)


def test_clipping_reaches_the_optimizer():
    opt = training.make_optimizer(training.Budget("sgd", 0.1, global_clipnorm=1.0))
    assert opt.global_clipnorm == 1.0 and opt.clipnorm is None
    assert training.make_optimizer(training.Budget("adam", 1e-3, clipnorm=2.0)).clipnorm == 2.0


def test_trainer_reuse_is_the_same_run_as_a_fresh_compile():
    """A second model trained through the compiled first one (weights copied, optimizer reset,
    another rate and warmup) follows the same losses as that model compiled on its own."""
    train, test = _data(), _data(64, 1)
    args = {"depth": 3, "width": 16, "input_shape": (12,), "classes": 4}
    first = training.Budget("adam", 1e-2, batch_size=32, steps=12)
    second = first.replace(lr=3e-3, warmup=5)
    trainer = training.Trainer()
    trainer.train(models.mlp, args, models.mlp(seed=0, **args), train, test, first)
    reused = trainer.train(models.mlp, args, models.mlp(seed=1, **args), train, test, second,
                           seed=2)
    fresh = training.train(models.mlp(seed=1, **args), train, test, second, seed=2)
    np.testing.assert_allclose(reused.losses, fresh.losses, rtol=1e-5)
    assert reused.test_acc == fresh.test_acc
