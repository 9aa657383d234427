"""keras_metainit.callbacks.MetaInitialize: initialization at the start of fit, on the backend in use
(backend-neutral: CI runs this file under TensorFlow, JAX and torch)."""
import keras
import numpy as np
import pytest

import keras_metainit as km
from keras_metainit.callbacks import MetaInitialize

pytestmark = pytest.mark.backend_neutral


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, "relu"),
                              keras.layers.Dense(16, "relu"), keras.layers.Dense(4)])
    for v in model.trainable_variables:  # a start too large: MetaInit shrinks it
        v.assign(3.0 * v.value)
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(128, 10)).astype("float32"), rng.integers(0, 4, 128)


def _compile(model, lr=0.05):
    model.compile(keras.optimizers.SGD(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))


OPTIONS = dict(method="metainit", steps=4, seed=1, batch_size=32, verbose=0, lr=0.05)


def test_fit_with_the_callback_equals_meta_initialize_then_fit():
    x, y = _data()
    manual = _model()
    _compile(manual)
    km.meta_initialize(manual, (x, y), **OPTIONS)
    initialized = [w.copy() for w in manual.get_weights()]
    manual.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)

    model = _model()
    _compile(model)
    init = MetaInitialize((x, y), **OPTIONS)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[init])
    assert init.report is not None and init.report.steps_run == 4
    assert not init.report.kept_start  # the run moved the scales: the check below has teeth
    assert any(not np.allclose(a, b) for a, b in zip(initialized, _model().get_weights()))
    for a, b in zip(model.get_weights(), manual.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_the_trainer_trains_the_assigned_weights():
    """With a zero learning rate, fit leaves exactly the weights the callback wrote: the
    trainer's own state (JAX keeps copies) was taken after ``on_train_begin``."""
    x, y = _data()
    model = _model()
    _compile(model, lr=0.0)
    start = [w.copy() for w in model.get_weights()]
    init = MetaInitialize((x, y), **OPTIONS)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[init])
    scales = {t["name"]: t["scale"] for t in init.report.tensors}
    for v, w0 in zip(model.trainable_variables, start):
        np.testing.assert_allclose(np.asarray(v.numpy()), scales[v.path] * w0, rtol=1e-6)


def test_a_second_fit_does_not_initialize_again_unless_every_fit():
    x, y = _data()
    model = _model()
    _compile(model, lr=0.0)
    once = MetaInitialize((x, y), **OPTIONS)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[once])
    first_report, after_first = once.report, [w.copy() for w in model.get_weights()]
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[once])
    assert once.runs == 1 and once.report is first_report
    for a, b in zip(model.get_weights(), after_first):
        np.testing.assert_array_equal(a, b)

    again = MetaInitialize((x, y), every_fit=True, **OPTIONS)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[again])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[again])
    assert again.runs == 2


def test_every_fit_must_be_a_bool():
    with pytest.raises(ValueError, match="every_fit"):
        MetaInitialize(None, every_fit="yes")
