"""Every form and structure of data a Keras user has, turned into one stream of ``(x, y)`` batches.

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

Sample weights are ignored (the objectives weigh every example alike); the description says so.
Inputs reach the model as ``model.fit`` gives them: NumPy floating arrays are cast to ``floatx``
(as Keras's array adapter does), nothing else is touched; in particular ``uint8`` images are *not*
rescaled (a model that expects [0, 1] has its own ``Rescaling`` layer, as keras.applications do).

Losses: :func:`resolve_loss` resolves one loss per output (the argument, the compiled loss with its
``loss_weights``, or one inferred from each output layer) into a :class:`LossSpec` whose
:meth:`LossSpec.per_example` is the weighted sum of the per-output losses, one value per example.
Labels are checked against the outputs before any step (class indices in range, one-hot width).
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
from keras import tree
from keras.src.trainers import compile_utils
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_metainit import losses

__all__ = ["LossSpec", "OutputLoss", "resolve_loss", "make_dataset", "ensure_built", "DataError"]

DEFAULT_BATCH_SIZE = 128
# Integer inputs that feed no Embedding (or similar layer with a known vocabulary) draw from [0, 2).
DEFAULT_INT_HIGH = 2


class DataError(ValueError):
    """Raised for data that cannot be used: empty, non-finite, wrong shapes."""


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------
def _label_kind(fn) -> str:
    names = [getattr(fn, "name", None), getattr(fn, "__name__", None), type(fn).__name__,
             getattr(getattr(fn, "fn", None), "__name__", None)]
    name = " ".join(n for n in names if n).lower()
    if "sparse_categorical" in name or "sparsecategorical" in name:
        return "sparse"
    if "categorical" in name or "kl_divergence" in name or "kldivergence" in name:
        return "onehot"
    if "binary" in name or "hinge" in name:
        return "binary"
    return "regression"


def _loss_name(fn) -> str:
    name = getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
    kwargs = getattr(fn, "_fn_kwargs", None) or {}
    if getattr(fn, "fn", None) is not None and kwargs.get("from_logits"):
        name += "(from_logits=True)"
    elif getattr(fn, "from_logits", False):
        name += "(from_logits=True)"
    return name


def _per_example(fn, y_true, y_pred, dtype):
    """Unreduced loss of one output, one value per example (non-batch axes averaged)."""
    y_pred = tf.cast(y_pred, dtype)
    y_true = tf.cast(y_true, dtype)  # as keras.losses.Loss.__call__ does
    out = losses.per_example(fn, y_true, y_pred)  # exact higher-order derivatives
    out = tf.cast(out, dtype)
    if out.shape.rank is not None and out.shape.rank > 1:
        out = tf.reduce_mean(out, axis=list(range(1, out.shape.rank)))
    return out


@dataclasses.dataclass
class OutputLoss:
    """The loss of one model output.

    Attributes:
        path: where the output sits in the model's output structure (``()`` for one output).
        fn: the Keras loss.
        weight: its ``loss_weights`` entry, or None (= 1).
        name: the output's name.
        label_kind: ``"sparse"``, ``"onehot"``, ``"binary"`` or ``"regression"``.
        units: the output's last-axis width (None when unknown).
    """

    path: tuple
    fn: Any
    weight: Optional[float] = None
    name: str = ""
    label_kind: str = "regression"
    units: Optional[int] = None


def _align(y_true, y_pred, output_names, with_loss):
    """``y_true`` in the structure of ``y_pred``, as Keras's CompileLoss reconciles them: lists vs
    tuples, a dict of targets by output name, one target for a one-output list, or targets for
    only the outputs that have a loss (then keyed by their paths)."""
    if not tree.is_nested(y_pred):
        if tree.is_nested(y_true):
            flat = tree.flatten(y_true)
            if len(flat) != 1:
                raise ValueError(f"The model has one output but the data has {len(flat)} "
                                 "targets per example.")
            return flat[0]
        return y_true
    if not tree.is_nested(y_true):
        y_true = [y_true]
    if isinstance(y_true, dict) and not isinstance(y_pred, dict) and output_names:
        missing = [n for n in output_names if n not in y_true]
        if not missing:
            y_true = [y_true[n] for n in output_names]
        elif len(with_loss) == len(y_true) and all(
                isinstance(p[0], int) and output_names[p[0]] in y_true for p in with_loss):
            return {p: y_true[output_names[p[0]]] for p in with_loss}
        else:
            raise ValueError(f"Targets given as a dict need one entry per output "
                             f"{list(output_names)}; missing {missing}. Received keys: "
                             f"{sorted(y_true)}")
    if isinstance(y_pred, dict) and isinstance(y_true, dict):
        missing = [k for k in y_pred if k not in y_true]
        if missing and len(y_true) != len(with_loss):
            raise ValueError(f"Targets given as a dict need one entry per output "
                             f"{list(y_pred)}; missing {missing}.")
        return {k: y_true[k] for k in y_pred if k in y_true}
    flat_true, flat_pred = tree.flatten(y_true), tree.flatten(y_pred)
    if len(flat_true) == len(flat_pred):
        return tree.pack_sequence_as(y_pred, flat_true)
    if len(flat_true) == len(with_loss):  # targets only for the outputs that have a loss
        return {path: t for path, t in zip(with_loss, flat_true)}
    raise ValueError(
        f"The model has {len(flat_pred)} outputs ({len(with_loss)} with a loss) but the data "
        f"has {len(flat_true)} targets per example. Pass one target per output, as for "
        "`model.fit`."
    )


@dataclasses.dataclass
class LossSpec:
    """The loss resolved to a per-example function and the label format(s) it expects.

    Attributes:
        fn: the Keras loss of the first output (the only one for a single-output model).
        label_kind: label format of the first output: ``"sparse"`` (integer classes),
            ``"onehot"``, ``"binary"`` or ``"regression"``.
        origin: where the loss came from: ``"argument"``, ``"compiled"`` or ``"inferred"``.
        random_labels: the data had no labels and random ones are drawn (methods that need
            real labels, such as Sylvester with ``latent="labels"``, refuse them).
        outputs: one :class:`OutputLoss` per output that has a loss; by default the single
            output ``fn``.
        output_names: names of the model's outputs, to match a dict of targets.
    """

    fn: Any
    label_kind: str
    origin: str
    random_labels: bool = False
    outputs: Optional[List[OutputLoss]] = None
    output_names: Optional[List[str]] = None
    output_struct: Any = None  # the model's output structure, leaves replaced by their index

    def __post_init__(self):
        if self.outputs is None:
            self.outputs = [OutputLoss((), self.fn, None, "", self.label_kind)]

    @property
    def multi_output(self) -> bool:
        return len(self.outputs) > 1 or bool(self.outputs and self.outputs[0].path)

    @property
    def name(self) -> str:
        if not self.multi_output:
            return _loss_name(self.fn)
        parts = []
        for o in self.outputs:
            w = "" if o.weight is None else f" x{o.weight:g}"
            parts.append(f"{o.name}: {_loss_name(o.fn)}{w}")
        return " + ".join(parts)

    def align_targets(self, y_true, y_pred):
        """``y_true`` in the structure of ``y_pred`` (lists vs tuples, dicts by output name)."""
        return _align(y_true, y_pred, self.output_names, [o.path for o in self.outputs])

    @staticmethod
    def _at(struct, path):
        if isinstance(struct, dict) and path in struct:  # targets keyed by output path
            return struct[path]
        for p in path:
            struct = struct[p]
        return struct

    def per_example(self, y_true, y_pred):
        """Unreduced loss, one value per example (float32, or float64 for a float64 model): the
        sum over outputs of ``loss_weight × loss``, each averaged over its non-batch axes. Its
        batch mean is Keras's compiled loss (``sum_over_batch_size`` reduction)."""
        first = tree.flatten(y_pred)[0]
        dtype = tf.float64 if first.dtype == tf.float64 else tf.float32
        if not self.multi_output:
            return _per_example(self.fn, tree.flatten(y_true)[0] if tree.is_nested(y_true)
                                else y_true, first, dtype)
        y_true = self.align_targets(y_true, y_pred)
        total = None
        for o in self.outputs:
            value = _per_example(o.fn, self._at(y_true, o.path), self._at(y_pred, o.path), dtype)
            if o.weight is not None:
                value = value * tf.cast(o.weight, dtype)
            total = value if total is None else total + value
        return total


