"""Every form and structure of data a Keras user has, turned into one stream of ``(x, y)`` batches
(``(x, y, sample_weight)`` with sample weights), on every backend.

Forms accepted by :func:`make_dataset` (the structures ``model.fit`` accepts):

- ``None``: random inputs of every input of the model, shapes and dtypes from ``model.inputs``:
  N(0, 1) for floating inputs, integers uniform over ``[0, input_dim)`` for an input that feeds an
  ``Embedding`` (``[0, 2)`` for other integer inputs); labels drawn for every output (MetaInit's
  reference setting: it needs no data);
- NumPy arrays or tensors: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, where ``x``
  and ``y`` may each be an array or a tuple, list or dict of arrays (several inputs, per-output
  targets), as in ``model.fit(x, y)``;
- batches from a ``keras.utils.PyDataset``, a Python iterable (a generator, an iterator, any
  iterable object other than a list, tuple or dict, which are structures of arrays as in ``fit``)
  or a ``tf.data.Dataset`` (where TensorFlow is installed), each element ``x``, ``(x,)``,
  ``(x, y)`` or ``(x, y, sample_weight)`` as above; elements with one axis less than the model's
  inputs are single examples and are batched; a one-shot iterator's batches are kept and given
  again when the run needs more passes;
- a string: the name of a TensorFlow Datasets dataset, loaded with ``download=False`` (needs the
  ``tensorflow`` extra).

Every form becomes a *source* of NumPy elements and then the same stream
(:class:`keras_metainit.batches.Batches`): batches of one size (a batched iterable keeps its
first batch's size unless ``batch_size`` is given), repeated pass after pass; ``tf.data`` is one
source among the others and TensorFlow is imported only for it (or for a tfds name).

Sample weights (one per example) weigh each example's loss as in ``fit`` (the weighted sum over
the batch divided by the batch size, Keras's ``"sum_over_batch_size"``); the layer-wise methods,
which read activations, do not use them.
Inputs reach the model as ``model.fit`` gives them: floating arrays are cast to ``floatx`` (as
Keras's array adapter does), nothing else is touched; in particular ``uint8`` images are *not*
rescaled (a model that expects [0, 1] has its own ``Rescaling`` layer, as keras.applications do).

The loss is resolved by :func:`keras_metainit.losses.resolve_loss` from the first batch, and the
labels are checked against the outputs before any step (class indices in range, one-hot width):
on the whole arrays for NumPy data, on the first batch for an iterable.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterator, Optional, Tuple

import keras
import numpy as np
from keras import tree

from keras_metainit import _compat
from keras_metainit.batches import Batches, DataError, Steps, replayable
from keras_metainit.losses import LossSpec, check_labels, resolve_loss, symbolic_outputs
from keras_metainit.model_inputs import input_specs, random_inputs, random_labels

__all__ = ["make_dataset", "Steps", "ensure_built", "DataError", "Batches",
           "DEFAULT_BATCH_SIZE"]

DEFAULT_BATCH_SIZE = 128


# ----------------------------------------------------------------------------------------------
# Model inputs
# ----------------------------------------------------------------------------------------------
def ensure_built(model, x) -> None:
    """Build an unbuilt model by calling it on a batch."""
    if not model.built or not model.trainable_variables:
        try:
            model(x, training=False)
        except Exception as e:
            shapes = [tuple(t.shape) for t in tree.flatten(x)]
            raise DataError(
                f"Could not build the model on the first batch of inputs, shape {shapes}: {e}. "
                "Is the data batched like for `model.fit`, and of the model's input shape?"
            ) from e


def _is_x_only(parts, specs) -> bool:
    """A tuple/list that is all the inputs of a multi-input model rather than ``(x, y[, w])``."""
    if not specs or len(specs) < 2 or len(parts) != len(specs):
        return False
    if any(tree.is_nested(p) for p in parts):
        return False
    return all(len(getattr(p, "shape", ())) in (len(s.shape), len(s.shape) + 1)
               for p, s in zip(parts, specs))


def _unpack(data, specs):
    """``(x, y, sample_weight)`` from ``data`` as ``model.fit`` reads a single argument."""
    if isinstance(data, (tuple, list)) and _is_x_only(data, specs):
        return tuple(data), None, None
    return _compat.data_adapter_utils.unpack_x_y_sample_weight(data)


def _to_numpy(a) -> np.ndarray:
    """An array or a tensor of any backend (on any device) as NumPy."""
    if isinstance(a, np.ndarray):
        return a
    try:
        return np.asarray(a)
    except (TypeError, RuntimeError, ValueError):  # a tensor on an accelerator
        return keras.ops.convert_to_numpy(a)


def _floatx_arrays(struct):
    """NumPy / tensors to NumPy, floating ones cast to floatx (as Keras's array adapter does)."""

    def conv(a):
        a = _to_numpy(a)
        if a.dtype.kind == "f" and a.dtype != np.dtype(keras.config.floatx()):
            a = a.astype(keras.config.floatx())
        return a

    return tree.map_structure(conv, tree.lists_to_tuples(struct))


def _check_finite(struct, what: str) -> None:
    for path, a in tree.flatten_with_path(struct):
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)).ravel()
            where = what + "".join(f"[{p!r}]" for p in path)
            raise DataError(
                f"`data` contains NaN or Inf in {where} (examples {bad[:5].tolist()}"
                f"{'...' if len(bad) > 5 else ''}). Clean or drop them before initializing."
            )


