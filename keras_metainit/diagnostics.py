"""Diagnostics a user prints, plots and asserts on: the gradient quotient and GradCosine of a model
on one batch, the RMS of every layer's output (:func:`layer_signal`), and :func:`diagnose`, which
checks them all against :class:`HealthLimits` (what ``keras-metainit diagnose`` prints)."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List

import keras
import numpy as np

from keras_metainit import data as data_lib
from keras_metainit import losses, objectives
from keras_metainit.model_fn import make_loss_fn

__all__ = ["gradient_quotient", "grad_cosine", "layer_signal", "HealthLimits", "diagnose"]


def _batch_and_loss(model, batch, loss, training=False):
    x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
    if y is None:
        raise ValueError("Diagnostics need a labelled batch `(x, y)`.")
    x = keras.tree.map_structure(lambda a: keras.ops.convert_to_tensor(a, keras.config.floatx())
                                 if np.asarray(a).dtype.kind == "f"
                                 else keras.ops.convert_to_tensor(a), x)
    data_lib.ensure_built(model, x)
    spec = losses.resolve_loss(model, loss, x)
    params = [v.value for v in model.trainable_variables]
    return (x, keras.ops.convert_to_tensor(y)), _cached_loss_fn(model, spec, training), params


def _cached_loss_fn(model, spec: losses.LossSpec, training: bool):
    """:func:`make_loss_fn`, kept on the model: repeated diagnostics (say, every epoch) reuse
    its trace instead of tracing a new function each time. The key holds everything the
    function depends on: the loss, the label format, the mode and the model's variables."""
    fn = spec.fn
    try:
        config = repr(sorted(fn.get_config().items()))
    except Exception:  # a plain function or a loss without a config
        config = id(fn)
    key = (type(fn).__name__, getattr(fn, "__name__", None), config, spec.label_kind, training,
           tuple((id(v), v.trainable) for v in model.variables))
    cache = model.__dict__.get("_keras_metainit_loss_fns")
    if cache is None:
        cache = {}
        object.__setattr__(model, "_keras_metainit_loss_fns", cache)  # not tracked by Keras
    if key not in cache:
        cache[key] = make_loss_fn(model, spec, training)
    return cache[key]


def gradient_quotient(model: keras.Model, batch, loss: Any = None, eps: float = 1e-5) -> float:
    """The gradient quotient of ``model`` on one batch (MetaInit's objective).

    ``GQ = mean_i |(g_i - (Hg)_i) / (g_i + eps·sign(g_i)) - 1|`` over all trainable scalars, with
    ``Hg`` the Hessian-gradient product. 0 means one gradient step would not change the
    gradient (a locally linear landscape); large values flag a hard start.

    Args:
        model: a Keras model (normalization layers in inference mode, dropout off).
        batch: ``(x, y)`` arrays or tensors.
        loss: a Keras loss; default the compiled loss, else inferred.
        eps: the quotient's ε; 1e-5 is the paper's. ``MetaInit`` minimizes GQ with its own
            ``eps`` (default 1e-2, see there), so the GQ in its report differs from this value
            unless both use the same ε.

    Returns:
        GQ as a Python float.

    Examples:
        >>> import keras, keras_metainit, numpy as np
        >>> deep = keras.Sequential([keras.Input((8,))] + [keras.layers.Dense(16, "relu")
        ...                          for _ in range(6)] + [keras.layers.Dense(3)])
        >>> batch = (np.random.rand(32, 8).astype("float32"), np.arange(32) % 3)
        >>> keras_metainit.gradient_quotient(deep, batch) > 0
        True

    Reference:
        Dauphin & Schoenholz, NeurIPS 2019, eq. 1.
    """
    batch, loss_fn, params = _batch_and_loss(model, batch, loss)
    gq, _ = objectives.gradient_quotient(loss_fn, params, batch, eps)
    return float(gq)


def grad_cosine(model: keras.Model, batch, loss: Any = None, splits: int = 4,
                overlap: float = 0.2) -> Dict[str, float]:
    """GradCosine of ``model`` on one batch (NIO's objective).

    The mean pairwise cosine between the gradients of ``splits`` overlapping chunks of the batch
    (normalization layers on batch statistics, dropout off), and the mean chunk-gradient norm.

    Args:
        model: a Keras model.
        batch: ``(x, y)`` arrays or tensors; its size must allow ``splits`` chunks.
        loss: a Keras loss; default the compiled loss, else inferred.
        splits: number of chunks D.
        overlap: overlap ratio r of the chunks.

    Returns:
        ``{"gc": cosine, "gn": mean chunk-gradient norm}``.

    Reference:
        Yang et al., "Towards Theoretically Inspired Neural Initialization Optimization",
        NeurIPS 2022.
    """
    batch, loss_fn, params = _batch_and_loss(model, batch, loss, training=True)
    gc, gn, _, _ = objectives.grad_cosine(loss_fn, params, batch, splits, overlap,
                                          loss_fn.examples_independent)
    return {"gc": float(gc), "gn": float(gn)}