def _graph(model):
    """The functional graph of a model (a Sequential's inner one), or None (subclassed)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if getattr(model, "_nodes_by_depth", None) is not None and getattr(model, "_inputs_struct",
                                                                        None) is not None:
        return model
    return None


def _producing_layer(tensor):
    history = getattr(tensor, "_keras_history", None)
    layer = history.operation if history is not None else None
    while layer is not None and isinstance(layer, keras.Model) and _graph(layer) is not None:
        g = _graph(layer)
        outs = tree.flatten(g._outputs_struct)
        index = history.tensor_index if len(outs) > 1 else 0
        history = getattr(outs[index], "_keras_history", None)
        layer = history.operation if history is not None else None
    return layer


def _output_layer(model):
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    if layer is not None and hasattr(layer, "layers") and layer.layers:  # nested model
        return _output_layer(layer)
    return layer


def _infer_loss(layer, units: Optional[int]):
    """The loss for one output, from the activation of the layer that computes it."""
    if isinstance(layer, keras.layers.Softmax):
        act = "softmax"
    else:
        act = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if act == "softmax":
        return keras.losses.SparseCategoricalCrossentropy()
    if act == "sigmoid" and units == 1:
        return keras.losses.BinaryCrossentropy()
    if units is not None and units > 1 and act == "linear":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def _symbolic_outputs(model, x=None):
    """The model's output structure: symbolic tensors when known, else the outputs on ``x``."""
    g = _graph(model)
    if g is not None:
        return g._outputs_struct
    if x is None:
        raise ValueError("Cannot tell the outputs of this model without data: build it (e.g. "
                         "start it with `keras.Input(shape)`) or pass data.")
    return model(x, training=False)