_WEIGHTS_MESSAGE = ("Sample weights must be one weight per example (an array of shape (N,) or "
                    "(N, 1), as `model.fit`'s `sample_weight`); per-output or per-timestep weights "
                    "are not supported.")


def _one_weight_per_example(shape) -> bool:
    """Whether a weight array (or a batch of weights) of this shape is ``(N,)`` or ``(N, 1)``."""
    shape = tuple(shape)
    return len(shape) == 1 or (len(shape) == 2 and shape[1] in (1, None))


def _sample_weights(w, n: int) -> np.ndarray:
    """``sample_weight`` as float32 ``(N,)``: one finite, non-negative weight per example."""
    if tree.is_nested(w):
        raise DataError(_WEIGHTS_MESSAGE + f" Received a {type(w).__name__}.")
    w = _to_numpy(w)
    if not _one_weight_per_example(w.shape) or len(w) != n or w.dtype.kind not in "fiub":
        raise DataError(_WEIGHTS_MESSAGE + f" Received shape {w.shape}, dtype {w.dtype}, for "
                        f"{n} examples.")
    w = w.reshape(n).astype("float32")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("Sample weights must be finite and non-negative.")
    return w


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------
def _from_arrays(x, y, batch_size: int, seed: int, w=None):
    """``(source, n, y)``: batches of the arrays, shuffled anew every pass (NumPy: pass ``epoch``
    in the order drawn from ``(seed, epoch)``, the same on every backend)."""
    x = _floatx_arrays(x)
    y = None if y is None else _floatx_arrays(y)
    lengths = {}
    for what, struct in (("x", x), ("y", y)):
        if struct is None:
            continue
        for path, a in tree.flatten_with_path(struct):
            if a.ndim == 0:
                raise DataError(f"`data` has a scalar in {what}; every array needs a batch axis.")
            lengths[what + "".join(f"[{p!r}]" for p in path)] = len(a)
    if len(set(lengths.values())) > 1:
        xs = {k: v for k, v in lengths.items() if k.startswith("x")}
        ys = {k: v for k, v in lengths.items() if k.startswith("y")}
        raise DataError(
            f"`data` has {sorted(set(xs.values()))} inputs but {sorted(set(ys.values()))} labels; "
            f"they must match in length. Lengths: {lengths}"
        )
    _check_finite(x, "x")
    if y is not None:
        _check_finite(y, "y")
    n = next(iter(lengths.values()))
    if n == 0:
        raise DataError("`data` is empty (0 examples).")
    elements = x if y is None else (x, y)
    if w is not None and y is not None:
        elements = (x, y, _sample_weights(w, n))
    size = min(batch_size, n)

    def source(epoch: int):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for start in range(0, n - size + 1, size):
            take = order[start:start + size]
            yield tree.map_structure(lambda a: a[take], elements)

    return source, n, y


def _tensorflow_dataset_class():
    """``tf.data.Dataset`` where TensorFlow is already imported, else None: data cannot be a
    ``tf.data.Dataset`` without it, so TensorFlow is never imported to find out."""
    tf = sys.modules.get("tensorflow")
    return getattr(getattr(tf, "data", None), "Dataset", None)


