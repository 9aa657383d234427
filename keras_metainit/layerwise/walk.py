"""The layer walk shared by every layer-wise method.

1. Draw the first batch (NaN/Inf is a :class:`~keras_metainit.data.DataError`).
2. Plan: run the model once on a probe of that batch with the ``call`` of every layer that owns
   a weight of rank >= 2 intercepted (:func:`~keras_metainit.layerwise.activations.intercept`):
   this gives the layers in the order they are called (nested models and blocks included), how
   often each is called (a shared layer is set from all its calls), and what each returned.
   A layer is handled if :func:`~keras_metainit.layerwise.kinds.view_of` knows it, its view
   reproduces its output on the probe, and the method accepts it; every other one is skipped
   with a reason (in its row, and a warning).
3. Draw as many examples as the method needs (:meth:`examples_needed`).
4. For each handled layer in order: read its inputs where it is called (the layers before it
   already have their new weights), let the method set it (:meth:`set_layer`), record the row.
5. On any error, or a ``KeyboardInterrupt``, every variable of every handled layer is restored
   to its value before the call, and the error is raised again: the model is unchanged.

Every run returns one row (a dict) per listed layer: ``name``, ``kind``, ``status`` (``"set"``,
``"set ..."`` with a note, or ``"skipped: <reason>"``), ``calls`` for a shared layer, and what
the method adds, with ``var_before``, ``var_after`` and ``seconds`` for set layers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import keras
import numpy as np
from keras import tree

from keras_metainit import _compat
from keras_metainit.data import DataError
from keras_metainit.layerwise.activations import (
    describe, finite_or_raise, first_input, intercept, layer_inputs, num_examples, take,
    to_numpy, warn,
)
from keras_metainit.layerwise.kinds import LayerView, view_of

__all__ = ["Target", "Run", "ExamplePool", "plan", "walk"]

PROBE = 2  # examples of the planning pass
MAX_DRAW_BYTES = 1 << 28  # no more examples are drawn beyond 256 MB of inputs


@dataclasses.dataclass
class Target:
    """A layer of the plan.

    Attributes:
        layer: the layer.
        index: its position in the plan.
        view: its :class:`~keras_metainit.layerwise.kinds.LayerView` (None when skipped).
        reason: why it is skipped, or None.
        calls: how often the model calls it in one forward pass.
        rows_per_example: kernel rows one example gives it over all its calls (positions of a
            convolution, 1 for a Dense on vectors), the fewest over its stages.
    """

    layer: Any
    index: int
    view: Optional[LayerView] = None
    reason: Optional[str] = None
    calls: int = 0
    rows_per_example: int = 1


@dataclasses.dataclass
class Run:
    """What one walk shares with the method: the model, the loss, the seed and its generator,
    and the number of units of the model's (first) output."""

    model: Any
    loss_spec: Any
    seed: int
    rng: np.random.Generator
    output_units: Optional[int]


def _own_kernels(layer) -> bool:
    """Whether the layer itself (not a sublayer) owns a weight of rank >= 2."""
    inner = {id(w) for sub in _compat.flatten_layers(layer, include_self=False)
             for w in sub.weights}
    return any(len(w.shape) >= 2 and id(w) not in inner for w in layer.weights)


def _matches(view: LayerView, calls) -> Optional[str]:
    """None if the view reproduces every recorded call, else the reason it does not."""
    for x, out in calls:
        ref = to_numpy(out).astype(np.float32)
        got = np.asarray(view.output(x), np.float32)
        if got.shape != ref.shape:
            return f"its output shape {ref.shape} is not the view's {got.shape}"
        tol = 1e-3 if ref.dtype == np.float32 and np.asarray(x).dtype == np.float32 else 3e-2
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        if np.max(np.abs(got - ref), initial=0.0) > tol * (scale + 1e-6):
            return "its output is not the linear map of its weights (it overrides `call`?)"
    return None


def plan(model: keras.Model, probe, method) -> Tuple[List[Target], Any]:
    """The layers to set or skip, in the order the model calls them.

    Args:
        model: any Keras model.
        probe: a few examples of the model's input (any nest).
        method: the layer-wise method (its :meth:`skip_reason` may refuse a layer).

    Returns:
        ``(targets, output)``: the plan and the model's output on the probe.
    """
    candidates = [layer for layer in _compat.flatten_layers(model) if _own_kernels(layer)]
    records: Dict[int, List[Tuple[Any, Any]]] = {}
    order: List[Any] = []

    def record(layer, args, kwargs, out):
        if id(layer) not in records:
            order.append(layer)
        x = first_input(args, kwargs)
        try:
            x = to_numpy(x)
        except Exception:  # noqa: BLE001 - not one eager tensor
            x = None
        records.setdefault(id(layer), []).append((x, out))

    output = None
    with intercept(candidates, record):
        output = model(probe, training=False)
    called = {id(layer) for layer in order}
    targets = []
    for layer in order + [c for c in candidates if id(c) not in called]:
        t = Target(layer, len(targets), calls=len(records.get(id(layer), [])))
        view = view_of(layer)
        if t.calls == 0:
            t.reason = "not called by the model's forward pass"
        elif isinstance(view, str):
            t.reason = view
        elif any(x is None for x, _ in records[id(layer)]):
            t.reason = "its input is not one tensor"
        else:
            try:
                t.reason = _matches(view, records[id(layer)]) or method.skip_reason(view)
            except Exception as e:  # noqa: BLE001 - a view that cannot run on it
                t.reason = f"its linear view does not apply ({type(e).__name__}: {e})"
        if t.reason is None:
            t.view = view
            t.rows_per_example = min(
                sum(s.rows_per_example(view.stage_inputs(x, i)) for x, _ in records[id(layer)])
                for i, s in enumerate(view.stages) if s.has_matrix_view
            ) if any(s.has_matrix_view for s in view.stages) else 1
        targets.append(t)
    return targets, output


