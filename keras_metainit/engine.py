"""``meta_initialize``: resolve the method and the data, dispatch to the learned-method runner
(:mod:`keras_metainit.learned`) or the layer-wise walk, and ``install`` it on ``keras.Model``.
"""
from __future__ import annotations

import logging
import time
from typing import Any, List, Optional, Sequence, Union

import keras
import numpy as np

from keras_metainit import data as data_lib
from keras_metainit import methods as methods_lib
from keras_metainit import learned
from keras_metainit.choose import choose
from keras_metainit.layerwise.activations import warn
from keras_metainit.model_fn import lower_precision_policies
from keras_metainit.report import InitReport, Progress, resolve_verbose

__all__ = ["meta_initialize", "install"]


def meta_initialize(
    model: keras.Model,
    data: Any = None,
    method: Union[str, methods_lib.Method, Sequence] = methods_lib.DEFAULT,
    *,
    loss: Any = None,
    steps: Optional[int] = None,
    batch_size: Optional[int] = None,
    seed: Optional[int] = None,
    verbose: Union[str, int] = "auto",
    strategy: Optional[Any] = None,
    micro_batches: int = 1,
    **method_options,
) -> InitReport:
    """Initialize ``model`` in place with a learned or layer-wise method.

    ``import keras_metainit`` also makes this available as ``model.meta_initialize(data, ...)`` on
    every ``keras.Model``.

    Args:
        model: a Keras model; an unbuilt one is built from the first batch.
        data: None (random Gaussian inputs and uniform labels, MetaInit's reference setting),
            NumPy ``(x, y)`` or ``x`` (any structure ``model.fit`` takes), batches of
            ``(x, y)`` or ``x`` from a ``keras.utils.PyDataset``, a Python iterable or a
            ``tf.data.Dataset``, or the name of a TensorFlow Datasets dataset (loaded with
            ``download=False``); :mod:`keras_metainit.data` lists every form.
        method: ``"auto"`` (the default, :data:`keras_metainit.methods.DEFAULT`: the method
            :func:`keras_metainit.choose.choose` picks by the model's layers: T-Fixup for
            Post-LN attention blocks, MetaInit with 20 steps for other attention layers and for
            residual additions without normalization, else LSUV; the report's first note says
            which and why), ``"lsuv"``, ``"metainit"``, ``"gradinit"``, ``"gradcosine"``
            (``"nio"``), ``"sylvester"``, a method object from
            :mod:`keras_metainit.methods`, or a list of these run in order on one report
            (``["lsuv", "gradinit"]``, a :class:`~keras_metainit.methods.Chain`).
        loss: a Keras loss; default the compiled loss, else inferred from the output layer.
        steps: number of steps, overriding the method's (every learned stage's, for a list).
        batch_size: examples per batch for data that is not batched yet (default: the method's).
        seed: seed for shuffling and random data. None draws one from NumPy's global
            generator: a run repeats after ``keras.utils.set_random_seed``, like Keras's own
            initializers. The same seed, data and model give bit-identical scales on the same
            machine.
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

    Examples:
        >>> import keras, keras_metainit, numpy as np
        >>> model = keras.Sequential([keras.Input((8,))] +
        ...     [keras.layers.Dense(16, "relu") for _ in range(5)] + [keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        >>> report = model.meta_initialize(x, verbose=0)  # the default: LSUV for an MLP
        >>> report.method, [row["status"] for row in report.layers]
        ('lsuv', ['set', 'set', 'set', 'set', 'set', 'set'])

    Reference:
        The default's rule: :mod:`keras_metainit.choose`; LSUV: Mishkin & Matas, "All you
        need is a good init", ICLR 2016; MetaInit: Dauphin & Schoenholz, NeurIPS 2019; each
        method's own paper is cited on its class in :mod:`keras_metainit.methods`.
    """
    started = time.perf_counter()
    chosen_because = None
    if isinstance(method, str) and method == "auto":
        if method_options:
            raise ValueError("Method options need a named method: method='auto' picks one by "
                             "the model's layers (keras_metainit.choose). Received: "
                             f"{sorted(method_options)}; name the method, e.g. "
                             "method='metainit', to pass them.")
        method, chosen_because = choose(model)
    method = methods_lib.get(method, **method_options)
    if steps is not None:
        if int(steps) < 1:
            raise ValueError(f"Argument `steps` must be >= 1. Received: steps={steps}")
    verbose = resolve_verbose(verbose)
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, (int, np.integer)) \
            or micro_batches < 1:
        raise ValueError("Argument `micro_batches` must be an integer >= 1. "
                         f"Received: micro_batches={micro_batches!r}")
    # None: drawn from NumPy's global generator, so keras.utils.set_random_seed makes it repeat
    seed = int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
    options = dict(loss=loss, batch_size=batch_size, seed=seed, verbose=verbose,
                   strategy=strategy, micro_batches=int(micro_batches))
    if not isinstance(method, methods_lib.Chain):
        report = _run_method(model, data, method, steps=steps, started=started, **options)
        if chosen_because is not None:
            report.notes.insert(0, f"method 'auto' chose {method.name}: {chosen_because}")
        return report
    stages = [_run_method(model, data, stage, started=time.perf_counter(),
                          steps=steps if isinstance(stage, methods_lib.LearnedMethod) else None,
                          **options)
              for stage in method.methods]
    return _chain_report(method, stages, time.perf_counter() - started)


