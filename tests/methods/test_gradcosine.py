"""methods/gradcosine.py: GradCosine (NIO) raises the gradient cosine, keeps GN near its bound,
checks its arguments and recovers a bad start."""
import numpy as np
import pytest

import keras_metainit as km
from tests.nets import bn_net, recovers_from_bad_init


@pytest.mark.numerics
def test_gradcosine_raises_gc(fmnist):
    model = bn_net(seed=2)
    stats = [v.numpy().copy() for v in model.non_trainable_variables]
    report = km.meta_initialize(model, fmnist[:2], method="nio", target="gc", steps=40,
                                lr=0.05, batch_size=64, seed=0, verbose=0)
    assert report.traces == 1
    assert report.after["gc"] > report.before["gc"]
    assert min(report.scales.values()) >= np.float32(0.01)
    for s, v in zip(stats, model.non_trainable_variables):
        np.testing.assert_array_equal(s, v.numpy())


def test_gradcosine_keeps_gn_at_most_gamma(fmnist):
    model = bn_net(seed=3)
    report = km.meta_initialize(model, fmnist[:2], method="gradcosine", steps=40, lr=0.05,
                                gamma=3.0, batch_size=64, seed=0, verbose=0)
    assert report.before["gn"] > 3.0, "the test needs a start that violates the constraint"
    assert report.constraint_steps > 0
    # The constrained run drives GN down to the bound and then hovers around it.
    assert np.mean(report.history["gn"][-10:]) <= 3.0 * 1.15
    assert report.after["gn"] < report.before["gn"] / 1.5
    text = str(report)
    assert "gc:" in text and "gn:" in text


def test_grad_cosine_and_method_options_are_validated():
    with pytest.raises(ValueError, match="target"):
        km.methods.GradCosine(target="nope")
    with pytest.raises(ValueError, match="step"):
        km.methods.GradInit(step="rmsprop")
    assert isinstance(km.methods.get("nio"), km.methods.GradCosine)


@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.parametrize("bad_scale", [0.1, 3.0])
def test_recovers_from_bad_init(bad_scale, fmnist, capsys):
    recovers_from_bad_init("gradcosine", dict(steps=100, lr=0.1), bad_scale, fmnist, capsys)
