"""Every form of data a Keras user has, turned into one stream of ``(x, y)`` batches.

Forms accepted by :func:`make_dataset`:

- ``None``: Gaussian inputs of the model's input shape and labels drawn uniformly over the
  output units (MetaInit's reference setting: it needs no data);
- a ``tf.data.Dataset`` yielding ``(x, y)`` or ``x``, batched like for ``model.fit`` (an unbatched
  one, whose elements have one axis less than the model's input, is batched for you);
- NumPy (or anything array-like): ``(x, y)`` or ``x``;
- a string: the name of a TensorFlow Datasets dataset, loaded with ``download=False``.

Labels are produced in the format the loss expects (see :class:`LossSpec`). When the data has no
labels, random ones are drawn (uniform over the output units for classification losses).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

__all__ = ["LossSpec", "resolve_loss", "make_dataset", "ensure_built", "DataError"]

DEFAULT_BATCH_SIZE = 128


class DataError(ValueError):
    """Raised for data that cannot be used: empty, non-finite, wrong shapes."""


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LossSpec:
    """A loss resolved to a per-example function and the label format it expects.

    Attributes:
        fn: the Keras loss (a ``keras.losses.Loss`` or a loss function).
        label_kind: ``"sparse"`` (integer classes), ``"onehot"``, ``"binary"`` or ``"regression"``.
        origin: where the loss came from: ``"argument"``, ``"compiled"`` or ``"inferred"``.
        random_labels: the data had no labels and random ones are drawn (methods that need
            real labels, such as Sylvester with ``latent="labels"``, refuse them).
    """

    fn: Any
    label_kind: str
    origin: str
    random_labels: bool = False

    @property
    def name(self) -> str:
        fn = self.fn
        name = getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
        if getattr(fn, "fn", None) is not None and hasattr(fn, "_fn_kwargs"):
            if fn._fn_kwargs.get("from_logits"):
                name += "(from_logits=True)"
        return name

    def per_example(self, y_true, y_pred):
        """Unreduced loss, one value per example (float32, or float64 for a float64 model)."""
        dtype = tf.float64 if y_pred.dtype == tf.float64 else tf.float32
        y_pred = tf.cast(y_pred, dtype)
        fn = self.fn
        out = fn.call(y_true, y_pred) if isinstance(fn, keras.losses.Loss) else fn(y_true, y_pred)
        out = tf.cast(out, dtype)
        if out.shape.rank is not None and out.shape.rank > 1:
            out = tf.reduce_mean(out, axis=list(range(1, out.shape.rank)))
        return out


def _label_kind(fn) -> str:
    name = (getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__).lower()
    if "sparse_categorical" in name:
        return "sparse"
    if "categorical" in name or "kl_divergence" in name:
        return "onehot"
    if "binary" in name or "hinge" in name:
        return "binary"
    return "regression"


def _output_layer(model):
    layer = model.layers[-1] if model.layers else None
    if layer is not None and hasattr(layer, "layers") and layer.layers:  # nested model
        return _output_layer(layer)
    return layer


def _output_units(model, x=None) -> int:
    """Units of the model's (first) output: from its symbolic outputs, else by calling it on x."""
    try:
        if getattr(model, "outputs", None):
            return int(model.outputs[0].shape[-1])
    except (AttributeError, ValueError):
        pass
    if x is None:
        raise ValueError("Cannot tell the number of output units of this model without data.")
    return int(tf.nest.flatten(model(x, training=False))[0].shape[-1])


def resolve_loss(model, loss=None, x=None) -> LossSpec:
    """The loss ``meta_initialize`` uses: the argument, else the compiled loss, else inferred.

    Inference from the output layer's activation: softmax → sparse categorical cross-entropy;
    sigmoid with one unit → binary cross-entropy; a linear layer with several units → sparse
    categorical cross-entropy from logits; a linear layer with one unit → mean squared error.
    """
    if loss is not None:
        fn, origin = keras.losses.get(loss), "argument"
    elif getattr(model, "loss", None) is not None:
        fn, origin = model.loss, "compiled"
        if isinstance(fn, (list, tuple, dict)):
            raise ValueError(
                "The model was compiled with several losses; pass the one to use as `loss=`. "
                f"Received compiled loss: {fn!r}"
            )
        fn = keras.losses.get(fn)
    else:
        origin = "inferred"
        layer = _output_layer(model)
        act = getattr(getattr(layer, "activation", None), "__name__", "linear")
        units = _output_units(model, x)
        if act == "softmax":
            fn = keras.losses.SparseCategoricalCrossentropy()
        elif act == "sigmoid" and units == 1:
            fn = keras.losses.BinaryCrossentropy()
        elif units > 1 and act == "linear":
            fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            fn = keras.losses.MeanSquaredError()
    if fn is None:
        raise ValueError(f"Argument `loss` could not be interpreted. Received: loss={loss!r}")
    return LossSpec(fn=fn, label_kind=_label_kind(fn), origin=origin)