def _run_method(model, data, method: methods_lib.Method, *, loss, steps, batch_size, seed,
                verbose, strategy, micro_batches, started) -> InitReport:
    """One method on ``model``: resolve the data, run it, fill its report."""
    if isinstance(method, methods_lib.AnalyticMethod) and getattr(model, "built", False):
        return _run_analytic(model, method, seed=seed, verbose=verbose, started=started,
                             steps=steps, micro_batches=micro_batches)
    dataset, description, loss_spec = data_lib.make_dataset(
        data, model, loss, batch_size=batch_size, seed=seed,
        default_batch_size=method.batch_size or data_lib.DEFAULT_BATCH_SIZE,
    )
    report = InitReport(
        method=method.name, config=method.get_config(),
        loss=f"{loss_spec.name} ({loss_spec.origin})", data=description,
    )
    lower = lower_precision_policies(model)
    if lower and isinstance(method, methods_lib.LearnedMethod):
        report.notes.append(f"precision: the model's policy {', '.join(lower)} is kept; the "
                            "initialization computed in float32")
    if isinstance(method, methods_lib.AnalyticMethod):  # the data only built the model
        return _run_analytic(model, method, seed=seed, verbose=verbose, started=started,
                             steps=steps, micro_batches=micro_batches)
    if isinstance(method, methods_lib.LayerwiseMethod):
        if dataset.weighted:  # they read activations (and labels), not losses
            dataset = dataset.map(lambda batch: batch[:2])
            report.notes.append("sample weights: not used by a layer-wise method")
        _warn_ignored(method, "layer-wise", steps=steps, micro_batches=micro_batches)
        bars = []

        def progress(total: int) -> Progress:  # the walk knows the rows once it has planned
            bars.append(Progress(total, verbose, f"{type(method).__name__}: layer by layer",
                                 ("var",)))
            return bars[-1]

        report.layers = method.run(model, dataset, loss_spec, seed=seed, progress=progress)
        _check_some_layer_set(method, report.layers)
        report.steps_run = len(report.layers)
        report.wall_time = time.perf_counter() - started
        for bar in bars:
            bar.done(report, len(report.layers))
        return report
    n_steps = int(steps) if steps is not None else method.steps
    report.config["steps"] = n_steps
    return learned.run_learned(model, method, dataset, loss_spec, n_steps, verbose, report,
                               strategy, micro_batches, started)


