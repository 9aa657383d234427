"""data.py: every input form and structure to the same ``(x, y)`` batches, random data for every
input spec, no hidden rescaling, the per-output weighted loss, labels checked against the outputs."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import data as data_lib
from keras_metainit import losses as losses_lib
from keras_metainit.data import DataError
from keras_metainit.model_fn import make_loss_fn

N, CLASSES, VOCAB, SEQ = 32, 10, 20, 5


def two_in_two_out(seed=0):
    """Image + integer tokens (through an Embedding) in; class logits + a regression value out."""
    keras.utils.set_random_seed(seed)
    img = keras.Input((6, 6, 2), name="image")
    tok = keras.Input((SEQ,), dtype="int32", name="tokens")
    h1 = keras.layers.Flatten()(keras.layers.Conv2D(3, 3, activation="relu")(img))
    h2 = keras.layers.Flatten()(keras.layers.Embedding(VOCAB, 3)(tok))
    h = keras.layers.Dense(12, activation="relu")(keras.layers.Concatenate()([h1, h2]))
    cls = keras.layers.Dense(CLASSES, name="cls")(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    return keras.Model([img, tok], [cls, reg])


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(N, 6, 6, 2)).astype("float32"), rng.integers(0, VOCAB, (N, SEQ)),
            rng.integers(0, CLASSES, N), rng.normal(size=(N, 1)).astype("float32"))


def forms():
    """The same examples as ``model.fit`` accepts them, NumPy and tf.data."""
    xi, xt, yc, yr = arrays()
    sw = np.ones(N, "float32")
    return {
        "numpy tuple": ((xi, xt), (yc, yr)),
        "numpy list": ([xi, xt], [yc, yr]),
        "numpy dict": ({"image": xi, "tokens": xt}, {"cls": yc, "reg": yr}),
        "numpy with sample weights": ([xi, xt], [yc, yr], sw),
        "tf.data tuple": tf.data.Dataset.from_tensor_slices(((xi, xt), (yc, yr))).batch(N),
        "tf.data dict": tf.data.Dataset.from_tensor_slices(
            ({"image": xi, "tokens": xt}, {"cls": yc, "reg": yr})).batch(N),
        "tf.data unbatched, sample weights": tf.data.Dataset.from_tensor_slices(
            ((xi, xt), (yc, yr), sw)),
    }


def canonical(x, y):
    """A batch as sorted rows of (image, tokens, class, target): order-free, structure-free."""
    if isinstance(x, dict):
        x = (x["image"], x["tokens"])
    if isinstance(y, dict):
        y = (y["cls"], y["reg"])
    cols = [np.asarray(t, np.float64).reshape(N, -1) for t in (*x, *y)]
    rows = np.concatenate(cols, axis=1)
    return rows[np.lexsort(rows.T[::-1])]


# ----------------------------------------------------------------------------- structures
def test_every_structure_gives_the_same_batches():
    model = two_in_two_out()
    expected = None
    for name, data in forms().items():
        ds, desc, spec = data_lib.make_dataset(data, model, batch_size=N, seed=0)
        element = next(iter(ds))
        assert len(element) == (3 if "sample weights" in name else 2), name
        got = canonical(*element[:2])
        if expected is None:
            expected = got
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert [o.label_kind for o in spec.outputs] == ["sparse", "regression"], name
        assert ("sample weights" in desc) == ("sample weights" in name), desc


def test_sample_weights_weigh_each_examples_loss_as_keras_does():
    """The per-example loss times its weight, averaged over the batch, is Keras's weighted loss
    (``sum_over_batch_size``); NumPy and tf.data weights give the same scales, and weights that
    are not all equal change them."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 5)).astype("float32")
    y = rng.integers(0, 3, N)
    w = rng.uniform(0, 2, N).astype("float32")
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss_fn = make_loss_fn(model, losses_lib.resolve_loss(model, ce), training=False)
    params = [v.value for v in model.trainable_variables]
    ours = float(np.mean(np.asarray(loss_fn(params, (x, y, w)))))
    keras_value = float(ce(y, model(x), sample_weight=w))
    assert ours == pytest.approx(keras_value, rel=1e-5)

    def run(data):
        m = keras.models.clone_model(model)
        m.set_weights(model.get_weights())
        report = km.meta_initialize(m, data, method="metainit", loss=ce, steps=3, batch_size=N,
                                    seed=0, verbose=0)
        assert "sample weights" in report.data
        return np.array(list(report.scales.values())), report.before["gq"]

    (a, gq_a), (b, gq_b) = run((x, y, w)), run(tf.data.Dataset.from_tensor_slices((x, y, w)).batch(N))
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert gq_a == pytest.approx(gq_b, rel=1e-5)
    _, gq_ones = run((x, y, np.ones(N, "float32")))  # the weights reach the objective
    assert abs(gq_a - gq_ones) > 1e-3 * abs(gq_ones)
    report = km.meta_initialize(keras.models.clone_model(model), (x, y, w), "lsuv", verbose=0)
    assert "sample weights: not used by a layer-wise method" in report.notes


