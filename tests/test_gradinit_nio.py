"""GradInit and NIO (GradCosine) on the shared engine."""
import keras
import numpy as np
import pytest

import keras_metainit as km

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def fmnist(fmnist_flat):
    return fmnist_flat


def bn_net(depth=3, width=48, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))]
    for _ in range(depth):
        layers += [keras.layers.Dense(width), keras.layers.BatchNormalization(),
                   keras.layers.ReLU(), keras.layers.Dropout(0.3)]
    return keras.Sequential(layers + [keras.layers.Dense(10)])


def plain_mlp(depth, width, scale, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(width, "relu", kernel_initializer="he_normal") for _ in range(depth)]
        + [keras.layers.Dense(10)])
    for v in model.trainable_variables:
        if len(v.shape) == 2:
            v.assign(v * scale)
    return model


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
@pytest.mark.parametrize("name,options", [
    ("gradinit", dict(steps=150, lr=0.1)),
    ("gradcosine", dict(steps=100, lr=0.1)),
])
@pytest.mark.parametrize("bad_scale", [0.1, 3.0])
def test_recovers_from_bad_init(name, options, bad_scale, fmnist, capsys):
    x, y, xt, yt = fmnist

    def fit(model):
        model.compile(keras.optimizers.Adam(1e-3), CE, metrics=["accuracy"])
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        return model.evaluate(xt, yt, verbose=0)[1]

    bad = fit(plain_mlp(8, 64, bad_scale, seed=1))
    model = plain_mlp(8, 64, bad_scale, seed=1)
    report = km.meta_initialize(model, (x, y), method=name, seed=0, verbose=0, **options)
    acc = fit(model)
    with capsys.disabled():
        print(f"\n[{name} x{bad_scale}] {report.before} -> {report.after}; constraint steps "
              f"{report.constraint_steps}; acc bad {bad:.3f} -> {acc:.3f}")
    assert acc > 0.5 and acc > bad + 0.2