def _elements_of(data) -> Tuple[Optional[Callable[[], Iterator[Any]]], str]:
    """A source of the elements of a ``tf.data.Dataset``, a ``keras.utils.PyDataset`` or a Python
    iterable of batches, and its description; ``(None, "")`` for any other form."""
    dataset_class = _tensorflow_dataset_class()
    if dataset_class is not None and isinstance(data, dataset_class):
        return lambda epoch: data.as_numpy_iterator(), "tf.data.Dataset"
    if isinstance(data, keras.utils.PyDataset):
        def passes(epoch: int):
            for i in range(len(data)):
                yield data[i]
            data.on_epoch_end()
        return passes, "keras.utils.PyDataset"
    if isinstance(data, (list, tuple, dict, str, bytes, np.ndarray)) or \
            hasattr(data, "shape") or not hasattr(data, "__iter__"):
        return None, ""
    return replayable(data), f"{type(data).__name__} of batches"


def _from_tfds(name: str):
    """A source of the train split of a prepared TensorFlow Datasets dataset."""
    tfds = _compat.require_tensorflow("Loading data by name (TensorFlow Datasets)",
                                      "tensorflow_datasets")

    try:
        ds = tfds.load(name, split="train", as_supervised=True, download=False, shuffle_files=False)
    except Exception as e:
        raise DataError(
            f"Could not load the TensorFlow Datasets dataset {name!r} without downloading "
            f"(download=False): {e}. Prepare it first with `tfds build {name}` or pass arrays / a "
            "tf.data.Dataset."
        ) from e
    return lambda epoch: ds.as_numpy_iterator()


