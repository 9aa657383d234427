"""experiments.data: the sequence tasks and Fashion-MNIST's subsets."""
import numpy as np
import pytest

from keras_metainit.experiments import data


def test_sequence_tasks():
    x, y = data.sequence_task("reverse", 5, vocab=7, length=9, seed=1)
    assert x.shape == y.shape == (5, 9) and x.dtype == np.int32
    np.testing.assert_array_equal(y, x[:, ::-1])
    assert x.min() >= 0 and x.max() < 7
    xs, ys = data.sequence_task("sort", 5, vocab=7, length=9, seed=1)
    np.testing.assert_array_equal(ys, np.sort(xs, axis=1))
    xc, yc = data.sequence_task("copy", 3, seed=2)
    np.testing.assert_array_equal(xc, yc)
    with pytest.raises(ValueError, match="kind"):
        data.sequence_task("shuffle", 3)


def test_fashion_mnist_subset_is_standardized_and_read_only():
    (x, y), (xt, yt), which = data.fashion_mnist("small", train_size=512, test_size=128)
    assert which == "small" and x.shape == (512, 28, 28, 1) and xt.shape == (128, 28, 28, 1)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-3
    assert not x.flags.writeable
    (xf, _), _, _ = data.fashion_mnist("small", flatten=True, train_size=16, test_size=8)
    assert xf.shape == (16, 784)