class ExamplePool:
    """Distinct examples drawn from a stream of ``(x, y)`` batches, as needed.

    Draws until the pool holds ``n`` examples, the stream is exhausted or repeats itself (a
    batch brings nothing new), or ``MAX_DRAW_BYTES`` of inputs are held (beyond the first batch).

    Args:
        dataset: an iterable of ``(x, y)`` batches (``x`` and ``y`` any nests of arrays).
    """

    def __init__(self, dataset):
        self._it = iter(dataset)
        self._seen: set = set()
        self._xs: List[Any] = []
        self._ys: List[Any] = []
        self._bytes = 0
        self._done = False
        self.first_batch = 0

    def _pull(self) -> bool:
        try:
            x, y = next(self._it)
        except StopIteration:
            return False
        x = tree.map_structure(np.asarray, x)
        y = tree.map_structure(np.asarray, y)
        leaves = tree.flatten(x)
        if any(a.dtype.kind == "f" and not np.all(np.isfinite(a)) for a in leaves):
            raise DataError("A batch of `data` contains NaN or Inf; the model is unchanged.")
        n = num_examples(x)
        self.first_batch = self.first_batch or n
        flat = [a.reshape(n, -1) for a in leaves]
        keep = []
        for i in range(n):
            key = hashlib.blake2b(b"".join(a[i].tobytes() for a in flat), digest_size=16).digest()
            if key not in self._seen:
                self._seen.add(key)
                keep.append(i)
        if not keep:
            return False
        keep = np.asarray(keep)
        self._xs.append(tree.map_structure(lambda a: a[keep], x))
        self._ys.append(tree.map_structure(lambda a: a[keep], y))
        self._bytes += sum(a[keep].nbytes for a in flat)
        return True

    def draw(self, n: int) -> Tuple[Any, Any]:
        """``(x, y)`` with at least ``n`` examples if the stream has them (NumPy nests)."""
        while not self._done and (not self._xs or (len(self._seen) < n
                                                   and self._bytes < MAX_DRAW_BYTES)):
            if not self._pull():
                self._done = True
        if not self._xs:
            raise DataError("`data` yielded no batch.")
        if len(self._xs) > 1:  # keep one concatenated part
            cat = lambda *a: np.concatenate(a)  # noqa: E731
            self._xs = [tree.map_structure(cat, *self._xs)]
            self._ys = [tree.map_structure(cat, *self._ys)]
        return self._xs[0], self._ys[0]


def walk(model: keras.Model, dataset, method, loss_spec=None, *, seed: int = 0,
         progress: Optional[Callable[[int], Any]] = None) -> List[Dict[str, Any]]:
    """Set the layers of ``model`` in place with a layer-wise method, one at a time, in order.

    Args:
        model: any Keras model, built (Sequential, Functional or subclassed).
        dataset: an iterable of ``(x, y)`` batches; ``x`` any nest the model takes.
        method: a :class:`~keras_metainit.methods.LayerwiseMethod`.
        loss_spec: the :class:`~keras_metainit.losses.LossSpec` of the run, or None.
        seed: the seed of the run.
        progress: called with the number of rows once planned; returns an object with
            ``update(current, values)`` (or None).

    Returns:
        One row per listed layer (see the module docstring).

    Raises:
        DataError: a batch with NaN or Inf, or no batch.
        LayerwiseError: a layer could not be set (the model is restored first).
    """
    title = type(method).__name__
    pool = ExamplePool(dataset)
    x, y = pool.draw(1)
    first = pool.first_batch
    targets, output = plan(model, take(x, 0, min(PROBE, first)), method)
    units = None
    try:
        units = int(tree.flatten(output)[0].shape[-1])
    except Exception:  # noqa: BLE001
        pass
    run = Run(model, loss_spec, int(seed), np.random.default_rng(int(seed)), units)
    method.prepare(run)
    handled = [t for t in targets if t.reason is None]
    for t in targets:
        if t.reason is not None:
            warn(f"{title}: skipped layer {describe(t.layer)}: {t.reason}.")
    if targets and not handled:
        warn(f"{title}: no layer of model {model.name!r} could be set; the model is unchanged.")
    if handled:
        x, y = pool.draw(max(method.examples_needed(t, first) for t in handled))
    total = num_examples(x)
    bar = progress(len(targets)) if progress is not None else None
    snapshot = [(v, v.numpy()) for t in handled for v in t.layer.weights]
    rows: List[Dict[str, Any]] = []
    try:
        for t in targets:
            row: Dict[str, Any] = {"name": t.layer.name, "kind": type(t.layer).__name__}
            if t.reason is not None:
                row["status"] = f"skipped: {t.reason}"
            else:
                start = time.perf_counter()
                m = min(total, method.examples_needed(t, first))
                inputs = layer_inputs(model, t.layer, take(x, 0, m), calls=t.calls)
                finite_or_raise(inputs, t.layer, "input activations")
                labels = tree.map_structure(lambda a: a[:m], y)
                row.update(method.set_layer(t, inputs, labels, run))
                if t.calls > 1:
                    row["calls"] = t.calls
                row["seconds"] = time.perf_counter() - start
            rows.append(row)
            if bar is not None:
                bar.update(len(rows), {"var": float(row.get("var_after", float("nan")))})
    except BaseException:
        for v, value in snapshot:
            v.assign(value)
        raise
    return rows