def _split(element, specs) -> Tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of one element of an iterable, as ``fit`` reads it (a tfds
    dict ``{"image", "label"}`` that is not the model's inputs by name: image and label)."""
    names = {s.name for s in specs or []}
    if isinstance(element, dict) and {"image", "label"} <= set(element) and not (
            names and names <= set(element)):  # tfds without as_supervised
        return element["image"], element["label"], None
    return _unpack(element, specs)


def _is_single_example(x, specs) -> bool:
    """Whether an element's inputs are one example (one axis less than the model's inputs)."""
    if not specs:
        return False
    if isinstance(x, dict):
        by_name = {s.name: s for s in specs}
        pairs = [(x[k], by_name[k]) for k in x if k in by_name] or \
            list(zip(tree.flatten(x), specs))
    else:
        pairs = list(zip(tree.flatten(x), specs))
    return bool(pairs) and all(np.ndim(t) == len(s.shape) for t, s in pairs)


def _from_elements(start, specs, batch_size: Optional[int]):
    """``(source, labelled, weighted, description)``: an iterable's elements as ``(x, y[, w])``
    or ``x`` batches of NumPy arrays (single examples batched)."""
    first = next(start(0), None)
    if first is None:
        raise DataError("`data` is empty: it yielded no element.")
    x0, y0, w0 = _split(first, specs)
    labelled, weighted = y0 is not None, y0 is not None and w0 is not None
    single = _is_single_example(x0, specs)
    if weighted and not single and not _one_weight_per_example(np.shape(_to_numpy(w0))):
        raise DataError(_WEIGHTS_MESSAGE + f" Received batches of shape {np.shape(w0)}.")

    def source(epoch: int):
        for element in start(epoch):
            x, y, w = _split(element, specs)
            if single:
                x, y, w = tree.map_structure(lambda a: _to_numpy(a)[None], (x, y, w))
            x = _floatx_arrays(x)
            if not labelled:
                yield x
                continue
            y = _floatx_arrays(y)
            yield (x, y, _sample_weights(w, len(tree.flatten(x)[0]))) if weighted else (x, y)

    note = f" (single examples; batched by {batch_size or DEFAULT_BATCH_SIZE})" if single else ""
    return source, labelled, weighted, note


def make_dataset(
    data, model, loss=None, *, batch_size: Optional[int] = None, seed: int = 0,
    default_batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tuple[Batches, str, LossSpec]:
    """Turn ``data`` into an endless stream of ``(x, y)`` NumPy batches of one size.

    Builds an unbuilt model from the first batch, resolves the loss (:func:`resolve_loss`) and
    checks the labels against the outputs (:func:`check_labels`): on the whole arrays for NumPy
    data, on the first batch for an iterable.

    Args:
        data: None, NumPy / tensors in any structure ``model.fit`` accepts, a
            ``keras.utils.PyDataset``, a Python iterable of batches, a ``tf.data.Dataset``
            (see the module doc), or a tfds name.
        model: the model the batches are for (its inputs are used for ``data=None``).
        loss: a Keras loss (or one per output), or None for the compiled or inferred one.
        batch_size: examples per batch; a batched iterable keeps its first batch's size unless
            this is given.
        default_batch_size: the batch size of unbatched forms when ``batch_size`` is None.
        seed: seed of the shuffling and of random inputs/labels.

    Returns:
        ``(batches, description, loss_spec)``; ``batches`` (a
        :class:`~keras_metainit.batches.Batches`) repeats forever and yields ``(x, y)``
        (``(x, y, sample_weight)`` when the data has them) in the structures of the data (inputs
        as ``model.fit`` would pass them), labels in each loss's format.

    Raises:
        DataError: empty data, NaN/Inf in arrays, mismatched lengths, an unloadable tfds name.
        ValueError: ``data=None`` for a model whose input shape is unknown; labels out of range
            of the outputs (class indices beyond the output width, one-hot of another width).
        ImportError: a tfds name without TensorFlow installed.

    Examples:

    ```python
    import keras
    import numpy as np
    from keras_metainit.data import make_dataset

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x, y = np.ones((200, 4), "float32"), np.zeros(200, "int64")
    batches, description, loss_spec = make_dataset((x, y), model, batch_size=64)
    x0, y0 = next(iter(batches))  # NumPy, 64 examples
    ```
    """
    bs = int(batch_size or default_batch_size)
    if bs < 1:
        raise ValueError(f"Argument `batch_size` must be >= 1. Received: batch_size={batch_size}")
    specs = input_specs(model)
    labelled, weighted, y_all = True, False, None
    start, desc = _elements_of(data)
    if data is None:
        if not specs or any(d is None for s in specs for d in s.shape):
            raise ValueError(
                "`data=None` draws random inputs of the model's input shape, but this model's "
                "input shape is not known. Build the model (e.g. start it with "
                "`keras.Input(shape)`) or pass data."
            )
        source, labelled, size = random_inputs(model, bs, seed), False, bs
        kinds = ", ".join(sorted({"tokens" if s.high is not None or "int" in s.dtype
                                  else "N(0, 1)" for s in specs}))
        desc = f"random: x ~ {kinds}, batch {bs}"
    elif isinstance(data, str) or start is not None:
        if isinstance(data, str):
            start, desc = _from_tfds(data), f"tfds:{data} (train split)"
        source, labelled, weighted, note = _from_elements(start, specs, batch_size)
        first = next(source(0), None)
        # Equal batch shapes: the compiled step is traced once, chunks are well defined.
        size = bs if note or first is None else int(batch_size or len(tree.flatten(first)[0]))
        desc += f"{note}, batch {size}"
    else:
        x, y, w = _unpack(data, specs)
        weighted = w is not None and y is not None
        labelled = y is not None
        source, n, y_all = _from_arrays(x, y, bs, seed, w)
        size = min(bs, n)
        desc = f"arrays: {n} examples, batch {size}"
    if weighted:
        desc += ", sample weights"
    batches = Batches(source, size, labelled=labelled, weighted=weighted)
    # Emptiness is checked on one pass; the first batch also builds an unbuilt model and tells
    # the outputs.
    first = batches.first()
    if first is None:
        raise DataError(f"`data` is empty: the {desc} yielded no batch (an empty dataset, or "
                        "fewer examples than one batch).")
    x0 = first[0] if labelled else first
    y0 = first[1] if labelled else None
    ensure_built(model, x0)
    loss_spec = resolve_loss(model, loss, x0, y0)
    if labelled:
        check_labels(loss_spec, y_all if y_all is not None else y0)
    else:
        loss_spec.random_labels = True
        batches.prepare = random_labels(loss_spec, seed, symbolic_outputs(model, x0))
        kinds = sorted({o.label_kind for o in loss_spec.outputs})
        desc += f", labels random ({', '.join(kinds)})"
    return batches, desc, loss_spec
