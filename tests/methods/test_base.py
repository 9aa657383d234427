"""methods/base.py and the registry in methods/__init__.py: register, get, serialize,
deserialize, available, every method's argument checks, the constrained base."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
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


@pytest.mark.backend_neutral
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


@pytest.mark.backend_neutral
def test_available_lists_one_name_per_class_in_definition_order():
    assert methods.available() == ["metainit", "gradinit", "gradcosine", "lsuv", "sylvester",
                                   "t_fixup", "deepnorm"]
    assert methods.available(methods.LearnedMethod) == ["metainit", "gradinit", "gradcosine"]
    assert methods.available(methods.ConstrainedMethod) == ["gradinit", "gradcosine"]
    # every alias resolves to its class
    for alias, cls in methods._REGISTRY.items():
        assert isinstance(methods.get(alias), cls)


@pytest.mark.backend_neutral
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


@pytest.mark.backend_neutral
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


@pytest.mark.backend_neutral
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


@pytest.mark.backend_neutral
def test_the_base_imports_none_of_the_methods_it_resolves():
    """``methods/base.py`` (and the walk its ``LayerwiseMethod.run`` imports) load no method
    module: imported with the package ``__init__`` files left out (they import everything), the
    modules that get loaded hold no subclass of ``Method``."""
    root = Path(km.__file__).parent
    code = textwrap.dedent("""
        import importlib, sys, types
        root = sys.argv[1]
        for name, sub in (("keras_metainit", ""), ("keras_metainit.methods", "/methods"),
                          ("keras_metainit.layerwise", "/layerwise")):
            package = types.ModuleType(name)  # an empty package: its __init__ does not run
            package.__path__ = [root + sub]
            sys.modules[name] = package
        importlib.import_module("keras_metainit.methods.base")
        importlib.import_module("keras_metainit.layerwise.walk")
        print(" ".join(sorted(n for n in sys.modules if n.startswith("keras_metainit."))))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(out.stdout.split())
    assert {"keras_metainit.methods.base", "keras_metainit.layerwise.walk"} <= loaded
    subclasses = {"keras_metainit.methods.metainit", "keras_metainit.methods.gradinit",
                  "keras_metainit.methods.gradcosine", "keras_metainit.layerwise.lsuv",
                  "keras_metainit.layerwise.sylvester", "keras_metainit.transformers.t_fixup",
                  "keras_metainit.transformers.deepnorm"}
    assert subclasses == {cls.__module__ for cls in methods.ALL_OBJECTS}  # the list is complete
    assert not loaded & subclasses, sorted(loaded & subclasses)