def _units(t) -> Optional[int]:
    d = t.shape[-1] if len(t.shape) else None
    return int(d) if d is not None else None


def _output_names(model, y_pred) -> List[str]:
    names = list(getattr(model, "output_names", None) or [])
    flat = tree.flatten(y_pred)
    if len(names) != len(flat):
        if isinstance(y_pred, dict):
            names = list(y_pred.keys())
        else:
            names = [getattr(getattr(t, "_keras_history", None), "operation", None) for t in flat]
            names = [getattr(op, "name", None) or f"output_{i}" for i, op in enumerate(names)]
    return names


def resolve_loss(model, loss=None, x=None, y=None) -> LossSpec:
    """The loss ``meta_initialize`` uses: the argument, else the compiled loss (with its
    ``loss_weights``), else inferred for each output.

    Inference from each output layer's activation: softmax → sparse categorical cross-entropy;
    sigmoid with one unit → binary cross-entropy; a linear layer with several units → sparse
    categorical cross-entropy from logits; otherwise mean squared error. A subclassed model with
    several outputs needs the loss as an argument (or compiled).

    Args:
        model: the model (built, or buildable on ``x``).
        loss: a Keras loss, or a list / dict of them (one per output), or None.
        x: a batch of inputs, to call a model whose outputs are not known symbolically.
        y: a batch of targets, to resolve ``"crossentropy"``-style names as Keras does.
    """
    y_pred = _symbolic_outputs(model, x)
    names = _output_names(model, y_pred)
    weights = None
    if loss is not None:
        user, origin = loss, "argument"
    elif getattr(model, "loss", None) is not None:
        user, origin = model.loss, "compiled"
        compiled = getattr(model, "_compile_loss", None)
        weights = getattr(compiled, "_user_loss_weights", None)
    else:
        origin = "inferred"
        if not tree.is_nested(y_pred) or len(tree.flatten(y_pred)) == 1:
            first = tree.flatten(y_pred)[0]
            layer = _producing_layer(first) or _output_layer(model)
            user = _infer_loss(layer, _units(first))
        elif _graph(model) is None:
            raise ValueError(
                "Cannot infer a loss for each output of this subclassed model with "
                f"{len(tree.flatten(y_pred))} outputs. Pass the loss as `loss=` (one per output, "
                "a list or a dict by output name) or compile the model."
            )
        else:
            user = tree.map_structure(lambda t: _infer_loss(_producing_layer(t), _units(t)),
                                      y_pred)
    if isinstance(user, (list, tuple, dict)) and not tree.is_nested(y_pred) and \
            len(tree.flatten(user)) == 1:
        user = tree.flatten(user)[0]
    if not isinstance(user, (list, tuple, dict)) and not isinstance(user, keras.losses.Loss) \
            and not callable(user) and not isinstance(user, str):
        raise ValueError(f"Argument `loss` could not be interpreted. Received: loss={loss!r}")
    compile_loss = compile_utils.CompileLoss(user, weights, output_names=names)
    try:
        y_stand_in = y_pred if y is None else y
        if y is not None and tree.is_nested(y_pred):
            y_stand_in = _align(y, y_pred, names, [(i,) for i in range(len(names))])
        compile_loss.build(y_stand_in, y_pred)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"Could not match the loss {user!r} to the model's outputs {names}: {e}"
        ) from e
    outputs = []
    for path, fn, weight, name in compile_loss._flat_losses:
        if fn is None:
            continue
        path = tuple(path)
        if path and isinstance(path[0], str) and not isinstance(y_pred, dict):
            path = (names.index(path[0]),) + path[1:]  # CompileLoss keyed a list by output name
        out = LossSpec._at(y_pred, path)
        out_name = names[_flat_index(y_pred, path)] if tree.is_nested(y_pred) else (
            names[0] if names else name)
        outputs.append(OutputLoss(path, fn, None if weight is None else float(weight),
                                  out_name, _label_kind(fn), _units(out)))
    if not outputs:
        raise ValueError(f"No output of the model has a loss. Received: loss={user!r}")
    struct = tree.pack_sequence_as(y_pred, list(range(len(tree.flatten(y_pred)))))
    return LossSpec(fn=outputs[0].fn, label_kind=outputs[0].label_kind, origin=origin,
                    outputs=outputs, output_names=names, output_struct=struct)


