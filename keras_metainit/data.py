"""Every form and structure of data a Keras user has, turned into one stream of ``(x, y)`` batches
(``(x, y, sample_weight)`` with sample weights).

Forms accepted by :func:`make_dataset` (the structures ``model.fit`` accepts):

- ``None``: random inputs of every input of the model, shapes and dtypes from ``model.inputs``:
  N(0, 1) for floating inputs, integers uniform over ``[0, input_dim)`` for an input that feeds an
  ``Embedding`` (``[0, 2)`` for other integer inputs); labels drawn for every output (MetaInit's
  reference setting: it needs no data);
- NumPy arrays or tensors: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, where ``x``
  and ``y`` may each be an array or a tuple, list or dict of arrays (several inputs, per-output
  targets), as in ``model.fit(x, y)``;
- a ``tf.data.Dataset`` of such elements, batched like for ``model.fit`` (an unbatched one, whose
  elements have one axis less than the model's input, is batched for you); dict features included;
- a string: the name of a TensorFlow Datasets dataset, loaded with ``download=False``.

Sample weights (one per example) weigh each example's loss as in ``fit`` (the weighted sum over
the batch divided by the batch size, Keras's ``"sum_over_batch_size"``); the layer-wise methods,
which read activations, do not use them.
Inputs reach the model as ``model.fit`` gives them: NumPy floating arrays are cast to ``floatx``
(as Keras's array adapter does), nothing else is touched; in particular ``uint8`` images are *not*
rescaled (a model that expects [0, 1] has its own ``Rescaling`` layer, as keras.applications do).

The loss is resolved by :func:`keras_metainit.losses.resolve_loss` from the first batch, and the
labels are checked against the outputs before any step (class indices in range, one-hot width).
"""
from __future__ import annotations

from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
from keras import tree

from keras_metainit import _compat
from keras_metainit.losses import LossSpec, check_labels, resolve_loss, symbolic_outputs
from keras_metainit.model_inputs import input_specs, input_struct

__all__ = ["make_dataset", "step_dataset", "ensure_built", "DataError", "DEFAULT_BATCH_SIZE"]

DEFAULT_BATCH_SIZE = 128
# Integer inputs that feed no Embedding (or similar layer with a known vocabulary) draw from [0, 2).
DEFAULT_INT_HIGH = 2


