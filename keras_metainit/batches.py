"""The one stream of batches every method reads: equal-size NumPy batches, repeated without end,
on every backend.

:mod:`keras_metainit.data` turns each form of data (arrays, Python iterables,
``keras.utils.PyDataset``, ``tf.data``, ``None``) into a *source*: a function that starts one pass
over the data and yields NumPy elements. :class:`Batches` makes the stream: the elements in the
batch size the run asks for (:func:`rebatch`), one pass after another. The learned runners group
it into steps (:class:`Steps`); the layer-wise walk reads it as it is. On TensorFlow the runner
hands the same steps to ``tf.data`` (for ``tf.distribute``); on JAX and torch they go to the
device as they are.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, List, Optional

import numpy as np
from keras import tree

__all__ = ["Batches", "Steps", "DataError", "rebatch", "replayable", "batch_size_of"]

Element = Any  # a nest of NumPy arrays with a leading batch axis


class DataError(ValueError):
    """Raised for data that cannot be used: empty, non-finite, wrong shapes."""


def batch_size_of(element: Element) -> int:
    """Examples in a batch (the leading axis of its first array)."""
    return int(tree.flatten(element)[0].shape[0])


def _concat(parts: List[Element]) -> Element:
    if len(parts) == 1:
        return parts[0]
    return tree.map_structure(lambda *a: np.concatenate(a, axis=0), *parts)


def _slice(element: Element, start: int, stop: int) -> Element:
    return tree.map_structure(lambda a: a[start:stop], element)


def rebatch(elements: Iterable[Element], size: int) -> Iterator[Element]:
    """Batches of exactly ``size`` examples from batches of any sizes, in order; the examples
    left at the end of the pass (fewer than ``size``) are dropped, as ``drop_remainder`` does."""
    held: List[Element] = []
    count = 0
    for element in elements:
        n = batch_size_of(element)
        if not held and n == size:  # the common case: already the size asked for
            yield element
            continue
        held.append(element)
        count += n
        while count >= size:
            whole = _concat(held)
            yield _slice(whole, 0, size)
            count -= size
            held = [_slice(whole, size, size + count)] if count else []


def replayable(iterable: Iterable[Element]) -> Callable[[int], Iterator[Element]]:
    """A source over ``iterable`` (``source(epoch)`` starts a pass): a fresh ``iter()`` for a
    re-iterable object; for a one-shot iterator (a generator), its elements are kept as they
    come, and every pass gives the kept ones first, then takes new ones, until the iterator is
    done."""
    if iter(iterable) is not iterable:
        return lambda epoch: iter(iterable)
    kept: List[Element] = []
    done: List[bool] = []

    def one_pass(epoch: int = 0):
        i = 0
        while True:
            if i < len(kept):
                yield kept[i]
                i += 1
                continue
            if done:
                return
            try:
                kept.append(next(iterable))
            except StopIteration:
                done.append(True)

    return one_pass


class Batches:
    """An endless stream of NumPy batches of ``size`` examples: passes over a source, one after
    another (each ``iter()`` starts again from the first batch, so a run sees the same batches
    for the same seed).

    Args:
        source: ``source(epoch)`` starts pass ``epoch`` (0, 1, ...) over the data and yields
            elements (nests of NumPy arrays with a batch axis, of any sizes); the same epoch
            gives the same elements, however many passes were started before.
        size: examples per batch.
        prepare: applied to every batch of the stream (labels drawn, weights checked), or None.
        labelled: whether the batches are ``(x, y)`` or ``(x, y, sample_weight)``.
        weighted: whether they carry sample weights (``(x, y, sample_weight)``).

    Examples:

    ```python
    import numpy as np
    from keras_metainit.batches import Batches

    x, y = np.zeros((100, 3)), np.arange(100)
    stream = Batches(lambda epoch: iter([(x[:64], y[:64]), (x[64:], y[64:])]), 32)
    x0, y0 = next(iter(stream))  # 32 examples; the 100th is dropped, and passes repeat
    ```
    """

    def __init__(self, source: Callable[[int], Iterator[Element]], size: int,
                 prepare: Optional[Callable[[Element, int], Element]] = None,
                 labelled: bool = True, weighted: bool = False):
        self.source, self.size, self.prepare = source, int(size), prepare
        self.labelled, self.weighted = labelled, weighted

    def one_pass(self) -> Iterator[Element]:
        """The batches of the first pass over the source, in order."""
        for i, element in enumerate(rebatch(self.source(0), self.size)):
            yield element if self.prepare is None else self.prepare(element, i)

    def first(self) -> Optional[Element]:
        """The first batch, or None when a pass yields none."""
        return next(self.one_pass(), None)

    def __iter__(self) -> Iterator[Element]:
        index = epoch = 0
        while True:
            got = False
            for element in rebatch(self.source(epoch), self.size):
                got = True
                yield element if self.prepare is None else self.prepare(element, index)
                index += 1
            if not got:
                raise DataError(f"A pass over the data yielded no batch of {self.size} "
                                "examples.")
            epoch += 1

    def map(self, fn: Callable[[Element], Element]) -> "Batches":
        """The same stream with ``fn`` applied to every batch."""
        inner = self.prepare
        return Batches(self.source, self.size,
                       lambda e, i: fn(e if inner is None else inner(e, i)),
                       self.labelled, self.weighted)


class Steps:
    """The stream of a learned method's steps: ``method.batches_per_step`` consecutive batches,
    passed through ``method.prepare`` (a tuple of batches per step; ``method`` is a
    :class:`~keras_metainit.methods.LearnedMethod`). Each ``iter()`` starts again from the
    first batch.

    Args:
        batches: the stream of batches (:class:`Batches`).
        method: the learned method.
    """

    def __init__(self, batches: Batches, method):
        self.batches, self.method = batches, method

    @property
    def size(self) -> int:
        """Examples per batch of a step."""
        return self.batches.size

    def __iter__(self) -> Iterator[tuple]:
        k = self.method.batches_per_step
        it = iter(self.batches)
        while True:
            yield tuple(self.method.prepare(tuple(next(it) for _ in range(k))))
