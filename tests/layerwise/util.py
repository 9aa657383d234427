"""Helpers shared by the layer-wise tests: a data stream, running a method directly, and
checking that a model was left as it was."""
import keras
import numpy as np
import tensorflow as tf

from keras_metainit.losses import LossSpec
from keras_metainit.methods import LSUV, Sylvester

SPARSE = LossSpec(keras.losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", "argument")


def stream(x, y=None, batch=None):
    """An endless stream of ``x`` (with labels ``y``, zeros by default) in batches of ``batch``
    (all of ``x`` by default), in order."""
    y = np.zeros(len(x), np.int64) if y is None else y
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y))
    return ds.batch(batch or len(x)).repeat()


def run_lsuv(model, data, **options):
    return LSUV(**options).run(model, data, None, seed=0)


def run_sylvester(model, data, spec=None, **options):
    return Sylvester(**options).run(model, data, spec, seed=0)


def weights(model):
    return [v.numpy().copy() for v in model.weights]


def assert_unchanged(model, before):
    for b, v in zip(before, model.weights):
        np.testing.assert_array_equal(b, v.numpy(), err_msg=v.path)


def mlp(widths=(16, 8), inputs=12, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((inputs,))
    h = inp
    for i, w in enumerate(widths):
        h = keras.layers.Dense(w, "relu", name=f"h{i}")(h)
    return keras.Model(inp, keras.layers.Dense(3, name="out")(h))


def images(n=32, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, size, size, channels)).astype(np.float32)
