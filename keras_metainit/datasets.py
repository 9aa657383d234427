"""Real data for examples, tests and benchmarks: Fashion-MNIST.

The package ships a small class-balanced subset (600 training and 200 test images per class,
3.5 MB) so that everything runs offline on a fresh install. The full set is read from Debian's
package ``dataset-fashion-mnist`` when it is installed.
"""
from __future__ import annotations

import gzip
import os
from typing import Tuple

import numpy as np

__all__ = ["load_fashion_mnist", "FASHION_MNIST_CLASSES", "DEBIAN_FASHION_MNIST_DIR"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
#: Where Debian's ``dataset-fashion-mnist`` package puts the full set.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_SMALL = os.path.join(os.path.dirname(__file__), "data", "fashion_mnist_small.npz")
_FULL_FILES = {"train": "train", "test": "t10k"}


def _read_idx(path: str, offset: int) -> np.ndarray:
    with gzip.open(path) as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def load_fashion_mnist(
    split: str = "train",
    subset: str = "small",
    *,
    normalize: bool = True,
    flatten: bool = False,
    data_dir: str = DEBIAN_FASHION_MNIST_DIR,
) -> Tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST as NumPy arrays.

    Args:
        split: ``"train"`` or ``"test"``.
        subset: ``"small"``, the subset bundled with the package (6,000 training and 2,000 test
            images, class balanced), or ``"full"`` (60,000 / 10,000), read from ``data_dir``.
        normalize: scale pixels to float32 in [0, 1]; otherwise return uint8.
        flatten: return images as vectors of 784 instead of ``(28, 28, 1)``.
        data_dir: where the full set's ``*-idx?-ubyte.gz`` files are.

    Returns:
        ``(x, y)``: images ``(n, 28, 28, 1)`` (or ``(n, 784)``) and integer labels ``(n,)``.

    Raises:
        ValueError: for an unknown ``split`` or ``subset``.
        FileNotFoundError: ``subset="full"`` without the files, with how to get them.

    Examples:
        >>> from keras_metainit.datasets import load_fashion_mnist
        >>> x, y = load_fashion_mnist("train")
        >>> x.shape, y.shape
        ((6000, 28, 28, 1), (6000,))

    Reference:
        Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
        Learning Algorithms", 2017 (MIT licence).
    """
    if split not in _FULL_FILES:
        raise ValueError(f"Argument `split` must be 'train' or 'test'. Received: split={split!r}")
    if subset == "small":
        with np.load(_SMALL) as f:
            x, y = f[f"x_{split}"], f[f"y_{split}"]
    elif subset == "full":
        prefix = os.path.join(data_dir, _FULL_FILES[split])
        images, labels = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
        if not (os.path.exists(images) and os.path.exists(labels)):
            raise FileNotFoundError(
                f"The full Fashion-MNIST set was not found in {data_dir!r}. Install it with "
                "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass `data_dir=` "
                "pointing at a folder with the four *-idx?-ubyte.gz files, or use subset='small'."
            )
        x = _read_idx(images, 16).reshape(-1, 28, 28)
        y = _read_idx(labels, 8)
    else:
        raise ValueError(
            f"Argument `subset` must be 'small' or 'full'. Received: subset={subset!r}"
        )
    y = y.astype(np.int64)
    if normalize:
        x = x.astype(np.float32) / 255.0
    x = x.reshape(len(x), -1) if flatten else x[..., None]
    return x, y