@pytest.mark.parametrize("weights,match", [
    (lambda n: [np.ones(n), np.ones(n)], "one weight per example"),
    (lambda n: np.ones(n - 1), "one weight per example"),
    (lambda n: -np.ones(n), "non-negative"),
])
def test_bad_sample_weights_are_refused(weights, match):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    x, y = np.zeros((N, 5), "float32"), np.zeros(N, "int64")
    with pytest.raises(DataError, match=match):
        data_lib.make_dataset((x, y, weights(N)), model, batch_size=N)


@pytest.mark.parametrize("shape", [(N, 2), (N, 1, 1)])
def test_per_output_weights_in_a_dataset_are_refused_before_any_step(shape):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    x, y = np.zeros((N, 5), "float32"), np.zeros(N, "int64")
    data = tf.data.Dataset.from_tensor_slices((x, y, np.ones(shape, "float32"))).batch(4)
    with pytest.raises(DataError, match="one weight per example"):
        data_lib.make_dataset(data, model, batch_size=N)
    ok = tf.data.Dataset.from_tensor_slices((x, y, np.ones((N, 1), "float32"))).batch(4)
    data_lib.make_dataset(ok, model, batch_size=N)  # (N, 1), as fit takes it


def test_every_structure_gives_the_same_scales():
    """Every step sees the whole set (batch = N), so MetaInit's scales depend on the examples
    only, not on the form or the order they come in."""
    scales = {}
    for name, data in forms().items():
        model = two_in_two_out()
        report = km.meta_initialize(model, data, method="metainit", steps=3, batch_size=N, seed=0,
                                    verbose=0)
        assert report.steps_run == 3
        scales[name] = np.array(list(report.scales.values()))
    first = next(iter(scales.values()))
    assert np.any(np.abs(first - 1) > 1e-3)
    for name, s in scales.items():
        np.testing.assert_allclose(s, first, rtol=1e-5, err_msg=name)


def test_x_only_tuple_of_a_multi_input_model_draws_labels():
    xi, xt, _, _ = arrays()
    model = two_in_two_out()
    ds, desc, spec = data_lib.make_dataset((xi, xt), model, batch_size=8)
    x, (y_cls, y_reg) = next(iter(ds))
    assert spec.random_labels and "random" in desc
    assert x[0].shape == (8, 6, 6, 2) and x[1].shape == (8, SEQ)
    assert y_cls.shape == (8,) and y_reg.shape == (8, 1)
    assert 0 <= int(np.min(y_cls)) and int(np.max(y_cls)) < CLASSES


