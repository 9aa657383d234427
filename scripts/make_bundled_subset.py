"""Regenerate keras_metainit/data/fashion_mnist_small.npz from the full Fashion-MNIST.

The full set comes from Debian's package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/*.gz``, MIT licence, Zalando Research).
The subset is class balanced: 600 training and 200 test images per class,
drawn with a fixed seed so the file is reproducible.

Usage: python scripts/make_bundled_subset.py
"""
import gzip
import os

import numpy as np

ROOT = "/usr/share/datasets/fashion-mnist/"
OUT = os.path.join(os.path.dirname(__file__), "..", "keras_metainit", "data", "fashion_mnist_small.npz")


def _read(name, offset):
    with gzip.open(os.path.join(ROOT, name)) as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def main():
    rng = np.random.default_rng(20191208)
    out = {}
    for split, per_class, prefix in [("train", 600, "train"), ("test", 200, "t10k")]:
        x = _read(f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        y = _read(f"{prefix}-labels-idx1-ubyte.gz", 8)
        idx = np.concatenate(
            [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
        )
        idx = rng.permutation(idx)
        out[f"x_{split}"], out[f"y_{split}"] = x[idx], y[idx]
        print(split, out[f"x_{split}"].shape, np.bincount(out[f"y_{split}"]))
    np.savez_compressed(OUT, **out)


if __name__ == "__main__":
    main()
