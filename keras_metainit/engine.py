"""``meta_initialize``: the one engine behind every method.

Learned methods: the model's weights are evaluated at ``θ = s · W⁰`` (one scale per tuned tensor)
through ``model.stateless_call``, so the model is never touched during the run; each step
differentiates the method's objective with respect to the scales and applies the method's scale
update, all in one compiled ``tf.function`` traced once. The result is written back with
``assign`` at the end. A non-finite objective, gradient or scale stops the run at the last good
scales; a ``KeyboardInterrupt`` writes the last good scales and re-raises. The user's weights are
never left NaN.

Under a ``tf.distribute`` strategy each replica computes its part of the batch and the parts are
summed exactly across replicas; with ``micro_batches`` each replica's part is split again and
run one piece at a time (:mod:`keras_metainit.shards`). Either way the scales are those of one
device on the whole batch.

Layer-wise methods (LSUV, Sylvester) share the data handling, the progress bar and the report.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from typing import Any, Dict, List, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from keras_metainit import data as data_lib
from keras_metainit import methods as methods_lib
from keras_metainit import objectives, shards
from keras_metainit.report import InitReport

__all__ = ["meta_initialize", "make_loss_fn", "gradient_quotient", "grad_cosine"]

# Layers whose randomness is switched off during initialization, and the attribute that does it.
_NOISE_ATTRS = (
    (keras.layers.Dropout, "rate"),
    (keras.layers.GaussianDropout, "rate"),
    (keras.layers.AlphaDropout, "rate"),
    (keras.layers.GaussianNoise, "stddev"),
)


@contextlib.contextmanager
def noise_off(model):
    """Dropout and noise layers act as the identity inside this context, even with training=True."""
    saved = []
    for layer in _all_layers(model):
        for cls, attr in _NOISE_ATTRS:
            if isinstance(layer, cls):
                saved.append((layer, attr, getattr(layer, attr)))
                object.__setattr__(layer, attr, 0.0)
    try:
        yield
    finally:
        for layer, attr, value in saved:
            object.__setattr__(layer, attr, value)


@contextlib.contextmanager
def float32_compute(model):
    """Layers with a lower-precision compute dtype (mixed_float16, mixed_bfloat16) compute in
    float32 inside this context; their policies are restored on exit."""
    float32 = keras.DTypePolicy("float32")
    saved = []
    for layer in [model] + _all_layers(model):
        policy = getattr(layer, "_dtype_policy", None)
        if (isinstance(policy, keras.DTypePolicy) and policy.compute_dtype != "float32"
                and policy.variable_dtype == "float32" and policy.quantization_mode is None):
            saved.append((layer, policy))
            object.__setattr__(layer, "_dtype_policy", float32)
    try:
        yield
    finally:
        for layer, policy in saved:
            object.__setattr__(layer, "_dtype_policy", policy)


def _lower_precision_policies(model) -> List[str]:
    policies = [getattr(layer, "dtype_policy", None) for layer in [model] + _all_layers(model)]
    return sorted({p.name for p in policies if p is not None and p.compute_dtype in
                   ("float16", "bfloat16")})


def _all_layers(model):
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=False, recursive=True))
    return list(getattr(model, "layers", []))


def make_loss_fn(model, loss_spec: data_lib.LossSpec, training: bool = False):
    """``per_example_loss(params, batch) -> (B,)``: the model's loss at the given trainable
    parameters, without side effects.

    ``params`` replace ``model.trainable_variables`` one for one; the non-trainable variables
    (normalization statistics) are read, and any update of them is discarded. With
    ``training=True`` normalization layers use batch statistics; dropout and noise layers are off
    in both modes. Under a mixed-precision policy the computation runs in float32 (higher-order
    derivatives in float16 lose most of their digits); the model keeps its policy.

    The forward pass is a separate, never-inlined ``tf.function``: TensorFlow then differentiates
    it function by function, so every gradient order lives in its own function body. Inlined, the
    oneDNN graph rewrite (``MklLayoutRewritePass``) may fuse a first-order ``BiasAddGrad`` with a
    ``Conv2DBackpropFilter`` of a higher order that reads the same incoming gradient but depends
    on that bias gradient, which creates a cycle ("N nodes in a cycle") in third-order graphs of
    convolutions with bias.
    """
    non_trainable = model.non_trainable_variables

    takes_training = getattr(model, "_call_has_training_arg", True)

    def per_example_loss(params, batch):
        x, y = batch
        with noise_off(model), float32_compute(model):
            if takes_training:
                y_pred, _ = model.stateless_call(list(params), non_trainable, x,
                                                 training=training)
            else:  # a subclassed call() without `training`: __call__ hands it to the layers
                mapping = (list(zip(model.trainable_variables, params))
                           + list(zip(model.non_trainable_variables, non_trainable)))
                with keras.StatelessScope(state_mapping=mapping):
                    y_pred = model(x, training=training)
        return loss_spec.per_example(y, tf.nest.flatten(y_pred)[0])

    # reduce_retracing: chunks of different sizes (GradCosine) share one trace
    compiled = tf.function(per_example_loss, reduce_retracing=True,
                           experimental_attributes={"_noinline": True})
    # Whether examples are independent: no layer computes batch statistics in this mode.
    compiled.examples_independent = not (
        training and any(isinstance(layer, keras.layers.BatchNormalization)
                         for layer in _all_layers(model)))
    return compiled


def _he_norm(shape) -> float:
    """Expected norm of a He-normal kernel of this shape, ``sqrt(2 · units)``.

    Every entry has variance ``2 / fan_in`` and there are ``fan_in · units`` of them (Dense:
    ``fan_in`` = inputs; ConvND: receptive field × input channels; ``units`` = ``shape[-1]``).
    """
    return math.sqrt(2.0 * shape[-1])


def _resolve_verbose(verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"Argument `verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)


class _Progress:
    """A Keras progress bar for verbose=1, one line per call for verbose=2, nothing for 0."""

    def __init__(self, target: int, verbose: int, title: str, metrics=()):
        self.verbose = verbose
        if verbose == 1:
            print(title)
            # stateful: show each metric's latest value, not a running average
            self.bar = keras.utils.Progbar(target, verbose=1, unit_name="step",
                                           stateful_metrics=list(metrics))

    def update(self, current: int, values: Dict[str, float]):
        if self.verbose == 1:
            self.bar.update(current, [(k, v) for k, v in values.items()], finalize=False)

    def done(self, report: InitReport, current: Optional[int] = None):
        if self.verbose == 1:
            self.bar.update(report.steps_run if current is None else current, finalize=True)
        elif self.verbose == 2:
            changes = ", ".join(f"{k} {report.before[k]:.4g} -> {report.after.get(k, float('nan')):.4g}"
                                for k in report.before)
            print(f"{report.method}: {report.steps_run} steps, {report.wall_time:.1f}s"
                  + (f", {changes}" if changes else ""))


# ----------------------------------------------------------------------------------------------
# The learned-method runner
# ----------------------------------------------------------------------------------------------
class _ScaleRun:
    """State and compiled functions of one learned-method run.

    Args:
        model: the model.
        method: the learned method.
        loss_fn: the per-example loss (:func:`make_loss_fn`).
        report: the report being filled.
        size: examples per batch of the step (the whole, global batch).
        strategy: a ``tf.distribute.Strategy`` to run the objective under, or None.
        micro_batches: parts each replica's batch is split into (one at a time).
    """

    def __init__(self, model, method: methods_lib.LearnedMethod, loss_fn, report: InitReport,
                 size: int, strategy=None, micro_batches: int = 1):
        self.model, self.method, self.loss_fn, self.report = model, method, loss_fn, report
        self.size, self.strategy, self.micro_batches = size, strategy, micro_batches
        self.variables = list(model.trainable_variables)
        norms = [float(np.linalg.norm(np.asarray(v.numpy(), np.float64))) for v in self.variables]
        skipped_zero = [v.path for v, n in zip(self.variables, norms)
                        if method.tunes(v) and n == 0.0]
        self.tuned = [i for i, (v, n) in enumerate(zip(self.variables, norms))
                      if method.tunes(v) and n > 0.0]
        if not self.tuned:
            raise ValueError(
                f"The model has no tensor for {method.name} to tune: it needs trainable tensors "
                f"{'with ndim >= 2 ' if type(method).tunes is methods_lib.LearnedMethod.tunes else ''}"
                f"and a nonzero norm. Trainable variables: {[v.path for v in self.variables]}"
            )
        if skipped_zero:
            names = ", ".join(skipped_zero[:3]) + (", ..." if len(skipped_zero) > 3 else "")
            report.notes.append(f"skipped {len(skipped_zero)} tensor(s) of zero norm: {names}")
        self.norms = norms
        k = len(self.tuned)
        self.base_norms = tf.constant([norms[i] for i in self.tuned], tf.float32)
        self.scales = tf.Variable(tf.ones([k]), trainable=False, name="metainit_scales")
        self.last_good = tf.Variable(tf.ones([k]), trainable=False, name="metainit_last_good")
        self.transform = method.transform()
        self.state = {name: tf.Variable(t, trainable=False, name=f"metainit_{name}")
                      for name, t in self.transform.init(self.scales.value(), self.base_norms).items()}
        self.traces = 0

    def params_at(self, scales) -> List[tf.Tensor]:
        params = [v.value for v in self.variables]
        for j, i in enumerate(self.tuned):
            params[i] = tf.cast(scales[j], params[i].dtype) * params[i]
        return params

    def _objective(self, scales, shards_):
        return self.method.objective(self.loss_fn, self.params_at(scales), shards_)

    def _run(self, s, batches, grad: bool):
        """The objective over the whole batch, with its gradient w.r.t. the scales if ``grad``.

        One device: the batch as it is, or in micro-batches. Under a strategy: each replica's
        part (in micro-batches), summed across replicas (:mod:`keras_metainit.shards`).

        Returns:
            ``(value, grad, constraint, metrics, batch_ok)`` (``grad`` only if asked for).
        """

        def local(batches, offset, across):
            floats = [t for t in tf.nest.flatten(batches) if t.dtype.is_floating]
            bad = tf.cast(tf.logical_not(tf.reduce_all([tf.reduce_all(tf.math.is_finite(t))
                                                        for t in floats])), tf.float32)
            batch_ok = (across(bad) if across else bad) == 0.0
            parts = shards.split(batches, self.micro_batches, offset)
            if grad:
                value, g, constraint, metrics = shards.value_and_grad(
                    self._objective, s, parts, self.size, across)
                return value, g, constraint, metrics, batch_ok
            value, constraint, metrics = shards.values(self._objective, s, parts, self.size, across)
            return value, constraint, metrics, batch_ok

        if self.strategy is None:
            return local(batches, 0, None)

        def replica(batches):
            ctx = tf.distribute.get_replica_context()
            n = int(tf.nest.flatten(batches)[0].shape[0])
            rid = ctx.replica_id_in_sync_group
            static = tf.get_static_value(rid)
            offset = int(static) * n if static is not None else rid * n
            across = None
            if ctx.num_replicas_in_sync > 1:
                across = lambda tree: ctx.all_reduce(tf.distribute.ReduceOp.SUM, tree)  # noqa: E731
            return local(batches, offset, across)

        out = self.strategy.run(replica, args=(batches,))
        # every replica holds the same (reduced) results
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def step(self, batches):
        """One compiled step: objective, its gradient w.r.t. the scales, guarded update."""
        self.traces += 1  # runs at trace time only
        s = self.scales.read_value()
        value, grads, constraint, metrics, batch_ok = self._run(s, batches, grad=True)
        state = {k: v.read_value() for k, v in self.state.items()}
        new_s, new_state = self.transform.update(grads, state, s, self.base_norms, constraint)
        ok = (batch_ok & tf.math.is_finite(value) & tf.reduce_all(tf.math.is_finite(grads))
              & tf.reduce_all(tf.math.is_finite(new_s)))
        self.scales.assign(tf.where(ok, new_s, s))
        self.last_good.assign(tf.where(ok, s, self.last_good))
        for k, var in self.state.items():
            var.assign(tf.where(ok, new_state[k], state[k]))
        return {**metrics, "ok": ok, "batch_ok": batch_ok, "constraint": constraint}

    def evaluate(self, batches):
        """``(metrics, batch_ok)`` at the current scales, without a step."""
        _, _, metrics, batch_ok = self._run(self.scales.read_value(), batches, grad=False)
        return metrics, batch_ok

    def write_back(self, scales: np.ndarray):
        for j, i in enumerate(self.tuned):
            v = self.variables[i]
            v.assign(tf.cast(scales[j], v.dtype) * v.value)


def _compiled(fn, spec, report: InitReport):
    """``tf.function(fn)``, falling back to XLA where TensorFlow cannot instantiate the graph.

    A safety net: loss functions from :func:`make_loss_fn` avoid the known cause (see there), but
    a graph that oneDNN's rewrite still turns cyclic ("N nodes in a cycle" at instantiation) is
    compiled by XLA instead, which does not run that pass. The fallback happens at the first call,
    before any state is written, and is noted in the report.
    """
    plain = tf.function(fn, input_signature=[spec])
    chosen = []

    def call(batches):
        if not chosen:
            try:
                out = plain(batches)
                chosen.append(plain)
                return out
            except tf.errors.InvalidArgumentError as e:
                if "cycle" not in str(e):
                    raise
                chosen.append(tf.function(fn, input_signature=[spec], jit_compile=True))
                note = ("compiled with XLA: TensorFlow could not instantiate the plain graph "
                        "(a known 'nodes in a cycle' failure of higher-order convolution graphs)")
                if note not in report.notes:
                    report.notes.append(note)
        return chosen[0](batches)

    return call


def step_dataset(dataset: tf.data.Dataset, method: methods_lib.LearnedMethod) -> tf.data.Dataset:
    """The stream of a learned method's steps: ``method.batches_per_step`` consecutive batches,
    passed through ``method.prepare`` (a tuple of batches per step)."""
    k = method.batches_per_step

    def prepare(*element):
        return tuple(method.prepare(tuple(tf.nest.map_structure(lambda t: t[i], element)
                                          for i in range(k))))

    return dataset.batch(k, drop_remainder=True).map(prepare)


def _strategy_of(model, strategy):
    """The strategy to run under: the argument, the enclosing scope's, or the model's."""
    if strategy is not None:
        return strategy
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    for v in model.variables:
        value = getattr(v, "value", None)
        if isinstance(value, tf.distribute.DistributedValues):
            return value.distribute_strategy
    return None


def _run_learned(model, method, dataset, loss_spec, steps, verbose, report, strategy=None,
                 micro_batches: int = 1, started: Optional[float] = None):
    loss_fn = make_loss_fn(model, loss_spec, training=method.training)
    steps_ds = step_dataset(dataset, method)
    size = int(tf.nest.flatten(steps_ds.element_spec)[0].shape[0])
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if size % (replicas * micro_batches):
        raise ValueError(
            f"A batch of {size} examples cannot be split into {replicas} replica(s) x "
            f"{micro_batches} micro-batch(es) of equal size; pass a `batch_size` that is a "
            f"multiple of {replicas * micro_batches}."
        )
    run = _ScaleRun(model, method, loss_fn, report, size, strategy, micro_batches)
    if strategy is not None:
        report.notes.append(f"distributed: {type(strategy).__name__}, {replicas} replica(s), "
                            f"global batch {size}")
        steps_ds = strategy.experimental_distribute_dataset(steps_ds)
    if micro_batches > 1:
        report.notes.append(f"micro-batches: {micro_batches} per replica, "
                            f"{size // (replicas * micro_batches)} examples each")
    it = iter(steps_ds)
    spec = steps_ds.element_spec
    step_fn = _compiled(run.step, spec, report)
    eval_fn = _compiled(run.evaluate, spec, report)

    eval_batches = next(it)
    before, batch_ok = eval_fn(eval_batches)
    if not bool(batch_ok):
        raise data_lib.DataError("The first batch of `data` contains NaN or Inf.")
    report.before = {n: float(v) for n, v in before.items()}
    report.history = {n: [] for n in method.metric_names}
    progress = _Progress(steps, verbose, f"{type(method).__name__}: {steps} steps",
                         method.metric_names)
    interrupted = bad_data = False
    step_times: List[float] = []
    try:
        batches = eval_batches
        for t in range(steps):
            t0 = time.perf_counter()
            out = {n: v.numpy() for n, v in step_fn(batches).items()}
            step_times.append(time.perf_counter() - t0)
            if not out["batch_ok"]:
                bad_data = True
                raise data_lib.DataError(
                    f"A batch of `data` contains NaN or Inf (step {t}); the model is unchanged."
                )
            if not out["ok"]:
                report.stopped_early = (f"non-finite objective, gradient or scale at step {t}; "
                                        "restored the last good scales")
                warnings.warn(f"{type(method).__name__}: {report.stopped_early}.", RuntimeWarning,
                              stacklevel=3)
                break
            for n in method.metric_names:
                report.history[n].append(float(out[n]))
            report.constraint_steps += int(out["constraint"])
            report.steps_run = t + 1
            progress.update(t + 1, {n: float(out[n]) for n in method.metric_names})
            batches = next(it)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # On a clean finish the current scales are good; otherwise the last good ones.
        clean = report.stopped_early is None and not interrupted and report.steps_run == steps
        final = (run.scales if clean else run.last_good).numpy()
        if not bad_data:
            run.write_back(final)
        report.traces = run.traces
        # the first step includes tracing and compilation
        report.step_time = float(np.median(step_times[1:])) if len(step_times) > 1 else float("nan")
        if interrupted:
            report.notes.append("interrupted: the last good scales were written back")
        _tensor_table(run, final, report)
    run.scales.assign(tf.ones_like(run.scales))  # weights now hold the result: evaluate at s = 1
    report.after = {n: float(v) for n, v in eval_fn(eval_batches)[0].items()}
    report.wall_time = time.perf_counter() - started
    progress.done(report)
    return report


def _tensor_table(run: _ScaleRun, scales: np.ndarray, report: InitReport) -> None:
    scale_of = {i: float(scales[j]) for j, i in enumerate(run.tuned)}
    gain_before, gain_after = 1.0, 1.0
    for i, v in enumerate(run.variables):
        s = scale_of.get(i, 1.0)
        report.tensors.append({
            "name": v.path, "shape": tuple(v.shape), "tuned": i in scale_of,
            "norm_before": run.norms[i], "norm_after": run.norms[i] * s, "scale": s,
        })
        if i in scale_of and len(v.shape) >= 2:
            he = _he_norm(tuple(v.shape))
            gain_before *= run.norms[i] / he
            gain_after *= run.norms[i] * s / he
    report.end_to_end_gain = {"before": gain_before, "after": gain_after}


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------
def meta_initialize(
    model: keras.Model,
    data: Any = None,
    method: Union[str, methods_lib.Method] = "metainit",
    *,
    loss: Any = None,
    steps: Optional[int] = None,
    batch_size: Optional[int] = None,
    seed: Optional[int] = None,
    verbose: Union[str, int] = "auto",
    strategy: Optional[tf.distribute.Strategy] = None,
    micro_batches: int = 1,
    **method_options,
) -> InitReport:
    """Initialize ``model`` in place with a learned or layer-wise method.

    ``import keras_metainit`` also makes this available as ``model.meta_initialize(data, ...)`` on
    every ``keras.Model``.

    Args:
        model: a Keras model; an unbuilt one is built from the first batch.
        data: None (random Gaussian inputs and uniform labels, MetaInit's reference setting), a
            ``tf.data.Dataset`` of ``(x, y)`` or ``x`` batches, NumPy ``(x, y)`` or ``x``, or the
            name of a TensorFlow Datasets dataset (loaded with ``download=False``).
        method: ``"metainit"``, ``"gradinit"``, ``"gradcosine"`` (``"nio"``), ``"lsuv"``,
            ``"sylvester"``, or a method object from :mod:`keras_metainit.methods`.
        loss: a Keras loss; default the compiled loss, else inferred from the output layer.
        steps: number of steps, overriding the method's.
        batch_size: examples per batch for data that is not batched yet (default: the method's).
        seed: seed for shuffling and random data.
        verbose: ``"auto"`` (= 1), 0 silent, 1 progress bar, 2 one line per call.
        strategy: a ``tf.distribute.Strategy`` for the learned methods; default: the enclosing
            ``strategy.scope()``, else the strategy the model's variables were created under,
            else none. Each replica computes its part of the batch; the objective is summed
            across replicas exactly, so the scales are those of one device on the same global
            batch (``batch_size`` is the global batch). Layer-wise methods run on the host.
        micro_batches: learned methods split each replica's batch into this many parts and
            run them one at a time: the same objective and scales as the whole batch (exactly,
            up to summation order) with the activations of one part in memory, for about twice
            the time of a step. ``batch_size`` must be a multiple of replicas × micro_batches.
        **method_options: constructor arguments of the method when ``method`` is a string.

    Returns:
        An :class:`~keras_metainit.report.InitReport`.

    Raises:
        ValueError: bad arguments, NaN/Inf or empty data, a model with nothing to tune.

    Example:
        >>> import keras, keras_metainit
        >>> model = keras.Sequential([keras.Input((784,))] +
        ...     [keras.layers.Dense(128, "relu") for _ in range(10)] + [keras.layers.Dense(10)])
        >>> report = model.meta_initialize(None, steps=100, verbose=0)
        >>> print(report)

    Reference:
        Dauphin & Schoenholz, "MetaInit: Initializing learning by learning to initialize",
        NeurIPS 2019.
    """
    started = time.perf_counter()
    method = methods_lib.get(method, **method_options)
    if steps is not None:
        if int(steps) < 1:
            raise ValueError(f"Argument `steps` must be >= 1. Received: steps={steps}")
    verbose = _resolve_verbose(verbose)
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, (int, np.integer)) \
            or micro_batches < 1:
        raise ValueError("Argument `micro_batches` must be an integer >= 1. "
                         f"Received: micro_batches={micro_batches!r}")
    seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31)) if seed is None else int(seed)
    dataset, description, loss_spec = data_lib.make_dataset(
        data, model, loss, batch_size=batch_size, seed=seed,
        default_batch_size=method.batch_size or data_lib.DEFAULT_BATCH_SIZE,
    )
    report = InitReport(
        method=method.name, config=method.get_config(),
        loss=f"{loss_spec.name} ({loss_spec.origin})", data=description,
    )
    lower = _lower_precision_policies(model)
    if lower and isinstance(method, methods_lib.LearnedMethod):
        report.notes.append(f"precision: the model's policy {', '.join(lower)} is kept; the "
                            "initialization computed in float32")
    if isinstance(method, methods_lib.LayerwiseMethod):
        for name, value, default in (("steps", steps, None), ("micro_batches", micro_batches, 1)):
            if value != default:
                warnings.warn(f"`{name}` is ignored by the layer-wise method {method.name}.",
                              UserWarning, stacklevel=2)
        progress = _Progress(len(model.layers), verbose,
                             f"{type(method).__name__}: layer by layer", ("var",))
        report.layers = method.run(model, dataset, loss_spec, seed=seed, progress=progress)
        report.steps_run = len(report.layers)
        report.wall_time = time.perf_counter() - started
        progress.done(report, len(model.layers))
        return report
    n_steps = int(steps) if steps is not None else method.steps
    report.config["steps"] = n_steps
    return _run_learned(model, method, dataset, loss_spec, n_steps, verbose, report,
                        _strategy_of(model, strategy), int(micro_batches), started)


# ----------------------------------------------------------------------------------------------
# Diagnostics
# ----------------------------------------------------------------------------------------------
def _batch_and_loss(model, batch, loss, training=False):
    x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
    if y is None:
        raise ValueError("Diagnostics need a labelled batch `(x, y)`.")
    x = tf.nest.map_structure(lambda a: tf.convert_to_tensor(a, keras.config.floatx())
                              if np.asarray(a).dtype.kind == "f" else tf.convert_to_tensor(a), x)
    data_lib.ensure_built(model, x)
    spec = data_lib.resolve_loss(model, loss, x)
    params = [v.value for v in model.trainable_variables]
    return (x, tf.convert_to_tensor(y)), _cached_loss_fn(model, spec, training), params


def _cached_loss_fn(model, spec: data_lib.LossSpec, training: bool):
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

    Example:
        >>> gq = keras_metainit.gradient_quotient(model, (x[:128], y[:128]))

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


def _model_meta_initialize(self, data=None, method="metainit", **kwargs) -> InitReport:
    """``keras_metainit.meta_initialize(self, data, method, **kwargs)``; added by keras_metainit."""
    return meta_initialize(self, data, method, **kwargs)


class _OwnTracingFilter(logging.Filter):
    """Drops TensorFlow's "frequent retracing" warning about this module's own functions.

    Every ``meta_initialize`` call traces its compiled step and loss once, by design (a new
    model, method or batch shape each time). TensorFlow counts traces per code object across
    calls, so a script that initializes several models would be warned about retracing that
    is neither frequent nor avoidable. Warnings about any other function pass.
    """

    OWN = ("_ScaleRun.step", "_ScaleRun.evaluate", "make_loss_fn.<locals>.per_example_loss")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("retracing" in message and any(name in message for name in self.OWN))


def install() -> None:
    """Add ``meta_initialize`` to ``keras.Model`` (done by ``import keras_metainit``)."""
    if not hasattr(keras.Model, "meta_initialize"):
        keras.Model.meta_initialize = _model_meta_initialize
    logger = tf.get_logger()
    if not any(isinstance(f, _OwnTracingFilter) for f in logger.filters):
        logger.addFilter(_OwnTracingFilter())