def _check_some_layer_set(method: methods_lib.Method, rows: List[dict]) -> None:
    """Raise where a layer-wise method set no layer (the model is then unchanged)."""
    if any(str(row.get("status", "")).startswith("set") for row in rows):
        return
    reasons = sorted({f"{row['name']}: {row['status']}" for row in rows})
    raise ValueError(
        f"The model has nothing for {method.name} to initialize: it sets layers with a kernel "
        f"(Dense, convolutions, embeddings, attention, recurrent cells) and "
        + (f"skipped every one: {'; '.join(reasons)}" if reasons else "the model has none")
        + ". The model is unchanged.")


def _warn_ignored(method: methods_lib.Method, kind: str, **given) -> None:
    """Warn about each run option (``steps``, ``micro_batches``) a method of this kind ignores."""
    for name, value in given.items():
        if value != {"steps": None, "micro_batches": 1}[name]:
            warn(f"`{name}` is ignored by the {kind} method {method.name}.")


def _run_analytic(model, method: methods_lib.AnalyticMethod, *, seed, verbose, started, steps,
                  micro_batches) -> InitReport:
    """An analytic method on a built model: its rows and notes in a report; no data read."""
    _warn_ignored(method, "analytic", steps=steps, micro_batches=micro_batches)
    report = InitReport(method=method.name, config=method.get_config(), loss="not used",
                        data="not used (set from the model's structure)")
    report.layers, report.notes = method.run(model, seed=seed)
    report.wall_time = time.perf_counter() - started
    Progress(len(report.layers), verbose, f"{type(method).__name__}: from the model's structure",
             ()).done(report, len(report.layers))
    return report


def _chain_report(chain: methods_lib.Chain, stages: List[InitReport], wall_time: float) -> InitReport:
    """One report for a chain: every stage's report in ``stages``; the metrics, tensors and gain
    of the last learned stage; the layer rows and notes of all stages."""
    learned_stages = [r for r in stages if r.tensors]
    last = learned_stages[-1] if learned_stages else stages[-1]
    return InitReport(
        method=chain.name, config=chain.get_config(), loss=stages[0].loss, data=stages[0].data,
        history=last.history, before=last.before, after=last.after, tensors=last.tensors,
        layers=[row for r in stages for row in r.layers], end_to_end_gain=last.end_to_end_gain,
        steps_run=sum(r.steps_run for r in stages),
        stopped_early=next((f"{r.method}: {r.stopped_early}" for r in stages
                            if r.stopped_early), None),
        kept_start=all(r.kept_start for r in learned_stages) if learned_stages else False,
        constraint_steps=sum(r.constraint_steps for r in stages), wall_time=wall_time,
        step_time=last.step_time, traces=sum(r.traces for r in stages),
        notes=[f"{r.method}: {n}" for r in stages for n in r.notes], stages=stages,
    )


# ----------------------------------------------------------------------------------------------

def _model_meta_initialize(self, data=None, method=methods_lib.DEFAULT, **kwargs) -> InitReport:
    """``keras_metainit.meta_initialize(self, data, method, **kwargs)``; added by keras_metainit."""
    return meta_initialize(self, data, method, **kwargs)


class _OwnTracingFilter(logging.Filter):
    """Drops TensorFlow's "frequent retracing" warning about this module's own functions.

    Every ``meta_initialize`` call traces its compiled step and loss once, by design (a new
    model, method or batch shape each time). TensorFlow counts traces per code object across
    calls, so a script that initializes several models would be warned about retracing that
    is neither frequent nor avoidable. Warnings about any other function pass.
    """

    OWN = ("TensorFlowRun.step", "make_loss_fn.<locals>.per_example_loss")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("retracing" in message and any(name in message for name in self.OWN))


def install() -> None:
    """Add ``meta_initialize`` to ``keras.Model`` (done by ``import keras_metainit``)."""
    if not hasattr(keras.Model, "meta_initialize"):
        keras.Model.meta_initialize = _model_meta_initialize
    logger = logging.getLogger("tensorflow")  # tf.get_logger()'s, without importing TensorFlow
    if not any(isinstance(f, _OwnTracingFilter) for f in logger.filters):
        logger.addFilter(_OwnTracingFilter())
