"""Everything round-trips: get_config / from_config, keras.*.serialize / deserialize, and a whole
model through ``model.save`` / ``keras.models.load_model`` with no ``custom_objects`` (importing
``keras_metainit`` registers the package's classes)."""
import keras
import numpy as np
import pytest

import keras_metainit as km  # the only import: it must register initializers, layers, schedules

INITIALIZERS = [
    lambda seed: km.WNInit(gamma=0.7, direction="normal", seed=seed),
    lambda seed: km.WNResNetInit("branch_out", blocks_per_stage=3, seed=seed),
    lambda seed: km.FixupInit(num_branches=6, branch_depth=3, seed=seed),
]


@pytest.mark.parametrize("factory", INITIALIZERS)
@pytest.mark.parametrize("seed", [None, 11])
def test_initializer_config_round_trip(factory, seed):
    init = factory(seed)
    config = init.get_config()
    assert config["seed"] == seed
    clone = type(init).from_config(config)
    assert clone.get_config() == config
    restored = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert type(restored) is type(init) and restored.get_config() == config
    via_get = keras.initializers.get(keras.initializers.serialize(init))
    assert type(via_get) is type(init) and via_get.get_config() == config
    if seed is not None:
        np.testing.assert_array_equal(clone((6, 4)), init((6, 4)))
        np.testing.assert_array_equal(restored((6, 4)), init((6, 4)))


@pytest.mark.parametrize("factory", INITIALIZERS)
def test_initializer_with_seed_generator_round_trip(factory):
    init = factory(keras.random.SeedGenerator(5))
    config = init.get_config()
    assert config["seed"]["class_name"] == "SeedGenerator"  # serialized like Keras does
    assert config["seed"]["config"]["seed"] == 5
    restored = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(restored.seed, keras.random.SeedGenerator)
    # A restored generator restarts from the initial seed: same first draws as a fresh original.
    fresh = factory(keras.random.SeedGenerator(5))
    np.testing.assert_array_equal(restored((6, 4)), fresh((6, 4)))
    np.testing.assert_array_equal(restored((6, 4)), fresh((6, 4)))


@pytest.mark.parametrize(
    "layer",
    [
        lambda: km.layers.WNDense(5, activation="relu", kernel_initializer=km.WNInit(seed=1),
                                  epsilon=1e-9, name="d"),
        lambda: km.layers.WNConv2D(3, (3, 2), strides=2, padding="same", dilation_rate=1,
                                   use_bias=False, data_format="channels_first"),
        lambda: km.layers.WNConv2D(3, 3, dilation_rate=2, bias_initializer="ones",
                                   kernel_initializer=km.WNResNetInit("stem", seed=2)),
        lambda: km.layers.FixupScale(2.0),
        lambda: km.layers.FixupBias(-1.0),
    ],
)
def test_layer_config_round_trip(layer):
    layer = layer()
    config = layer.get_config()
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config
    # Every constructor argument survives (not only whatever get_config happens to write).
    for attribute in ("units", "filters", "kernel_size", "strides", "padding", "dilation_rate",
                      "data_format", "use_bias", "epsilon", "initial_value", "activation", "name"):
        if hasattr(layer, attribute):
            assert getattr(restored, attribute) == getattr(layer, attribute), attribute
    for attribute in ("kernel_initializer", "bias_initializer"):
        if hasattr(layer, attribute):
            assert type(getattr(restored, attribute)) is type(getattr(layer, attribute))
            original = getattr(layer, attribute)
            assert getattr(restored, attribute).get_config() == original.get_config()


def build_model():
    inputs = keras.Input((6, 6, 2))
    h = km.layers.WNConv2D(4, 3, padding="same", activation="relu",
                           kernel_initializer=km.WNResNetInit("stem", seed=1))(inputs)
    h = km.layers.FixupBias()(h)
    h = keras.layers.Conv2D(4, 3, padding="same", use_bias=False,
                            kernel_initializer=km.FixupInit(4, seed=2))(h)
    h = km.layers.FixupScale()(h)
    h = keras.layers.Flatten()(h)
    h = km.layers.WNDense(8, activation="relu")(h)
    h = keras.layers.Dense(6, kernel_initializer=km.WNInit(gamma=1.0, seed=3))(h)
    outputs = keras.layers.Dense(3, kernel_initializer=km.WNResNetInit("shortcut", seed=4))(h)
    model = keras.Model(inputs, outputs)
    schedule = km.QuadraticWarmup(
        0.05, 10, after=keras.optimizers.schedules.ExponentialDecay(0.05, 5, 0.9)
    )
    model.compile(keras.optimizers.SGD(schedule, momentum=0.9), "mse")
    model.optimizer.build(model.trainable_variables)  # so its variables are saved too
    return model


def test_model_save_and_load_without_custom_objects(tmp_path):
    model = build_model()
    rng = np.random.default_rng(0)
    for variable in model.weights:  # move every weight off its initial value
        variable.assign(variable + rng.normal(0, 0.1, variable.shape).astype("float32"))
    x = rng.standard_normal((4, 6, 6, 2)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for original, restored in zip(model.layers, loaded.layers):
        assert restored.get_config() == original.get_config()
    # The schedule comes back inside the optimizer.
    assert loaded.optimizer.get_config()["learning_rate"] == model.optimizer.get_config()[
        "learning_rate"]
    for step in [3, 17]:
        model.optimizer.iterations.assign(step)
        loaded.optimizer.iterations.assign(step)
        assert float(loaded.optimizer.learning_rate) == pytest.approx(
            float(model.optimizer.learning_rate), rel=1e-6)
