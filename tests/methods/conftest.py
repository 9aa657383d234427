"""Fixtures of the method tests."""
import pytest


@pytest.fixture(scope="module")
def fmnist(fmnist_flat):
    """The bundled Fashion-MNIST subset as vectors: ``(x, y, x_test, y_test)``."""
    return fmnist_flat
