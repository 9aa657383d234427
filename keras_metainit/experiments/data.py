"""The experiments' data: Fashion-MNIST (full set when installed, else the bundled subset) and
synthetic sequence tasks (reverse, sort, copy) for the Transformers."""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import numpy as np

from keras_metainit.datasets import load_fashion_mnist
from keras_metainit.validation import check, positive_int

__all__ = ["fashion_mnist", "sequence_task", "SEQUENCE_TASKS"]

Arrays = Tuple[np.ndarray, np.ndarray]


@functools.lru_cache(maxsize=4)
def fashion_mnist(subset: str = "auto", *, flatten: bool = False, standardize: bool = True,
                  train_size: Optional[int] = None, test_size: Optional[int] = None,
                  seed: int = 0) -> Tuple[Arrays, Arrays, str]:
    """Fashion-MNIST train and test arrays for an experiment.

    Args:
        subset: ``"full"`` (Debian's ``dataset-fashion-mnist``: 60,000 / 10,000; install it with
            ``apt-get install dataset-fashion-mnist``), ``"small"`` (the bundled 6,000 / 2,000)
            or ``"auto"`` (full when installed, else small).
        flatten: images as vectors of 784.
        standardize: subtract the training mean and divide by the training std (pixels in
            [0, 1] otherwise).
        train_size: a seeded random subset of that many examples (None: all).
        test_size: a seeded random subset of that many examples (None: all).
        seed: the subsets' seed.

    Returns:
        ``((x_train, y_train), (x_test, y_test), subset)`` with the subset actually read (the
        same arrays for the same arguments: they are cached, do not write to them).

    Raises:
        FileNotFoundError: ``subset="full"`` without the Debian package (with how to get it).

    Examples:
        >>> (x, y), test, which = fashion_mnist("small", train_size=1024)
        >>> x.shape, which
        ((1024, 28, 28, 1), 'small')
    """
    check(subset in ("auto", "small", "full"), "subset", subset, "'auto', 'small' or 'full'")
    if subset == "auto":
        try:
            load_fashion_mnist("test", "full")
            subset = "full"
        except FileNotFoundError:
            subset = "small"
    rng = np.random.default_rng(seed)
    out = []
    for split, size in (("train", train_size), ("test", test_size)):
        x, y = load_fashion_mnist(split, subset, flatten=flatten)
        if size is not None and size < len(x):
            keep = np.sort(rng.permutation(len(x))[:size])
            x, y = x[keep], y[keep]
        out.append((x, y))
    (x_train, y_train), (x_test, y_test) = out
    if standardize:
        mean, std = float(x_train.mean()), float(x_train.std())
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    for a in (x_train, y_train, x_test, y_test):
        a.setflags(write=False)
    return (x_train, y_train), (x_test, y_test), subset


#: The sequence tasks: the target of each position from the input tokens.
SEQUENCE_TASKS = {
    "reverse": lambda x: x[:, ::-1],
    "sort": lambda x: np.sort(x, axis=1),
    "copy": lambda x: x,
}


def sequence_task(kind: str, n: int, *, vocab: int = 16, length: int = 16,
                  seed: int = 0) -> Arrays:
    """``n`` random token sequences and their targets, one token per position.

    Args:
        kind: ``"reverse"`` (the sequence backwards: every position must attend to another),
            ``"sort"`` or ``"copy"`` (the identity).
        n: number of sequences.
        vocab: tokens are uniform in ``[0, vocab)``.
        length: tokens per sequence.
        seed: the draw's seed.

    Returns:
        ``(x, y)``: int32 arrays of shape ``(n, length)``.

    Examples:
        >>> x, y = sequence_task("reverse", 4, vocab=8, length=5)
        >>> bool((y == x[:, ::-1]).all())
        True
    """
    check(kind in SEQUENCE_TASKS, "kind", kind, f"one of {sorted(SEQUENCE_TASKS)}")
    positive_int("n", n)
    x = np.random.default_rng(seed).integers(0, vocab, size=(n, length)).astype(np.int32)
    return x, np.ascontiguousarray(SEQUENCE_TASKS[kind](x)).astype(np.int32)
