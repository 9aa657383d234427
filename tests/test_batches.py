"""The one stream of batches (backend-neutral: CI runs this file under TensorFlow, JAX without
TensorFlow, and torch): every form without TensorFlow — arrays, a generator, a re-iterable
object, a ``keras.utils.PyDataset``, single examples — gives the same examples in batches of one
size, pass after pass; a one-shot generator's batches are given again; random data is drawn
with NumPy."""
import keras
import numpy as np
import pytest

import keras_metainit as km
from keras_metainit import batches as batches_lib
from keras_metainit import data as data_lib

pytestmark = pytest.mark.backend_neutral

N, D, C = 48, 5, 3
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, D)).astype("float32")
Y = RNG.integers(0, C, N)
W = RNG.uniform(0.5, 2.0, N).astype("float32")


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(8, "tanh"),
                             keras.layers.Dense(C)])


def _rows(x, y):
    """The examples of a batch as a set of rows (order-free comparison)."""
    return {tuple(np.round(np.append(a, b), 5)) for a, b in zip(np.asarray(x), np.asarray(y))}


class _Batches(keras.utils.PyDataset):
    def __init__(self, size, weights=False):
        super().__init__()
        self.size, self.weights, self.epochs_ended = size, weights, 0

    def __len__(self):
        return N // self.size

    def __getitem__(self, i):
        s = slice(i * self.size, (i + 1) * self.size)
        return (X[s], Y[s], W[s]) if self.weights else (X[s], Y[s])

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_rebatch_gives_equal_batches_in_order_and_drops_the_rest():
    parts = [np.arange(n) for n in (5, 3, 9, 2, 4)]  # 23 examples
    out = list(batches_lib.rebatch(iter(parts), 6))
    assert [len(b) for b in out] == [6, 6, 6]
    np.testing.assert_array_equal(np.concatenate(out), np.concatenate(parts)[:18])


def test_a_one_shot_generator_is_given_again_pass_after_pass():
    def gen():
        for i in range(0, N, 16):
            yield X[i:i + 16], Y[i:i + 16]

    data, desc, _ = data_lib.make_dataset(gen(), _model(), batch_size=16)
    it = iter(data)
    seen = [next(it) for _ in range(3 * (N // 16))]  # three passes over three batches
    for k in range(N // 16):
        for later in (seen[k + 3], seen[k + 6]):
            np.testing.assert_array_equal(later[0], seen[k][0])
    assert _rows(*zip(*[(x, y) for b in seen[:3] for x, y in zip(*b)])) == _rows(X, Y)
    assert "generator of batches" in desc


@pytest.mark.parametrize("form", ["arrays", "generator", "iterable object", "PyDataset",
                                  "single examples"])
def test_every_form_gives_the_same_examples_in_batches_of_one_size(form):
    forms = {
        "arrays": lambda: (X, Y),
        "generator": lambda: ((X[i:i + 12], Y[i:i + 12]) for i in range(0, N, 12)),
        "iterable object": lambda: map(lambda i: (X[i:i + 8], Y[i:i + 8]), range(0, N, 8)),
        "PyDataset": lambda: _Batches(12),
        "single examples": lambda: iter(list(zip(X, Y))),
    }
    data, desc, spec = data_lib.make_dataset(forms[form](), _model(), batch_size=16, seed=1)
    assert data.size == 16 and spec.label_kind == "sparse"
    it = iter(data)
    first_pass = [next(it) for _ in range(N // 16)]
    assert all(len(b[0]) == 16 and len(b[1]) == 16 for b in first_pass)
    xs = np.concatenate([b[0] for b in first_pass])
    ys = np.concatenate([b[1] for b in first_pass])
    assert _rows(xs, ys) == _rows(X, Y), desc


def test_a_pydatasets_sample_weights_reach_the_loss_and_its_epochs_end():
    source = _Batches(16, weights=True)
    data, desc, _ = data_lib.make_dataset(source, _model())
    assert data.weighted and "sample weights" in desc
    it = iter(data)
    batch = next(it)
    np.testing.assert_array_equal(batch[2], W[:16])
    for _ in range(N // 16):
        next(it)
    assert source.epochs_ended >= 1


def test_metainit_runs_on_a_generator_with_fewer_batches_than_steps():
    def gen():
        for i in range(0, N, 16):
            yield X[i:i + 16], Y[i:i + 16]

    model = _model()
    report = km.meta_initialize(model, gen(), "metainit", steps=8, seed=0, verbose=0)
    assert report.steps_run == 8  # three batches, given again
    assert report.after["gq"] < report.before["gq"]


def test_random_data_is_drawn_with_numpy_from_the_seed():
    """``data=None``: the same draws on every backend (NumPy generators seeded by the seed and
    the batch index), standard normal inputs and labels in range."""
    model = _model()
    a, desc, _ = data_lib.make_dataset(None, model, batch_size=4096, seed=7)
    b, _, _ = data_lib.make_dataset(None, model, batch_size=4096, seed=7)
    c, _, _ = data_lib.make_dataset(None, model, batch_size=4096, seed=8)
    (xa, ya), (xb, yb), (xc, _) = next(iter(a)), next(iter(b)), next(iter(c))
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(xa, xc)
    assert abs(float(xa.std()) - 1.0) < 0.05 and abs(float(xa.mean())) < 0.05
    assert ya.min() >= 0 and ya.max() < C and "random" in desc


def test_an_empty_iterable_is_refused():
    with pytest.raises(data_lib.DataError, match="empty"):
        data_lib.make_dataset(iter([]), _model())
