"""The bundled Fashion-MNIST subset and the full-set reader (Debian's dataset-fashion-mnist)."""
import gzip
import os
import struct

import numpy as np
import pytest

from keras_metainit.datasets import DEBIAN_FASHION_MNIST_DIR, load_fashion_mnist


def test_bundled_subset_is_class_balanced():
    for split, per_class in (("train", 600), ("test", 200)):
        x, y = load_fashion_mnist(split)
        assert x.shape == (10 * per_class, 28, 28, 1) and x.dtype == np.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert np.bincount(y).tolist() == [per_class] * 10


def _write_idx(folder, prefix, images, labels):
    with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes())
    with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


def test_full_set_reader_parses_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    _write_idx(tmp_path, "t10k", images, labels)
    x, y = load_fashion_mnist("test", "full", data_dir=str(tmp_path), normalize=False,
                              flatten=True)
    np.testing.assert_array_equal(x, images.reshape(5, 784))
    np.testing.assert_array_equal(y, labels)
    x, _ = load_fashion_mnist("test", "full", data_dir=str(tmp_path))
    np.testing.assert_allclose(x[..., 0], images / 255.0, rtol=1e-6)


def test_full_set_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", "full", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist("train", "medium")


@pytest.mark.skipif(not os.path.exists(os.path.join(DEBIAN_FASHION_MNIST_DIR,
                                                    "t10k-labels-idx1-ubyte.gz")),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_full_set_holds_the_bundled_test_images():
    x, y = load_fashion_mnist("test", "full", normalize=False, flatten=True)
    assert x.shape == (10_000, 784) and np.bincount(y).tolist() == [1000] * 10
    small, small_y = load_fashion_mnist("test", normalize=False, flatten=True)
    rows = {row.tobytes(): label for row, label in zip(x, y)}
    assert all(rows.get(row.tobytes()) == label for row, label in zip(small[:50], small_y[:50]))