def _flat_index(struct, path) -> int:
    paths = [p for p, _ in tree.flatten_with_path(struct)]
    return paths.index(tuple(path))


def check_labels(loss_spec: LossSpec, y) -> None:
    """Refuse labels that the outputs cannot take: class indices outside ``[0, units)`` for a
    sparse loss, one-hot targets of another width. Raises ``ValueError`` naming both."""
    if y is None:
        return
    if loss_spec.multi_output:
        try:
            y = loss_spec.align_targets(y, loss_spec.output_struct)
        except ValueError:
            return  # the loss function will complain about the structure
    for o in loss_spec.outputs:
        units = o.units
        if units is None or o.label_kind not in ("sparse", "onehot"):
            continue
        t = LossSpec._at(y, o.path) if loss_spec.multi_output else (
            tree.flatten(y)[0] if tree.is_nested(y) else y)
        a = np.asarray(t)
        where = f"output {o.name!r} ({_loss_name(o.fn)})" if o.name else _loss_name(o.fn)
        if o.label_kind == "sparse":
            if a.size == 0:
                continue
            ignore = getattr(o.fn, "ignore_class", None)
            if ignore is None:
                ignore = (getattr(o.fn, "_fn_kwargs", None) or {}).get("ignore_class")
            vals = a[a != ignore] if ignore is not None else a
            if vals.size == 0:
                continue
            lo, hi = vals.min(), vals.max()
            if lo < 0 or hi >= units or (a.dtype.kind == "f" and np.any(vals != np.round(vals))):
                raise ValueError(
                    f"Labels for {where} must be class indices in [0, {units - 1}] (the output "
                    f"has width {units}); received labels in [{lo:g}, {hi:g}]. Check the number "
                    "of units of the output layer, or the labels."
                )
        elif a.ndim >= 1 and a.shape[-1] != units:
            raise ValueError(
                f"One-hot labels for {where} must have width {units} (the output has width "
                f"{units}); received labels of width {a.shape[-1]} (shape {a.shape}). For class "
                "indices use a sparse categorical loss."
            )


