"""Initialization methods: small objects holding hyperparameters, resolved like Keras optimizers.

A *learned* method (:class:`MetaInit`, :class:`GradInit`, :class:`GradCosine`) is a composition:
which tensors get a scale, an objective (a pure function from :mod:`keras_metainit.objectives`),
and a scale update (from :mod:`keras_metainit.scale_opt`). The engine
(:func:`keras_metainit.meta_initialize`) runs the steps for all of them.

A *layer-wise* method (LSUV, Sylvester) sets each layer from its input activations, in order; it
shares the engine's data handling and report, not its step.

``get("metainit", steps=100)`` / ``get(MetaInit(steps=100))`` resolve a method as
``keras.optimizers.get`` resolves an optimizer.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

import keras
import tensorflow as tf

from keras_metainit import objectives, scale_opt, validation
from keras_metainit.validation import check, is_real

__all__ = ["Method", "LearnedMethod", "ConstrainedMethod", "LayerwiseMethod", "MetaInit",
           "GradInit", "GradCosine", "LSUV", "Sylvester", "Chain", "get", "serialize",
           "deserialize", "available", "DEFAULT"]

#: What ``meta_initialize`` runs when no method is named: LSUV, the strongest and cheapest in
#: ``benchmarks/claims.py`` (the evidence: docs/choosing.md, "The default").
DEFAULT = "lsuv"

#: alias -> class; every subclass of :class:`Method` with ``aliases`` adds itself when defined
_REGISTRY: Dict[str, Type["Method"]] = {}


class Method:
    """Base class of every initialization method.

    Subclasses set ``aliases`` (the strings :func:`get` accepts; defining the class registers
    it, so :func:`get`, :func:`available` and the command line's ``init --method`` know it) and
    store their constructor arguments as attributes of the same names, which makes
    :meth:`get_config` complete.
    """

    aliases: ClassVar[Tuple[str, ...]] = ()
    #: default examples per batch when ``meta_initialize`` is given none
    batch_size: Optional[int] = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        # Only the class that names the aliases registers them: a subclass that does not set
        # its own (a user's tweak of MetaInit, a shared base) does not take over its parent's.
        for alias in cls.__dict__.get("aliases", ()):
            _REGISTRY[alias] = cls

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

        Runs in the input pipeline, on whole batches, before they are split over replicas or
        micro-batches. The default passes them through.
        """
        return batches

    def objective(self, loss_fn, params: List[tf.Tensor], shards) -> Tuple[tf.Tensor, tf.Tensor, Dict[str, tf.Tensor]]:
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


class MetaInit(LearnedMethod):
    """MetaInit: tune each tensor's norm to minimize the gradient quotient.

    The gradient quotient (:func:`keras_metainit.gradient_quotient`) measures how much one
    gradient step changes the gradient; MetaInit moves the norm of every weight tensor (kernels,
    embeddings: ``ndim >= 2``) by signed momentum steps on its derivative, never the direction.
    Normalization layers run in inference mode and dropout is off.

    Args:
        steps: number of steps (reference 500).
        lr: step on each norm per unit of sign, in absolute norm units (reference 0.1).
        momentum: momentum of the norm steps (reference 0.9).
        eps: the ε of the gradient quotient. **Default 1e-2, not the paper's 1e-5**: ε sets
            where GQ's minimum lies, and with 1e-5 MetaInit shrinks deep ReLU nets far below He
            (the report's end-to-end gain shows it) so that they train poorly after it
            (``benchmarks/metainit_eps.py``, docs/methods/metainit.md). Pass ``eps=1e-5`` for the
            paper's setting.
        min_norm: floor of each norm as a fraction of its starting norm (the reference has none).
        batch_size: examples per step (reference: the size of its random batch; 128 here).

    Example:
        >>> import keras, keras_metainit
        >>> model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, "relu"),
        ...                           keras.layers.Dense(10)])
        >>> report = model.meta_initialize(None, method=keras_metainit.methods.MetaInit(steps=50))

    Reference:
        Dauphin & Schoenholz, "MetaInit: Initializing learning by learning to initialize",
        NeurIPS 2019.
    """

    aliases = ("metainit", "meta_init")
    metric_names = ("gq", "loss")

    def __init__(self, steps: int = 500, lr: float = 0.1, momentum: float = 0.9,
                 eps: float = 1e-2, min_norm: float = 1e-3, batch_size: int = 128):
        self.steps = validation.steps(steps)
        check(is_real(lr) and lr > 0, "lr", lr, "positive")
        check(is_real(momentum) and 0 <= momentum < 1, "momentum", momentum, "in [0, 1)")
        check(is_real(eps) and eps > 0, "eps", eps, "positive")
        check(is_real(min_norm) and 0 < min_norm <= 1, "min_norm", min_norm, "in (0, 1]")
        self.lr, self.momentum, self.eps = lr, momentum, eps
        self.min_norm, self.batch_size = min_norm, batch_size

    def objective(self, loss_fn, params, shards):
        gq, loss = objectives.gradient_quotient(loss_fn, params, shards[0], self.eps)
        return gq, keras.ops.convert_to_tensor(False), {"gq": gq, "loss": loss}

    def transform(self):
        return scale_opt.sign_momentum(self.lr, self.momentum, self.min_norm)


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

    def constrained(self, gnorm: tf.Tensor, target: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
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


class GradInit(ConstrainedMethod):
    """GradInit: tune one scale per tensor so that the first optimizer step helps most.

    Each step takes two batches ``S`` and ``S̃`` that share ``overlap`` of their examples and
    minimizes the loss on ``S̃`` after one step of the target optimizer from ``θ_α``,
    ``L(S̃; θ_α − η·A[g_S]) / η`` (:func:`~keras_metainit.objectives.lookahead_loss`), subject to
    ``‖g_S(θ_α)‖ ≤ γ`` (ℓ2 norm for ``step="sgd"``, ℓ1 for ``"adam"``, as in the reference code).
    The rest (which tensors get a scale, their update) is :class:`ConstrainedMethod`'s.

    Args:
        steps: number of steps (reference: about one epoch, 390 on CIFAR-10).
        lr: RescaleAdam's learning rate (reference recipes: 3e-3 to 1e-2; 1e-2 for VGG-19
            without normalization).
        eta: the look-ahead step size η (0.1).
        gamma: the gradient-norm bound γ (1.0).
        min_scale: floor of every scale (0.01).
        step: ``"sgd"`` (normalized gradient step) or ``"adam"`` (sign step).
        overlap: fraction of ``S̃`` shared with ``S`` (0.5).
        normalize: for ``step="sgd"``, step along ``g/‖g‖₂`` (the reference recipes'
            ``--gradinit-normalize-grad``) rather than ``g``.
        batch_size: examples in each of ``S`` and ``S̃``.
        scale_invariant: normalize the scale gradient before RescaleAdam (not in the paper;
            see :class:`ConstrainedMethod`).

    Example:
        >>> report = keras_metainit.meta_initialize(model, (x, y), method="gradinit", steps=200)

    Reference:
        Zhu, Ni, Xu, Kong, Huang & Goldstein, "GradInit: Learning to Initialize Neural Networks
        for Stable and Efficient Training", NeurIPS 2021.
    """

    aliases = ("gradinit", "grad_init")
    batches_per_step = 2
    metric_names = ("lookahead", "loss", "gnorm")

    def __init__(self, steps: int = 390, lr: float = 1e-2, eta: float = 0.1, gamma: float = 1.0,
                 min_scale: float = 0.01, step: str = "sgd", overlap: float = 0.5,
                 normalize: bool = True, batch_size: int = 128, scale_invariant: bool = False):
        super().__init__(steps=steps, lr=lr, gamma=gamma, min_scale=min_scale,
                         batch_size=batch_size, scale_invariant=scale_invariant)
        check(is_real(eta) and eta > 0, "eta", eta, "positive")
        check(step in ("sgd", "adam"), "step", step, "'sgd' or 'adam'")
        check(is_real(overlap) and 0 <= overlap <= 1, "overlap", overlap, "in [0, 1]")
        self.eta, self.step, self.overlap, self.normalize = eta, step, overlap, normalize

    def prepare(self, batches):
        """``(S, S̃)``: ``S̃`` is the first ``overlap`` of ``S`` and the rest of the next batch."""
        s, other = batches
        shared = int(round(self.overlap * int(tf.nest.flatten(s)[0].shape[0])))
        s_tilde = tf.nest.map_structure(lambda a, b: tf.concat([a[:shared], b[shared:]], 0),
                                        s, other)
        return s, s_tilde

    def objective(self, loss_fn, params, shards):
        s, s_tilde = shards
        loss, grads = objectives.gradient(loss_fn, params, s)
        gnorm = objectives.gradient_norm(grads, 1 if self.step == "adam" else 2)
        look = objectives.lookahead_loss(loss_fn, params, grads, s_tilde, self.eta, self.step,
                                         self.normalize)
        value, constraint = self.constrained(gnorm, look)
        return value, constraint, {"lookahead": look, "loss": loss, "gnorm": gnorm}


class GradCosine(ConstrainedMethod):
    """NIO: tune one scale per tensor to raise the cosine between per-sample gradients.

    GradCosine (:func:`keras_metainit.grad_cosine`) is the mean pairwise cosine between the
    gradients of ``splits`` overlapping chunks of the batch; GN is their mean norm. While
    ``GN > gamma`` a step reduces GN (the constraint); otherwise it minimizes the target:
    ``"gc"`` = −GC, ``"gc_gn"`` = −GC − λ·Σ‖g_i‖², ``"gc_gn_sqrt"`` = −GC − λ·Σ‖g_i‖ (the
    released recipe, λ = ``gn_weight`` = 1). The rest is :class:`ConstrainedMethod`'s.

    Note: in the official logs on ResNet-50 the cosine barely moved while GN grew toward γ; the
    report shows GC and GN before and after so you can see what happened on your model.

    Args:
        steps: number of steps (100).
        lr: RescaleAdam's learning rate (released recipes: 3e-3 to 5e-2).
        splits: number of chunks D (4).
        overlap: overlap ratio r of the chunks (0.2).
        gamma: bound γ on GN (10, the released ImageNet recipe).
        target: ``"gc"``, ``"gc_gn"`` or ``"gc_gn_sqrt"``.
        gn_weight: λ of the GN terms of the target.
        min_scale: floor of every scale (0.01).
        batch_size: examples per step.
        scale_invariant: normalize the scale gradient before RescaleAdam (not in the paper;
            see :class:`ConstrainedMethod`).

    Example:
        >>> report = keras_metainit.meta_initialize(model, (x, y), method="nio")

    Reference:
        Yang, Wang, Zhou, Lin & Tao, "Towards Theoretically Inspired Neural Initialization
        Optimization", NeurIPS 2022.
    """

    aliases = ("gradcosine", "nio", "grad_cosine")
    metric_names = ("gc", "gn", "loss")

    def __init__(self, steps: int = 100, lr: float = 1e-2, splits: int = 4, overlap: float = 0.2,
                 gamma: float = 10.0, target: str = "gc_gn_sqrt", gn_weight: float = 1.0,
                 min_scale: float = 0.01, batch_size: int = 128, scale_invariant: bool = False):
        super().__init__(steps=steps, lr=lr, gamma=gamma, min_scale=min_scale,
                         batch_size=batch_size, scale_invariant=scale_invariant)
        check(is_real(splits) and splits >= 2, "splits", splits, "an integer >= 2")
        check(is_real(overlap) and 0 <= overlap < 1, "overlap", overlap, "in [0, 1)")
        check(target in ("gc", "gc_gn", "gc_gn_sqrt"), "target", target,
              "'gc', 'gc_gn' or 'gc_gn_sqrt'")
        check(is_real(gn_weight) and gn_weight >= 0, "gn_weight", gn_weight, ">= 0")
        self.splits, self.overlap = int(splits), overlap
        self.target, self.gn_weight = target, gn_weight

    def objective(self, loss_fn, params, shards):
        # examples_independent: set on the loss function by model_fn.make_loss_fn
        gc, gn, norms, loss = objectives.grad_cosine(
            loss_fn, params, shards[0], self.splits, self.overlap,
            getattr(loss_fn, "examples_independent", False))
        if self.target == "gc":
            target = -gc
        elif self.target == "gc_gn":
            target = -gc - self.gn_weight * keras.ops.sum(keras.ops.square(norms))
        else:
            target = -gc - self.gn_weight * keras.ops.sum(norms)
        value, constraint = self.constrained(gn, target)
        return value, constraint, {"gc": gc, "gn": gn, "loss": loss}


class Chain(Method):
    """Several methods run in order on one model, with one report: e.g. LSUV to fix every
    layer's signal, then GradInit to tune the scales for the first optimizer steps.

    ``meta_initialize(model, data, method=["lsuv", "gradinit"])`` builds one. Each stage
    sees the same ``data`` and starts from the weights the previous stage left; the report
    holds every stage's own report in ``report.stages`` and the last learned stage's metrics.

    Args:
        methods: the stages, each a name, a method object or a serialized method; at least two.

    Example:
        >>> report = keras_metainit.meta_initialize(model, (x, y), method=["lsuv", "gradinit"])

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
            raise ValueError(f"Unknown method {identifier!r}. Known: {sorted(_REGISTRY)}")
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
    """The name of every registered method (its first alias), in the order they were defined.

    Args:
        kind: only the subclasses of this class (say :class:`LearnedMethod`); None for all.

    Returns:
        ``["metainit", "gradinit", "gradcosine", "lsuv", "sylvester"]`` and any method defined
        since: a subclass of :class:`Method` with ``aliases`` registers itself, and the command
        line's ``init --method`` choices are this list.
    """
    classes = dict.fromkeys(_REGISTRY.values())  # unique, in registration order
    return [cls.aliases[0] for cls in classes if kind is None or issubclass(cls, kind)]


# The layer-wise methods live in keras_metainit/layerwise/ (one object the walk calls); imported
# here so that `methods.LSUV` works and both are registered with this module.
from keras_metainit.layerwise.lsuv import LSUV  # noqa: E402
from keras_metainit.layerwise.sylvester import Sylvester  # noqa: E402
