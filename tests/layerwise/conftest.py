"""Fixtures of the layer-wise tests."""
import pytest

from keras_metainit.datasets import load_fashion_mnist


@pytest.fixture(scope="module")
def fmnist():
    return load_fashion_mnist("train", flatten=True)