def layer_signal(model: keras.Model, x) -> List[Dict[str, Any]]:
    """RMS of every layer's output on ``x``, in inference mode.

    Args:
        model: a Sequential or Functional Keras model.
        x: its input (an array, or a list of arrays for several inputs).

    Returns:
        ``[{"name": layer name, "rms": float}, ...]``, in layer order (input layers left out).
    """
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs, [l.output for l in layers])
    outputs = probe(x, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    rows = []
    for layer, out in zip(layers, outputs):
        out = keras.ops.convert_to_numpy(out).astype("float64")
        rows.append({"name": layer.name, "rms": float(np.sqrt(np.mean(out ** 2)))})
    return rows


@dataclasses.dataclass(frozen=True)
class HealthLimits:
    """What :func:`diagnose` (and ``keras-metainit diagnose --fail-if-unhealthy``) accepts.

    Attributes:
        max_gq: largest gradient quotient (MetaInit's objective). He-normal ReLU MLPs measure
            about 1e2 to 4e2 (6 to 20 layers), kernels 1.5 x He about 2e3 (6 layers) and far
            more when deeper. A network whose signal vanishes also has GQ near 1 (its gradients
            are all near 0), so a low GQ alone is not health: the signal ratio catches that.
        min_signal: smallest ratio of the last layer's output RMS to the input RMS.
        max_signal: largest such ratio.
    """

    max_gq: float = 1e3
    min_signal: float = 1e-3
    max_signal: float = 1e3


def diagnose(model: keras.Model, batch, limits: HealthLimits = HealthLimits()) -> Dict[str, Any]:
    """Gradient quotient, GradCosine and per-layer signal of ``model`` on ``batch``.

    Args:
        model: a Keras model with one input (Sequential or Functional).
        batch: ``(x, y)``.
        limits: the health thresholds.

    Returns:
        ``{"gq", "gc", "gn", "input_rms", "layers", "signal_ratio", "problems", "healthy"}``;
        ``problems`` lists what is outside ``limits`` or not finite.

    Examples:
        >>> import keras, keras_metainit, numpy as np
        >>> inputs = keras.Input((8,))
        >>> model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, "tanh")(inputs)))
        >>> rng = np.random.default_rng(0)
        >>> batch = (rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64))
        >>> result = keras_metainit.diagnose(model, batch)
        >>> result["healthy"], result["problems"]
        (True, [])
        >>> _ = model.layers[-1].kernel.assign(1e4 * model.layers[-1].kernel)  # a bad start
        >>> result = keras_metainit.diagnose(model, batch)
        >>> result["healthy"], [p for p in result["problems"] if "RMS ratio" in p]
        (False, ['output/input RMS ratio ... outside [0.001, 1000]'])
    """
    x, y = batch
    gq = gradient_quotient(model, (x, y))
    gc = grad_cosine(model, (x, y))
    layers = layer_signal(model, x)
    input_rms = float(np.sqrt(np.mean(np.asarray(x, "float64") ** 2)))
    ratio = layers[-1]["rms"] / input_rms if layers and input_rms > 0 else float("nan")
    problems = []
    values = {"gq": gq, "gc": gc["gc"], "gn": gc["gn"], "signal ratio": ratio,
              **{f"rms {r['name']}": r["rms"] for r in layers}}
    problems += [f"{k} is not finite ({v})" for k, v in values.items() if not math.isfinite(v)]
    if math.isfinite(gq) and gq > limits.max_gq:
        problems.append(f"GQ {gq:.4g} > max {limits.max_gq:g}")
    if math.isfinite(ratio) and not limits.min_signal <= ratio <= limits.max_signal:
        problems.append(f"output/input RMS ratio {ratio:.4g} outside "
                        f"[{limits.min_signal:g}, {limits.max_signal:g}]")
    return {"gq": gq, "gc": gc["gc"], "gn": gc["gn"], "input_rms": input_rms, "layers": layers,
            "signal_ratio": ratio, "problems": problems, "healthy": not problems}
