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

from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type

import tensorflow as tf

from keras_metainit import objectives, scale_opt

__all__ = ["Method", "LearnedMethod", "LayerwiseMethod", "MetaInit", "GradInit", "GradCosine",
           "get", "serialize", "deserialize"]

_REGISTRY: Dict[str, Type["Method"]] = {}


def _check(cond: bool, name: str, value: Any, what: str) -> None:
    if not cond:
        raise ValueError(f"Argument `{name}` must be {what}. Received: {name}={value!r}")


class Method:
    """Base class of every initialization method.

    Subclasses set ``aliases`` (the strings :func:`get` accepts) and store their constructor
    arguments as attributes of the same names, which makes :meth:`get_config` complete.
    """

    aliases: ClassVar[Tuple[str, ...]] = ()
    #: default examples per batch when ``meta_initialize`` is given none
    batch_size: Optional[int] = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for alias in cls.aliases:
            _REGISTRY[alias] = cls

    @property
    def name(self) -> str:
        return self.aliases[0] if self.aliases else type(self).__name__.lower()

    def get_config(self) -> Dict[str, Any]:
        import inspect

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
    defaults, :attr:`training` (normalization layers on batch statistics), :meth:`tunes` and
    :attr:`batches_per_step`.
    """

    steps: int = 100
    #: call the model with ``training=True`` (normalization layers use batch statistics; their
    #: moving statistics are never written). Dropout and noise layers are off either way.
    training: ClassVar[bool] = False
    batches_per_step: ClassVar[int] = 1
    #: names of the metrics :meth:`objective` returns, in order; the first is the headline
    metric_names: ClassVar[Tuple[str, ...]] = ("objective",)

    def tunes(self, variable) -> bool:
        """Whether ``variable`` gets a scale (tensors of zero norm are skipped by the engine)."""
        return len(variable.shape) >= 2

    def objective(self, loss_fn, params: List[tf.Tensor], batches) -> Tuple[tf.Tensor, tf.Tensor, Dict[str, tf.Tensor]]:
        """``(J, constraint, metrics)``: the value to minimize, whether this is a constraint
        step, and the metrics named by :attr:`metric_names`."""
        raise NotImplementedError

    def transform(self) -> scale_opt.ScaleTransform:
        """The scale update."""
        raise NotImplementedError


class LayerwiseMethod(Method):
    """A method that sets each layer from its own input activations, in order."""

    def run(self, model, dataset, loss_spec, *, seed: int, progress) -> List[Dict[str, Any]]:
        """Initialize ``model`` in place; return one row of facts per layer (set or skipped)."""
        raise NotImplementedError


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
        eps: the ε of the gradient quotient (reference 1e-5). It sets where GQ's minimum lies:
            with small ε GQ prefers nets whose signal shrinks with depth (METHODS.md §1); the
            report's end-to-end gain shows it.
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
                 eps: float = 1e-5, min_norm: float = 1e-3, batch_size: int = 128):
        _check(int(steps) >= 1, "steps", steps, "an integer >= 1")
        _check(lr > 0, "lr", lr, "positive")
        _check(0 <= momentum < 1, "momentum", momentum, "in [0, 1)")
        _check(eps > 0, "eps", eps, "positive")
        _check(0 < min_norm <= 1, "min_norm", min_norm, "in (0, 1]")
        self.steps, self.lr, self.momentum, self.eps = int(steps), lr, momentum, eps
        self.min_norm, self.batch_size = min_norm, batch_size

    def objective(self, loss_fn, params, batches):
        gq, loss = objectives.gradient_quotient(loss_fn, params, batches[0], self.eps)
        return gq, tf.constant(False), {"gq": gq, "loss": loss}

    def transform(self):
        return scale_opt.sign_momentum(self.lr, self.momentum, self.min_norm)


def get(identifier, **options) -> Method:
    """Resolve a method from a string alias, a config dict or an instance.

    Args:
        identifier: ``"metainit"``, ``"gradinit"``, ``"gradcosine"`` / ``"nio"``, ``"lsuv"``,
            ``"sylvester"``; a ``Method``; or ``{"class_name": ..., "config": ...}``.
        **options: constructor arguments for a string or dict identifier.

    Returns:
        A :class:`Method` instance.

    Raises:
        ValueError: unknown name, or options given together with an instance.
    """
    if isinstance(identifier, Method):
        if options:
            raise ValueError(
                "Method options were given together with a method instance; set them on the "
                f"instance instead. Received options: {sorted(options)}"
            )
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, **options)
    if isinstance(identifier, str):
        cls = _REGISTRY.get(identifier.lower().replace("-", "_"))
        if cls is None:
            raise ValueError(
                f"Unknown method {identifier!r}. Known: {sorted(_REGISTRY)}"
            )
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


# ----------------------------------------------------------------------------------------------
# Layer-wise methods (their machinery lives in keras_metainit/layerwise.py)
# ----------------------------------------------------------------------------------------------
