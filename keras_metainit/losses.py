"""The model's loss: one Keras loss per output, resolved.

:func:`resolve_loss` resolves one loss per output (the argument, the compiled loss with its
``loss_weights``, or one inferred from each output layer) into a :class:`LossSpec` whose
:meth:`LossSpec.per_example` is the weighted sum of the per-output losses, one value per example;
:func:`check_labels` checks labels against the outputs (class indices in range, one-hot width).

Each loss is evaluated per example by :func:`keras_metainit.exact_losses.per_example` (exact
higher-order derivatives on every backend).
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Optional

import keras
import numpy as np
from keras import ops, tree

from keras_metainit._compat import compile_utils
from keras_metainit.exact_losses import per_example

__all__ = ["LossSpec", "OutputLoss", "resolve_loss", "check_labels"]

Tensor = Any  # a backend tensor


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
    y_pred = ops.cast(y_pred, dtype)
    y_true = ops.cast(y_true, dtype)  # as keras.losses.Loss.__call__ does
    out = ops.cast(per_example(fn, y_true, y_pred), dtype)  # exact higher-order derivatives
    if len(out.shape) > 1:
        out = ops.mean(out, axis=tuple(range(1, len(out.shape))))
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
        dtype = "float64" if keras.backend.standardize_dtype(first.dtype) == "float64" \
            else "float32"
        if not self.multi_output:
            return _per_example(self.fn, tree.flatten(y_true)[0] if tree.is_nested(y_true)
                                else y_true, first, dtype)
        y_true = self.align_targets(y_true, y_pred)
        total = None
        for o in self.outputs:
            value = _per_example(o.fn, self._at(y_true, o.path), self._at(y_pred, o.path), dtype)
            if o.weight is not None:
                value = value * o.weight
            total = value if total is None else total + value
        return total


def model_graph(model):
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
    while layer is not None and isinstance(layer, keras.Model) and model_graph(layer) is not None:
        g = model_graph(layer)
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


def symbolic_outputs(model, x=None):
    """The model's output structure: symbolic tensors when known, else the outputs on ``x``."""
    g = model_graph(model)
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
    y_pred = symbolic_outputs(model, x)
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
        elif model_graph(model) is None:
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
        a = ops.convert_to_numpy(t)
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