# ----------------------------------------------------------------------------------------------
# Model inputs
# ----------------------------------------------------------------------------------------------
def _input_shapes(model):
    """Per-example input shapes of a built model, or None when they are unknown."""
    inputs = getattr(model, "inputs", None)
    if inputs:
        return [tuple(t.shape[1:]) for t in inputs]
    if getattr(model, "built", False) and getattr(model, "_build_shapes_dict", None):
        shapes = list(model._build_shapes_dict.values())
        return [tuple(s[1:]) for s in shapes]
    return None


def ensure_built(model, x) -> None:
    """Build an unbuilt model by calling it on a batch."""
    if not model.built or not model.trainable_variables:
        try:
            model(x, training=False)
        except Exception as e:
            shapes = [tuple(t.shape) for t in tf.nest.flatten(x)]
            raise DataError(
                f"Could not build the model on the first batch of inputs, shape {shapes}: {e}. "
                "Is the data batched like for `model.fit`, and of the model's input shape?"
            ) from e


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------
def _random_inputs(model, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless batches of N(0, 1) inputs of the model's input shape(s)."""
    shapes = _input_shapes(model)

    def make(i):
        seeds = tf.stack([tf.cast(seed, tf.int64), i])
        xs = [tf.random.stateless_normal((batch_size,) + s, seed=seeds + 7 * k)
              for k, s in enumerate(shapes)]
        return xs[0] if len(xs) == 1 else tuple(xs)

    return tf.data.Dataset.range(2**62).map(make)


def _element_rank(spec) -> Optional[int]:
    first = tf.nest.flatten(spec)[0]
    return first.shape.rank


def _split_labels(ds: tf.data.Dataset) -> Tuple[tf.data.Dataset, bool]:
    """Elements as ``(x, y)`` when the data has labels, else ``x``; and whether it has them."""
    spec = ds.element_spec
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        return ds.map(lambda *e: (e[0], e[1])), True
    if isinstance(spec, dict) and {"image", "label"} <= set(spec):  # tfds without as_supervised
        return ds.map(lambda d: (d["image"], d["label"])), True
    return ds, False


def _add_labels(ds: tf.data.Dataset, loss_spec: LossSpec, seed: int, units: int):
    """Draw random labels, in the loss's format, for data that has none: classes uniform over
    the output units, {0, 1} for binary losses, N(0, 1) targets for regression."""
    kind = loss_spec.label_kind

    def add(x, i):
        n = tf.shape(tf.nest.flatten(x)[0])[0]
        s = tf.stack([tf.cast(seed, tf.int64) + 1000003, i])
        if kind in ("sparse", "onehot"):
            y = tf.random.stateless_uniform((n,), s, 0, units, dtype=tf.int64)
            y = tf.one_hot(y, units) if kind == "onehot" else y
        elif kind == "binary":
            y = tf.cast(tf.random.stateless_uniform((n, units), s, 0, 2, tf.int64), tf.float32)
        else:
            y = tf.random.stateless_normal((n, units), s)
        return x, y

    return tf.data.Dataset.zip(ds, tf.data.Dataset.range(2**62)).map(add)


def _to_float(x):
    return tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else tf.cast(x, keras.config.floatx())


def _from_arrays(data, batch_size: int, seed: int) -> tf.data.Dataset:
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise DataError(
                f"`data` has {len(x)} inputs but {len(y)} labels; they must match in length."
            )
        arrays = (x, y)
    else:
        arrays = (np.asarray(data),)
    for name, a in zip(("x", "y"), arrays):
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)).ravel()
            raise DataError(
                f"`data` contains NaN or Inf in {name} (examples {bad[:5].tolist()}"
                f"{'...' if len(bad) > 5 else ''}). Clean or drop them before initializing."
            )
    n = len(arrays[0])
    if n == 0:
        raise DataError("`data` is empty (0 examples).")
    ds = tf.data.Dataset.from_tensor_slices(arrays if len(arrays) == 2 else arrays[0])
    ds = ds.shuffle(min(n, 10_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(min(batch_size, n), drop_remainder=True)


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


def make_dataset(
    data, model, loss=None, *, batch_size: Optional[int] = None, seed: int = 0,
    default_batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tuple[tf.data.Dataset, str, LossSpec]:
    """Turn ``data`` into an endless ``tf.data.Dataset`` of ``(x, y)`` batches.

    Builds an unbuilt model from the first batch and resolves the loss (:func:`resolve_loss`).

    Args:
        data: None, a ``tf.data.Dataset``, NumPy ``(x, y)`` or ``x``, or a tfds name.
        model: the model the batches are for (its input shape is used for ``data=None``).
        loss: a Keras loss, or None for the compiled or inferred one.
        batch_size: examples per batch; a batched ``tf.data.Dataset`` keeps its own batch
            size unless this is given.
        default_batch_size: the batch size of unbatched forms when ``batch_size`` is None.
        seed: seed of the shuffling and of random inputs/labels.

    Returns:
        ``(dataset, description, loss_spec)``; the dataset repeats forever, yields ``(x, y)``
        with floating-point inputs and labels in the loss's format.

    Raises:
        DataError: empty data, NaN/Inf in arrays, mismatched lengths, an unloadable tfds name.
        ValueError: ``data=None`` for a model whose input shape is unknown.
    """
    bs = int(batch_size or default_batch_size)
    if bs < 1:
        raise ValueError(f"Argument `batch_size` must be >= 1. Received: batch_size={batch_size}")
    if data is None:
        shapes = _input_shapes(model)
        if not shapes or any(d is None for s in shapes for d in s):
            raise ValueError(
                "`data=None` draws random inputs of the model's input shape, but this model's "
                "input shape is not known. Build the model (e.g. start it with "
                "`keras.Input(shape)`) or pass data."
            )
        loss_spec = resolve_loss(model, loss)
        loss_spec.random_labels = True
        ds = _add_labels(_random_inputs(model, bs, seed), loss_spec, seed, _output_units(model))
        desc = f"random: x ~ N(0, 1), labels uniform ({loss_spec.label_kind}), batch {bs}"
        return ds, desc, loss_spec
    if isinstance(data, str):
        ds, desc = _from_tfds(data, bs, seed), f"tfds:{data} (train split), batch {bs}"
    elif isinstance(data, tf.data.Dataset):
        ds, desc = data, "tf.data.Dataset"
        shapes = _input_shapes(model)
        rank = _element_rank(ds.element_spec[0] if isinstance(ds.element_spec, tuple)
                             else ds.element_spec)
        if shapes and rank is not None and rank == len(shapes[0]):
            ds, desc = ds.batch(bs, drop_remainder=True), f"tf.data.Dataset (unbatched; batched by {bs})"
    else:
        ds = _from_arrays(data, bs, seed)
        n = len(tf.nest.flatten(data)[0])
        desc = f"arrays: {n} examples, batch {min(bs, n)}"
    ds, labelled = _split_labels(ds)
    if isinstance(data, tf.data.Dataset):
        # Equal static batch shapes: the compiled step is traced once, chunks are well defined.
        first = next(iter(ds.take(1)), None)
        n0 = tf.nest.flatten(first)[0].shape[0] if first is not None else bs
        size = int(batch_size or n0)
        ds = ds.unbatch().batch(size, drop_remainder=True)
        desc += f", batch {size}"
    floats = lambda x: tf.nest.map_structure(_to_float, x)  # noqa: E731
    ds = ds.map(lambda x, y: (floats(x), y)) if labelled else ds.map(floats)
    # Emptiness is checked on the finite stream, before it is repeated; the first batch also
    # builds an unbuilt model and tells the output units.
    first = next(iter(ds.take(1)), None)
    if first is None:
        raise DataError(f"`data` is empty: the {desc} yielded no batch (an empty dataset, or "
                        "fewer examples than one batch).")
    x0 = first[0] if labelled else first
    ensure_built(model, x0)
    loss_spec = resolve_loss(model, loss, x0)
    if not labelled:
        loss_spec.random_labels = True
        ds = _add_labels(ds, loss_spec, seed, _output_units(model, x0))
        desc += ", random labels"
    return ds.repeat().prefetch(2), desc, loss_spec