class DataError(ValueError):
    """Raised for data that cannot be used: empty, non-finite, wrong shapes."""


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


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------
def _random_inputs(model, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless batches of random inputs for every input of the model (see the module doc)."""
    specs = input_specs(model)
    struct = input_struct(model)

    def draw(k, spec, seeds):
        shape = (batch_size,) + spec.shape
        s = seeds + 7 * k
        dtype = tf.as_dtype(spec.dtype)
        if spec.high is not None or dtype.is_integer:
            high = spec.high if spec.high is not None else DEFAULT_INT_HIGH
            t = tf.random.stateless_uniform(shape, s, 0, high, dtype=tf.int64)
            return tf.cast(t, dtype)
        if dtype.is_bool:
            return tf.random.stateless_uniform(shape, s, 0, 2, dtype=tf.int64) > 0
        if not dtype.is_floating:
            raise ValueError(f"`data=None` cannot draw random inputs of dtype {spec.dtype} "
                             f"(input {spec.name!r}); pass data.")
        return tf.cast(tf.random.stateless_normal(shape, s), dtype)

    def make(i):
        seeds = tf.stack([tf.cast(seed, tf.int64), i])
        xs = [draw(k, spec, seeds) for k, spec in enumerate(specs)]
        if struct is None or not tree.is_nested(struct):
            return xs[0]
        return tree.pack_sequence_as(struct, xs)

    return tf.data.Dataset.range(2**62).map(make)


def _add_labels(ds: tf.data.Dataset, loss_spec: LossSpec, seed: int, y_pred):
    """Draw random labels, in each output's loss format, for data that has none: classes uniform
    over the output units, {0, 1} for binary losses, N(0, 1) targets for regression."""

    def one(kind, units, shape, n, s):
        if kind in ("sparse", "onehot"):
            y = tf.random.stateless_uniform((n,) + shape[:-1], s, 0, units, dtype=tf.int64)
            return tf.one_hot(y, units) if kind == "onehot" else y
        if kind == "binary":
            return tf.cast(tf.random.stateless_uniform((n,) + shape, s, 0, 2, tf.int64),
                           tf.float32)
        return tf.random.stateless_normal((n,) + shape, s)

    outs = [(o.label_kind, o.units or 1,
             tuple(d or 1 for d in LossSpec._at(y_pred, o.path).shape[1:]) or (1,))
            for o in loss_spec.outputs]

    def add(x, i):
        n = tf.shape(tree.flatten(x)[0])[0]
        s = tf.stack([tf.cast(seed, tf.int64) + 1000003, i])
        ys = [one(kind, units, shape, n, s + 13 * k) for k, (kind, units, shape) in enumerate(outs)]
        return x, (ys[0] if len(ys) == 1 else tuple(ys))

    return tf.data.Dataset.zip(ds, tf.data.Dataset.range(2**62)).map(add)


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


def _floatx_arrays(struct):
    """NumPy / tensors to NumPy, floating ones cast to floatx (as Keras's array adapter does)."""

    def conv(a):
        a = a.numpy() if hasattr(a, "numpy") else np.asarray(a)
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
    w = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
    if not _one_weight_per_example(w.shape) or len(w) != n or w.dtype.kind not in "fiub":
        raise DataError(_WEIGHTS_MESSAGE + f" Received shape {w.shape}, dtype {w.dtype}, for "
                        f"{n} examples.")
    w = w.reshape(n).astype("float32")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("Sample weights must be finite and non-negative.")
    return w


def _from_arrays(x, y, batch_size: int, seed: int, w=None) -> Tuple[tf.data.Dataset, int]:
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
    ds = tf.data.Dataset.from_tensor_slices(elements)
    ds = ds.shuffle(min(n, 10_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(min(batch_size, n), drop_remainder=True), n


def _from_tfds(name: str, batch_size: int, seed: int) -> tf.data.Dataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - declared dependency
        raise ImportError("Loading data by name needs tensorflow-datasets.") from e
    try:
        ds = tfds.load(name, split="train", as_supervised=True, download=False, shuffle_files=False)
    except Exception as e:
        raise DataError(
            f"Could not load the TensorFlow Datasets dataset {name!r} without downloading "
            f"(download=False): {e}. Prepare it first with `tfds build {name}` or pass arrays / a "
            "tf.data.Dataset."
        ) from e
    return ds.shuffle(10_000, seed=seed).batch(batch_size, drop_remainder=True)


def _split_dataset(ds: tf.data.Dataset, specs) -> Tuple[tf.data.Dataset, bool, bool]:
    """Elements as ``(x, y)`` or ``(x, y, sample_weight)`` when the data has labels, else ``x``;
    whether it has labels; whether it has sample weights."""
    spec = ds.element_spec
    names = {s.name for s in specs or []}
    if isinstance(spec, dict) and {"image", "label"} <= set(spec) and not (
            names and names <= set(spec)):  # tfds without as_supervised
        return ds.map(lambda d: (d["image"], d["label"])), True, False
    if isinstance(spec, tuple) and not _is_x_only(spec, specs):
        if len(spec) == 1:
            return ds.map(lambda x: x), False, False
        if len(spec) == 2:
            return ds, True, False
        if len(spec) == 3:
            if not isinstance(spec[2], tf.TensorSpec):
                raise DataError(_WEIGHTS_MESSAGE + f" Received: {spec[2]}")
            return ds, True, True
    return ds, False, False


def _x_rank_matches_example(x_spec, specs) -> bool:
    """Whether dataset elements are single examples (one axis less than the model's inputs)."""
    if not specs:
        return False
    if isinstance(x_spec, dict):
        by_name = {s.name: s for s in specs}
        pairs = [(x_spec[k], by_name[k]) for k in x_spec if k in by_name]
        if not pairs:
            pairs = list(zip(tree.flatten(x_spec), specs))
    else:
        pairs = list(zip(tree.flatten(x_spec), specs))
    return bool(pairs) and all(t.shape.rank is not None and t.shape.rank == len(s.shape)
                               for t, s in pairs)


def _first(ds):
    return next(iter(ds.take(1)), None)


def make_dataset(
    data, model, loss=None, *, batch_size: Optional[int] = None, seed: int = 0,
    default_batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tuple[tf.data.Dataset, str, LossSpec]:
    """Turn ``data`` into an endless ``tf.data.Dataset`` of ``(x, y)`` batches.

    Builds an unbuilt model from the first batch, resolves the loss (:func:`resolve_loss`) and
    checks the labels against the outputs (:func:`check_labels`): on the whole arrays for NumPy
    data, on the first batch for a dataset.

    Args:
        data: None, a ``tf.data.Dataset``, NumPy / tensors in any structure ``model.fit``
            accepts (see the module doc), or a tfds name.
        model: the model the batches are for (its inputs are used for ``data=None``).
        loss: a Keras loss (or one per output), or None for the compiled or inferred one.
        batch_size: examples per batch; a batched ``tf.data.Dataset`` keeps its own batch
            size unless this is given.
        default_batch_size: the batch size of unbatched forms when ``batch_size`` is None.
        seed: seed of the shuffling and of random inputs/labels.

    Returns:
        ``(dataset, description, loss_spec)``; the dataset repeats forever and yields ``(x, y)``
        (``(x, y, sample_weight)`` when the data has them) in the structures of the data (inputs
        as ``model.fit`` would pass them), labels in each loss's format.

    Raises:
        DataError: empty data, NaN/Inf in arrays, mismatched lengths, an unloadable tfds name.
        ValueError: ``data=None`` for a model whose input shape is unknown; labels out of range
            of the outputs (class indices beyond the output width, one-hot of another width).
    """
    bs = int(batch_size or default_batch_size)
    if bs < 1:
        raise ValueError(f"Argument `batch_size` must be >= 1. Received: batch_size={batch_size}")
    specs = input_specs(model)
    labelled, weighted, y_all = True, False, None
    if data is None:
        if not specs or any(d is None for s in specs for d in s.shape):
            raise ValueError(
                "`data=None` draws random inputs of the model's input shape, but this model's "
                "input shape is not known. Build the model (e.g. start it with "
                "`keras.Input(shape)`) or pass data."
            )
        ds, labelled = _random_inputs(model, bs, seed), False
        kinds = ", ".join(sorted({"tokens" if s.high is not None or "int" in s.dtype
                                  else "N(0, 1)" for s in specs}))
        desc = f"random: x ~ {kinds}, batch {bs}"
    elif isinstance(data, str):
        ds, desc = _from_tfds(data, bs, seed), f"tfds:{data} (train split), batch {bs}"
    elif isinstance(data, tf.data.Dataset):
        ds, labelled, weighted = _split_dataset(data, specs)
        desc = "tf.data.Dataset"
        x_spec = ds.element_spec[0] if labelled else ds.element_spec
        if _x_rank_matches_example(x_spec, specs):
            ds, desc = ds.batch(bs, drop_remainder=True), f"{desc} (unbatched; batched by {bs})"
        # Equal static batch shapes: the compiled step is traced once, chunks are well defined.
        first = _first(ds)
        n0 = tree.flatten(first)[0].shape[0] if first is not None else bs
        size = int(batch_size or n0)
        ds = ds.unbatch().batch(size, drop_remainder=True)
        desc += f", batch {size}"
        if weighted:  # batched: (B,) or (B, 1), as the arrays' (N,) or (N, 1)
            w_shape = ds.element_spec[2].shape
            if not _one_weight_per_example(w_shape):
                raise DataError(_WEIGHTS_MESSAGE + f" Received batches of shape {w_shape}.")
    else:
        x, y, w = _unpack(data, specs)
        weighted = w is not None and y is not None
        labelled = y is not None
        ds, n = _from_arrays(x, y, bs, seed, w)
        y_all = _floatx_arrays(y) if labelled else None
        desc = f"arrays: {n} examples, batch {min(bs, n)}"
    if weighted:
        desc += ", sample weights"
    # Emptiness is checked on the finite stream, before it is repeated; the first batch also
    # builds an unbuilt model and tells the outputs.
    first = _first(ds)
    if first is None:
        raise DataError(f"`data` is empty: the {desc} yielded no batch (an empty dataset, or "
                        "fewer examples than one batch).")
    x0 = first[0] if labelled else first
    y0 = first[1] if labelled else None
    ensure_built(model, x0)
    loss_spec = resolve_loss(model, loss, x0, y0)
    if labelled:
        check_labels(loss_spec, y_all if y_all is not None else
                     tree.map_structure(lambda t: t.numpy(), y0))
    else:
        loss_spec.random_labels = True
        y_pred = symbolic_outputs(model, x0)
        ds = _add_labels(ds, loss_spec, seed, y_pred)
        kinds = sorted({o.label_kind for o in loss_spec.outputs})
        desc += f", labels random ({', '.join(kinds)})"
    return ds.repeat().prefetch(2), desc, loss_spec


def step_dataset(dataset: tf.data.Dataset, method) -> tf.data.Dataset:
    """The stream of a learned method's steps: ``method.batches_per_step`` consecutive batches,
    passed through ``method.prepare`` (a tuple of batches per step; ``method`` is a
    :class:`~keras_metainit.methods.LearnedMethod`)."""
    k = method.batches_per_step

    def prepare(*element):
        return tuple(method.prepare(tuple(tf.nest.map_structure(lambda t: t[i], element)
                                          for i in range(k))))

    return dataset.batch(k, drop_remainder=True).map(prepare)
