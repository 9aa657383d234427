"""Fixtures shared by the test modules."""
import pytest

from keras_metainit.datasets import load_fashion_mnist


@pytest.fixture(scope="session")
def fmnist_flat():
    """The bundled Fashion-MNIST subset as vectors: ``(x, y, x_test, y_test)``."""
    x, y = load_fashion_mnist("train", flatten=True)
    xt, yt = load_fashion_mnist("test", flatten=True)
    return x, y, xt, yt
