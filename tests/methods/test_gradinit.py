"""methods/gradinit.py: GradInit's objective against a float64 reference, and runs that lower
the look-ahead loss, respect the gradient-norm bound and recover a bad start."""
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import methods
from tests.nets import bn_net, recovers_from_bad_init


def _least_squares(params, batch):
    """Per-example loss ½‖x_i W − y_i‖² of a linear map."""
    x, y = batch
    return 0.5 * tf.reduce_sum(tf.square(tf.matmul(x, params[0]) - y), axis=1)


def _reference(w, x, y, eta, ord):
    """Gradient norm and look-ahead loss of the linear least squares, in float64 NumPy."""
    g = x.T @ (x @ w - y) / len(x)
    gnorm = np.abs(g).sum() if ord == 1 else np.sqrt((g ** 2).sum())
    direction = np.sign(g) if ord == 1 else g / np.sqrt((g ** 2).sum())
    stepped = w - eta * direction
    look = 0.5 * ((x @ stepped - y) ** 2).sum(axis=1).mean() / eta
    return gnorm, look


@pytest.mark.parametrize("step", ["sgd", "adam"])
def test_constrained_base_picks_the_gradient_norm_above_gamma(step):
    rng = np.random.default_rng(0)
    w, x, y = rng.normal(size=(3, 2)), rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    gnorm, look = _reference(w, x, y, eta=0.1, ord=1 if step == "adam" else 2)
    batch = (tf.constant(x), tf.constant(y))
    for gamma, want, constraint in ((gnorm / 2, gnorm, True), (gnorm * 2, look, False)):
        method = methods.GradInit(gamma=float(gamma), eta=0.1, step=step, overlap=1.0)
        value, picked, metrics = method.objective(_least_squares, [tf.constant(w)], (batch, batch))
        assert bool(picked) is constraint
        np.testing.assert_allclose(float(value), want, rtol=1e-10)
        np.testing.assert_allclose(float(metrics["gnorm"]), gnorm, rtol=1e-10)
        np.testing.assert_allclose(float(metrics["lookahead"]), look, rtol=1e-10)


@pytest.mark.numerics
def test_gradinit_lowers_lookahead_keeps_bn_stats_and_floor(fmnist):
    model = bn_net()
    stats = [v.numpy().copy() for v in model.non_trainable_variables]
    report = km.meta_initialize(model, fmnist[:2], method="gradinit", steps=40, gamma=10.0,
                                batch_size=64, seed=0, verbose=0)
    assert report.traces == 1 and report.steps_run == 40
    assert report.after["lookahead"] < report.before["lookahead"]
    for s, v in zip(stats, model.non_trainable_variables):
        np.testing.assert_array_equal(s, v.numpy())
    assert min(report.scales.values()) >= np.float32(0.01)
    # every nonzero tensor is tuned, BatchNorm's gamma included; zero biases are skipped
    tuned = {t["name"] for t in report.tensors if t["tuned"]}
    assert any("gamma" in n for n in tuned) and not any("beta" in n for n in tuned)


def test_gradinit_constraint_steps_reduce_the_gradient_norm(fmnist):
    model = bn_net(seed=1)
    report = km.meta_initialize(model, fmnist[:2], method=km.methods.GradInit(
        steps=30, gamma=0.5, lr=0.05, batch_size=64), seed=0, verbose=0)
    assert report.constraint_steps > 0
    assert report.after["gnorm"] < report.before["gnorm"]


@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.parametrize("bad_scale", [0.1, 3.0])
def test_recovers_from_bad_init(bad_scale, fmnist, capsys):
    recovers_from_bad_init("gradinit", dict(steps=150, lr=0.1), bad_scale, fmnist, capsys)
