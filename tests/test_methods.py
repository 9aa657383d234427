"""methods.py: the registry, get/serialize/deserialize, argument checks, the constrained base."""
import numpy as np
import pytest
import tensorflow as tf

from keras_metainit import methods


#: options other than the defaults, so that a lost or mixed-up attribute shows
NON_DEFAULT = {
    "metainit": dict(steps=7, lr=0.2, momentum=0.5, eps=1e-5, min_norm=0.1, batch_size=16,
                     hvp="finite_difference"),
    "gradinit": dict(steps=7, lr=0.2, eta=0.3, gamma=2.0, min_scale=0.1, step="adam",
                     overlap=0.25, normalize=False, batch_size=16),
    "gradcosine": dict(steps=7, lr=0.2, splits=3, overlap=0.1, gamma=2.0, target="gc",
                       gn_weight=0.5, min_scale=0.1, batch_size=16),
    "lsuv": dict(tol=0.2, max_iter=3, orthogonal=False, seed=3),
    "sylvester": dict(latent="labels", lam=0.5, max_samples=64, rescale=False, seed=3),
}


@pytest.mark.parametrize("name", methods.available())
def test_every_registered_method_round_trips(name):
    method = methods.get(name, **NON_DEFAULT.get(name, {}))
    for key, value in NON_DEFAULT.get(name, {}).items():
        assert method.get_config()[key] == value, key
    config = methods.serialize(method)
    assert config["class_name"] == type(method).__name__
    for again in (methods.deserialize(config), methods.get(config)):
        assert type(again) is type(method)
        assert again.get_config() == method.get_config()
    assert method.name == name
    assert methods.get(method) is method


def test_available_lists_one_name_per_class_in_definition_order():
    assert methods.available() == ["metainit", "gradinit", "gradcosine", "lsuv", "sylvester"]
    assert methods.available(methods.LearnedMethod) == ["metainit", "gradinit", "gradcosine"]
    assert methods.available(methods.ConstrainedMethod) == ["gradinit", "gradcosine"]
    # every alias resolves to its class
    for alias, cls in methods._REGISTRY.items():
        assert isinstance(methods.get(alias), cls)


def test_options_override_a_config_and_unknown_names_are_refused():
    method = methods.get({"class_name": "GradInit", "config": {"steps": 7}}, lr=0.5)
    assert (method.steps, method.lr) == (7, 0.5)
    with pytest.raises(ValueError, match="Unknown method 'nope'"):
        methods.get("nope")
    with pytest.raises(ValueError, match="Unknown method class"):
        methods.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match="instance"):
        methods.get(methods.MetaInit(), steps=3)


@pytest.mark.parametrize("cls,kwargs", [
    (methods.MetaInit, {"steps": 0}),
    (methods.MetaInit, {"lr": -0.1}),
    (methods.MetaInit, {"lr": "fast"}),
    (methods.MetaInit, {"momentum": 1.0}),
    (methods.MetaInit, {"eps": 0.0}),
    (methods.MetaInit, {"min_norm": 2.0}),
    (methods.MetaInit, {"hvp": "hessian"}),
    (methods.GradInit, {"steps": 0}),
    (methods.GradInit, {"lr": 0}),
    (methods.GradInit, {"eta": -1.0}),
    (methods.GradInit, {"gamma": 0.0}),
    (methods.GradInit, {"min_scale": -0.01}),
    (methods.GradInit, {"step": "rmsprop"}),
    (methods.GradInit, {"overlap": 1.5}),
    (methods.GradCosine, {"splits": 1}),
    (methods.GradCosine, {"overlap": 1.0}),
    (methods.GradCosine, {"gamma": -10.0}),
    (methods.GradCosine, {"target": "nope"}),
    (methods.GradCosine, {"gn_weight": -1.0}),
    (methods.GradCosine, {"min_scale": -1.0}),
])
def test_bad_arguments_raise_value_error_naming_the_argument(cls, kwargs):
    (name, value), = kwargs.items()
    with pytest.raises(ValueError, match=rf"Argument `{name}` must be .*Received: {name}="):
        cls(**kwargs)


def test_a_subclass_without_its_own_aliases_does_not_take_over_its_parents():
    before = dict(methods._REGISTRY)

    try:
        class Tweaked(methods.MetaInit):
            pass

        with pytest.raises(ValueError, match="sets its own `aliases`"):
            methods.register(Tweaked)
        assert methods._REGISTRY == before
        assert type(methods.get("metainit")) is methods.MetaInit
    finally:
        methods._REGISTRY.clear()
        methods._REGISTRY.update(before)


def test_register_and_unregister_a_method_of_ones_own():
    class Mine(methods.MetaInit):
        aliases = ("mine_for_the_test",)

    assert methods.register(Mine) is Mine
    try:
        assert isinstance(methods.get("mine_for_the_test", steps=3), Mine)
        assert methods.available()[-1] == "mine_for_the_test"
        assert methods.deserialize(methods.serialize(Mine(steps=4))).steps == 4
    finally:
        methods.unregister(Mine)
    with pytest.raises(ValueError, match="Unknown method 'mine_for_the_test'.*register"):
        methods.get("mine_for_the_test")
    assert methods.available() == [cls.aliases[0] for cls in methods.ALL_OBJECTS]


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


@pytest.mark.parametrize("cls", [methods.GradInit, methods.GradCosine])
def test_constrained_is_the_norm_strictly_above_gamma(cls):
    method = cls(gamma=2.0)
    for gnorm, target, want, constraint in ((3.0, -0.5, 3.0, True), (2.0, -0.5, -0.5, False),
                                            (1.0, 4.0, 4.0, False)):
        value, picked = method.constrained(tf.constant(gnorm), tf.constant(target))
        assert (float(value), bool(picked)) == (want, constraint)


def test_constrained_methods_share_the_rescale_adam_update():
    for cls in (methods.GradInit, methods.GradCosine):
        method = cls(lr=0.5, min_scale=0.25)
        assert isinstance(method, methods.ConstrainedMethod) and method.training
        assert method.tunes_description == "trainable tensors"
        t = method.transform()
        s, _ = t.update(tf.constant([1.0]), t.init(tf.ones(1), tf.ones(1)), tf.ones(1),
                        tf.ones(1), tf.constant(False))
        np.testing.assert_allclose(s.numpy(), [0.5], rtol=1e-5)  # Adam's first step is lr
    assert methods.MetaInit.tunes_description == "trainable tensors with ndim >= 2"