# ----------------------------------------------------------------------------------------------
# Model inputs
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _InputSpec:
    name: str
    shape: tuple  # per example
    dtype: str
    high: Optional[int] = None  # integer tokens drawn from [0, high)


def _vocabulary_size(layer) -> Optional[int]:
    for attr in ("input_dim", "num_tokens"):
        v = getattr(layer, attr, None)
        if isinstance(v, (int, np.integer)) and v > 0:
            return int(v)
    return None


def _input_specs(model) -> Optional[List[_InputSpec]]:
    """Per-example shape, dtype and token range of every input, in ``tree.flatten`` order of the
    model's input structure; None when unknown."""
    g = _graph(model)
    if g is not None:
        inputs = tree.flatten(g._inputs_struct)
        consumers = {}
        for nodes in g._nodes_by_depth.values():
            for node in nodes:
                for t in node.input_tensors:
                    consumers.setdefault(id(t), []).append(node)
        specs = []
        for t in inputs:
            high = None
            queue, seen = [t], set()
            while queue:  # downstream while the values are still the raw (integer) input
                cur = queue.pop()
                if id(cur) in seen:
                    continue
                seen.add(id(cur))
                for node in consumers.get(id(cur), []):
                    size = _vocabulary_size(node.operation)
                    if size is not None and not isinstance(node.operation, keras.Model):
                        high = size if high is None else min(high, size)
                        continue
                    for out in node.output_tensors:
                        if "int" in str(out.dtype):
                            queue.append(out)
            specs.append(_InputSpec(t.name, tuple(t.shape[1:]), str(t.dtype), high))
        return specs
    if getattr(model, "built", False) and getattr(model, "_build_shapes_dict", None):
        shapes = list(model._build_shapes_dict.values())
        if all(isinstance(s, (tuple, list)) and (not s or not isinstance(s[0], (tuple, list)))
               for s in shapes):
            return [_InputSpec(f"input_{i}", tuple(s[1:]), keras.config.floatx())
                    for i, s in enumerate(shapes)]
    return None


def _input_struct(model):
    g = _graph(model)
    if g is not None:
        return tree.lists_to_tuples(g._inputs_struct)
    specs = _input_specs(model)
    return None if specs is None or len(specs) == 1 else tuple(range(len(specs)))


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
    specs = _input_specs(model)
    struct = _input_struct(model)

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
    return data_adapter_utils.unpack_x_y_sample_weight(data)


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


def _from_arrays(x, y, batch_size: int, seed: int) -> Tuple[tf.data.Dataset, int]:
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
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
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
    """Elements as ``(x, y)`` when the data has labels, else ``x``; whether it has labels; whether
    sample weights were dropped."""
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
            return ds.map(lambda x, y, w: (x, y)), True, True
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
        in the structures of the data (inputs as ``model.fit`` would pass them), labels in each
        loss's format.

    Raises:
        DataError: empty data, NaN/Inf in arrays, mismatched lengths, an unloadable tfds name.
        ValueError: ``data=None`` for a model whose input shape is unknown; labels out of range
            of the outputs (class indices beyond the output width, one-hot of another width).
    """
    bs = int(batch_size or default_batch_size)
    if bs < 1:
        raise ValueError(f"Argument `batch_size` must be >= 1. Received: batch_size={batch_size}")
    specs = _input_specs(model)
    labelled, dropped_weights, y_all = True, False, None
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
        ds, labelled, dropped_weights = _split_dataset(data, specs)
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
    else:
        x, y, w = _unpack(data, specs)
        dropped_weights = w is not None
        labelled = y is not None
        ds, n = _from_arrays(x, y, bs, seed)
        y_all = _floatx_arrays(y) if labelled else None
        desc = f"arrays: {n} examples, batch {min(bs, n)}"
    if dropped_weights:
        desc += ", sample weights ignored"
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
        y_pred = _symbolic_outputs(model, x0)
        ds = _add_labels(ds, loss_spec, seed, y_pred)
        kinds = sorted({o.label_kind for o in loss_spec.outputs})
        desc += f", labels random ({', '.join(kinds)})"
    return ds.repeat().prefetch(2), desc, loss_spec