# ----------------------------------------------------------------------------- dtypes
def test_uint8_reaches_the_model_unscaled():
    """A model with its own Rescaling sees the raw uint8 values, as in ``model.fit``."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N, 4, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 3, N)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    for data in ((x, y), tf.data.Dataset.from_tensor_slices((x, y)).batch(N)):
        ds, _, spec = data_lib.make_dataset(data, model, batch_size=N)
        xb, yb = next(iter(ds))
        assert xb.dtype == np.uint8
        np.testing.assert_array_equal(np.sort(xb.ravel()), np.sort(x.ravel()))
        loss_fn = make_loss_fn(model, spec)
        per = loss_fn(model.trainable_variables, (xb, yb)).numpy()
        ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
            yb, model(tf.cast(xb, tf.float32)))
        np.testing.assert_allclose(per, ref, rtol=1e-5)


def test_random_data_for_image_and_token_inputs():
    model = two_in_two_out()
    ds, desc, spec = data_lib.make_dataset(None, model, batch_size=64, seed=3)
    (img, tok), (y_cls, y_reg) = next(iter(ds))
    assert img.shape == (64, 6, 6, 2) and img.dtype == np.float32
    assert tok.shape == (64, SEQ) and tok.dtype == np.int32
    assert int(np.min(tok)) == 0 and int(np.max(tok)) == VOCAB - 1
    assert abs(float(np.std(img)) - 1) < 0.1
    assert y_cls.shape == (64,) and int(np.max(y_cls)) < CLASSES
    assert y_reg.shape == (64, 1) and spec.random_labels and "tokens" in desc
    # and the whole run works on it (the Embedding gather never sees an index out of range)
    report = km.meta_initialize(model, None, steps=2, batch_size=16, seed=0, verbose=0, method="metainit")
    assert report.steps_run == 2 and np.isfinite(report.after["gq"])


def test_float_input_feeding_an_embedding_gets_integer_tokens():
    model = keras.Sequential([keras.Input((7,)), keras.layers.Embedding(11, 4),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    x, _ = next(iter(data_lib.make_dataset(None, model, batch_size=256)[0]))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, np.round(x))
    assert x.min() == 0 and x.max() == 10


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("structure", ["list", "dict"])
def test_multi_output_loss_is_the_weighted_sum_of_kerass_losses(structure):
    model = two_in_two_out()
    losses = [keras.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"]
    weights = [0.7, 3.0]
    if structure == "dict":
        model.compile("sgd", dict(zip(["cls", "reg"], losses)),
                      loss_weights=dict(zip(["cls", "reg"], weights)))
    else:
        model.compile("sgd", losses, loss_weights=weights)
    xi, xt, yc, yr = arrays()
    spec = losses_lib.resolve_loss(model, x=[xi, xt], y=[yc, yr])
    assert spec.origin == "compiled" and [o.weight for o in spec.outputs] == weights
    per = make_loss_fn(model, spec)(model.trainable_variables, ((xi, xt), (yc, yr))).numpy()
    assert per.shape == (N,)
    p_cls, p_reg = model((xi, xt))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(yc, p_cls)
    mse = keras.losses.MeanSquaredError(reduction=None)(yr, p_reg)
    np.testing.assert_allclose(per, 0.7 * np.asarray(ce) + 3.0 * np.asarray(mse), rtol=1e-5)
    # its batch mean is what model.fit minimizes
    keras_total = model.compute_loss(x=(xi, xt), y=(yc, yr), y_pred=(p_cls, p_reg))
    np.testing.assert_allclose(per.mean(), float(keras_total), rtol=1e-5)


def test_uncompiled_multi_output_losses_are_inferred_per_output():
    spec = losses_lib.resolve_loss(two_in_two_out())
    assert spec.origin == "inferred"
    assert [(o.name, o.label_kind, o.units) for o in spec.outputs] == [
        ("cls", "sparse", CLASSES), ("reg", "regression", 1)]


# ----------------------------------------------------------------------------- label checks
@pytest.mark.parametrize("form", ["numpy", "tf.data"])
def test_labels_out_of_range_are_refused_before_any_step(form):
    model = two_in_two_out()
    model.compile("sgd", ["sparse_categorical_crossentropy", "mse"])
    before = [v.numpy().copy() for v in model.weights]
    xi, xt, yc, yr = arrays()
    yc = yc.copy()
    yc[5] = 12
    data = ((xi, xt), (yc, yr))
    if form == "tf.data":
        data = tf.data.Dataset.from_tensor_slices(data).batch(N)
    with pytest.raises(ValueError, match=r"\[0, 9\].*width 10.*\[0, 12\]"):
        km.meta_initialize(model, data, steps=2, batch_size=N, verbose=0, method="metainit")
    for v, b in zip(model.weights, before):
        np.testing.assert_array_equal(v.numpy(), b)


def test_onehot_labels_of_the_wrong_width_are_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    x = np.zeros((8, 4), "float32")
    y = np.eye(5, dtype="float32")[np.arange(8) % 5]
    with pytest.raises(ValueError, match="width 3.*width 5"):
        data_lib.make_dataset((x, y), model, batch_size=8)
