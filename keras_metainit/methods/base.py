"""The base classes of the initialization methods, :class:`Chain`, and how a method is resolved.

A *learned* method (:class:`~keras_metainit.methods.MetaInit`,
:class:`~keras_metainit.methods.GradInit`, :class:`~keras_metainit.methods.GradCosine`) is a
composition: which tensors get a scale, an objective (a pure function from
:mod:`keras_metainit.objectives`), and a scale update (from :mod:`keras_metainit.scale_opt`). The
runner (:mod:`keras_metainit.learned`) runs the steps for all of them.

A *layer-wise* method (LSUV, Sylvester) sets each layer from its input activations, in order; it
shares the engine's data handling and report, not its step.

An *analytic* method (T-Fixup, DeepNorm: :mod:`keras_metainit.transformers`) sets kernels by a
rule read from the model's structure: no data, no steps; it shares the engine's report and chains.

``get("metainit", steps=100)`` / ``get(MetaInit(steps=100))`` resolve a method as
``keras.optimizers.get`` resolves an optimizer, from the names :func:`register` recorded: the
built-in methods are registered by :mod:`keras_metainit.methods` (its ``ALL_OBJECTS``), a method
of your own by decorating its class with :func:`register`. This module imports none of the
methods it resolves.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

import keras

from keras_metainit import scale_opt, validation
from keras_metainit.validation import check, is_real

Tensor = Any  # a backend tensor

__all__ = ["Method", "LearnedMethod", "ConstrainedMethod", "LayerwiseMethod", "AnalyticMethod",
           "Chain", "register", "unregister", "get", "serialize", "deserialize", "available",
           "DEFAULT"]

#: What ``meta_initialize`` runs when no method is named: ``"auto"``, the method
#: :func:`keras_metainit.choose.choose` picks by the model's layers (T-Fixup for Post-LN blocks,
#: MetaInit for other attention and unnormalized residuals, else LSUV; the rule and its evidence: that module and
#: docs/choosing.md).
DEFAULT = "auto"

#: alias -> class, filled by :func:`register`, in registration order
_REGISTRY: Dict[str, Type["Method"]] = {}


class Method:
    """Base class of every initialization method.

    Subclasses set ``aliases`` (the strings :func:`get` accepts once the class is registered
    with :func:`register`, so that :func:`get`, :func:`available` and the command line's
    ``init --method`` know it) and store their constructor arguments as attributes of the same
    names, which makes :meth:`get_config` complete.
    """

    aliases: ClassVar[Tuple[str, ...]] = ()
    #: default examples per batch when ``meta_initialize`` is given none
    batch_size: Optional[int] = None

    @property
    def name(self) -> str:
        return self.aliases[0] if self.aliases else type(self).__name__.lower()

    def get_config(self) -> Dict[str, Any]:
        params = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in params if k != "self" and hasattr(self, k)}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Method":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class LearnedMethod(Method):
    """A method that tunes one scale per tensor by gradient steps on an objective.

    Subclasses define :meth:`objective`, :meth:`transform` and, when they differ from the
    defaults, :attr:`training` (normalization layers on batch statistics), :meth:`tunes` (with
    :attr:`tunes_description`) and :attr:`batches_per_step`.
    """

    steps: int = 100
    #: call the model with ``training=True`` (normalization layers use batch statistics; their
    #: moving statistics are never written). Dropout and noise layers are off either way.
    training: ClassVar[bool] = False
    batches_per_step: ClassVar[int] = 1
    #: names of the metrics :meth:`objective` returns, in order; the first is the headline
    metric_names: ClassVar[Tuple[str, ...]] = ("objective",)
    #: what :meth:`tunes` selects, in words (for messages such as "the model has no tensor to
    #: tune: it needs <this> and a nonzero norm")
    tunes_description: ClassVar[str] = "trainable tensors with ndim >= 2"

    def tunes(self, variable) -> bool:
        """Whether ``variable`` gets a scale (tensors of zero norm are skipped by the engine)."""
        return len(variable.shape) >= 2

    def prepare(self, batches: Tuple[Any, ...]) -> Tuple[Any, ...]:
        """The step's batches, from :attr:`batches_per_step` consecutive batches of the data.

        Runs on the host, on whole NumPy batches (:class:`keras_metainit.batches.Steps`), before
        they are split over replicas or micro-batches. The default passes them through.
        """
        return batches

    def objective(self, loss_fn, params: List[Tensor], shards) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        """``(J, constraint, metrics)``: the value to minimize, whether this is a constraint
        step, and the metrics named by :attr:`metric_names`.

        ``shards`` holds one :class:`~keras_metainit.shards.Shard` per batch of the step (see
        :meth:`prepare`); every batch statistic goes through ``shard.total``, so the value does
        not depend on how the batch is split over replicas or micro-batches.
        """
        raise NotImplementedError

    def transform(self) -> scale_opt.ScaleTransform:
        """The scale update."""
        raise NotImplementedError


class LayerwiseMethod(Method):
    """A method that sets each layer from its own input activations, in order.

    The method is one object that :func:`keras_metainit.layerwise.walk.walk` calls; its options
    are its constructor's arguments. The walk plans the layers, reads each one's input where the
    model calls it, restores the model on any error, and asks the method:

    - :meth:`prepare`: per-run checks (before any layer is touched);
    - :meth:`skip_reason`: whether it refuses a layer the walk can read;
    - :meth:`examples_needed`: how many examples a layer's inputs should hold;
    - :meth:`set_layer`: set the layer and return its row.

    Subclasses define :meth:`set_layer` and, when they differ from the defaults, the others.
    """

    seed: Optional[int] = None

    def prepare(self, run) -> None:
        """Check the run (:class:`~keras_metainit.layerwise.walk.Run`) before any layer is set."""

    def skip_reason(self, view) -> Optional[str]:
        """Why this method cannot set a layer seen through ``view``, or None (the default)."""
        return None

    def examples_needed(self, target, first_batch: int) -> int:
        """Examples whose activations set ``target`` (default: the first batch)."""
        return first_batch

    def set_layer(self, target, inputs, y, run) -> Dict[str, Any]:
        """Set ``target.layer`` from its inputs (one array per call) and labels; return its row."""
        raise NotImplementedError

    def run(self, model, dataset, loss_spec, *, seed: int, progress=None) -> List[Dict[str, Any]]:
        """Initialize ``model`` in place by :func:`~keras_metainit.layerwise.walk.walk` (the
        arguments are its own; ``seed`` is the run's, used when the method has none); return one
        row of facts per layer that owns a kernel (set or skipped)."""
        from keras_metainit.layerwise.walk import walk

        return walk(model, dataset, self, loss_spec,
                    seed=self.seed if self.seed is not None else seed, progress=progress)


class AnalyticMethod(Method):
    """A method that sets kernels by a rule read from the model's structure (T-Fixup, DeepNorm):
    ``meta_initialize`` hands it the built model (an unbuilt one is built from the data's first
    batch) and the run's seed. Subclasses define :meth:`run`."""

    def run(self, model, *, seed: int) -> Tuple[List[Dict[str, Any]], List[str]]:
        """Set ``model``'s kernels in place; return ``(rows, notes)``: one row per kernel set or
        part skipped (``name``, ``status`` = ``"set"`` or ``"skipped: <reason>"``, and what the
        method adds), and what the user should know."""
        raise NotImplementedError


class ConstrainedMethod(LearnedMethod):
    """A learned method that minimizes a target subject to a bound on a gradient norm.

    GradInit and GradCosine share this shape: while the gradient norm exceeds ``gamma`` the step
    reduces the norm (a *constraint step*, counted in the report), otherwise it minimizes the
    method's target; see :meth:`constrained`. Every tensor of nonzero norm gets a scale
    (biases that start at zero are skipped), the scales are updated by RescaleAdam
    (:func:`keras_metainit.scale_opt.rescale_adam`, gradients clipped to ±1) and floored at
    ``min_scale``. Normalization layers use batch statistics without updating their moving
    statistics; dropout is off. A subclass states only its objective (and its own options).

    Args:
        steps: number of steps.
        lr: RescaleAdam's learning rate.
        gamma: the bound γ on the gradient norm.
        min_scale: floor of every scale.
        batch_size: examples per batch.
        scale_invariant: divide the scale gradient by its global norm before RescaleAdam
            (:func:`~keras_metainit.scale_opt.rescale_adam` ``normalize``; not in the papers).
            With the papers' update a start whose gradients have vanished (~1e-20, a deep net
            started too small) does not move: Adam's ε = 1e-8 swallows them. Normalized, every
            step has the same size whatever the gradients' magnitude.
    """

    training = True
    tunes_description = "trainable tensors"

    def __init__(self, steps: int = 100, lr: float = 1e-2, gamma: float = 1.0,
                 min_scale: float = 0.01, batch_size: int = 128, scale_invariant: bool = False):
        self.steps = validation.steps(steps)
        check(isinstance(scale_invariant, bool), "scale_invariant", scale_invariant, "a bool")
        check(is_real(lr) and lr > 0, "lr", lr, "positive")
        check(is_real(gamma) and gamma > 0, "gamma", gamma, "positive")
        check(is_real(min_scale) and min_scale >= 0, "min_scale", min_scale, ">= 0")
        self.lr, self.gamma, self.min_scale = lr, gamma, min_scale
        self.batch_size, self.scale_invariant = batch_size, scale_invariant

    def tunes(self, variable) -> bool:
        return True

    def constrained(self, gnorm: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
        """``(value, constraint)``: ``gnorm`` while ``gnorm > gamma`` (a constraint step, which
        reduces the norm through second-order terms), else ``target``.

        Both values are computed every step and one is picked with ``where``: a batch
        statistic may not sit in a branch. Both are then differentiated; a run-time branch
        (``cond``) that differentiates only the picked value made GradInit's look-ahead steps
        25 % cheaper but its constraint steps, which must then recompute the gradient inside
        the branch, dearer (ResNet50V2: 3.8× → 6.1× a training step, first step 72 → 99 s), so
        it was not kept (docs/benchmarks.md, "Cost of a step").
        """
        constraint = gnorm > self.gamma
        return keras.ops.where(constraint, gnorm, target), constraint

    def transform(self):
        return scale_opt.rescale_adam(self.lr, min_scale=self.min_scale, clip=1.0,
                                      normalize=self.scale_invariant)


class Chain(Method):
    """Several methods run in order on one model, with one report: e.g. LSUV to fix every
    layer's signal, then GradInit to tune the scales for the first optimizer steps.

    ``meta_initialize(model, data, method=["lsuv", "gradinit"])`` builds one. Each stage
    sees the same ``data`` and starts from the weights the previous stage left; the report
    holds every stage's own report in ``report.stages`` and the last learned stage's metrics.

    Args:
        methods: the stages, each a name, a method object or a serialized method; at least two.

    Examples:
        >>> import keras, keras_metainit, numpy as np
        >>> x = np.random.rand(64, 8).astype("float32")  # labels: random, as with data=None
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu"),
        ...                           keras.layers.Dense(3)])
        >>> report = keras_metainit.meta_initialize(model, x, method=["lsuv", "gradinit"],
        ...                                         steps=3, batch_size=16, verbose=0)
        >>> report.method, [stage.method for stage in report.stages]
        ('lsuv+gradinit', ['lsuv', 'gradinit'])

    Reference:
        Not from a paper: composition is this suite's own.
    """

    def __init__(self, methods: Sequence[Any]):
        check(isinstance(methods, (list, tuple)) and len(methods) >= 2, "methods", methods,
              "a list of at least two methods")
        self.methods = [get(m) for m in methods]
        for m in self.methods:
            check(not isinstance(m, Chain), "methods", methods, "a list of methods, not of chains")

    @property
    def name(self) -> str:
        return "+".join(m.name for m in self.methods)

    @property
    def batch_size(self) -> Optional[int]:  # type: ignore[override]
        return self.methods[0].batch_size

    def get_config(self) -> Dict[str, Any]:
        return {"methods": [serialize(m) for m in self.methods]}


def register(cls: Type[Method]) -> Type[Method]:
    """Register a method class under its ``aliases``, so that :func:`get`, :func:`available` and
    the command line's ``init --method`` know it; usable as a class decorator.

    The built-in methods are registered by :mod:`keras_metainit.methods` (``ALL_OBJECTS``).

    Args:
        cls: a subclass of :class:`Method` that sets ``aliases`` itself (a subclass that
            inherits its parent's aliases would take them over, and is refused).

    Returns:
        ``cls``, unchanged.

    Raises:
        ValueError: ``cls`` is not a :class:`Method` subclass or sets no aliases of its own.

    Examples:
        >>> import keras
        >>> from keras_metainit import methods, scale_opt
        >>> @methods.register
        ... class HalfNorm(methods.LearnedMethod):
        ...     aliases = ("halfnorm_example",)
        ...     def objective(self, loss_fn, params, shards):
        ...         value = sum(keras.ops.sum(keras.ops.square(p)) for p in params)
        ...         return value, keras.ops.convert_to_tensor(False), {"objective": value}
        ...     def transform(self):
        ...         return scale_opt.sign_momentum(0.01)
        >>> type(methods.get("halfnorm_example")).__name__
        'HalfNorm'
        >>> _ = methods.unregister(HalfNorm)

    Reference:
        As ``keras.saving.register_keras_serializable`` registers a Keras object.
    """
    check(isinstance(cls, type) and issubclass(cls, Method), "cls", cls,
          "a subclass of keras_metainit.methods.Method")
    # Only the class that names the aliases registers them: a subclass that does not set its own
    # (a user's tweak of MetaInit, a shared base) must not take over its parent's.
    aliases = cls.__dict__.get("aliases", ())
    check(isinstance(aliases, tuple) and len(aliases) > 0 and all(
        isinstance(a, str) for a in aliases), "cls", cls,
        "a Method class that sets its own `aliases` (a non-empty tuple of strings)")
    for alias in aliases:
        _REGISTRY[alias] = cls
    return cls


def unregister(cls: Type[Method]) -> Type[Method]:
    """Take ``cls``'s aliases out of the registry (the inverse of :func:`register`).

    Args:
        cls: a registered method class.

    Returns:
        ``cls``, unchanged.
    """
    for alias, registered in list(_REGISTRY.items()):
        if registered is cls:
            del _REGISTRY[alias]
    return cls


def get(identifier, **options) -> Method:
    """Resolve a method from a string alias, a config dict or an instance.

    Args:
        identifier: a registered alias (``"metainit"``, ``"gradinit"``, ``"gradcosine"`` /
            ``"nio"``, ``"lsuv"``, ``"sylvester"``; see :func:`available`); a ``Method``;
            ``{"class_name": ..., "config": ...}``; or a list of these, run in order
            (:class:`Chain`).
        **options: constructor arguments for a string or dict identifier.

    Returns:
        A :class:`Method` instance.

    Raises:
        ValueError: unknown name, or options given together with an instance.
    """
    if options and isinstance(identifier, (Method, list, tuple)):
        given = ("a method instance; set them on the instance" if isinstance(identifier, Method)
                 else "a list of methods; pass method objects with their options")
        raise ValueError(f"Method options were given together with {given} instead. "
                         f"Received options: {sorted(options)}")
    if isinstance(identifier, Method):
        return identifier
    if isinstance(identifier, (list, tuple)):
        return Chain(identifier)
    if isinstance(identifier, dict):
        if identifier.get("class_name") == "Chain":
            return Chain(identifier.get("config", {}).get("methods", []))
        return deserialize(identifier, **options)
    if isinstance(identifier, str):
        cls = _REGISTRY.get(identifier.lower().replace("-", "_"))
        if cls is None:
            raise ValueError(f"Unknown method {identifier!r}. Known: {sorted(_REGISTRY)} "
                             "(a method class of your own: decorate it with "
                             "keras_metainit.methods.register)")
        return cls(**options)
    raise ValueError(f"Argument `method` must be a string or a Method. Received: {identifier!r}")


def serialize(method: Method) -> Dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` of a method."""
    return {"class_name": type(method).__name__, "config": method.get_config()}


def deserialize(config: Dict[str, Any], **options) -> Method:
    """The inverse of :func:`serialize`."""
    by_class = {cls.__name__: cls for cls in _REGISTRY.values()}
    cls = by_class.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown method class {config.get('class_name')!r}.")
    return cls(**{**config.get("config", {}), **options})


def available(kind: Optional[Type[Method]] = None) -> List[str]:
    """The name of every registered method (its first alias), in the order they were registered.

    Args:
        kind: only the subclasses of this class (say :class:`LearnedMethod`); None for all.

    Returns:
        ``["metainit", "gradinit", "gradcosine", "lsuv", "sylvester"]`` and any method
        registered since (:func:`register`); the command line's ``init --method`` choices are
        this list.
    """
    classes = dict.fromkeys(_REGISTRY.values())  # unique, in registration order
    return [cls.aliases[0] for cls in classes if kind is None or issubclass(cls, kind)]
