"""The rows of every experiment's tables: a :class:`Contender` is a start (the model builder's
keyword arguments: its kernel initializer, or an architecture such as Fixup or BatchNorm), an
optional initialization applied to the built model, and optional changes to the training budget
(a warmup run).

The constructors below are the only place where a row is defined: Keras's default, He, each
method of the suite (:func:`suite`, chains with a list of methods), the peer AnyInit
(:func:`anyinit`, optional dependency, loaded by :func:`load_anyinit`), Fixup and weight-norm
init where they apply, the Transformer inits T-Fixup and DeepNorm when the package has them, and
reference rows (:func:`reference`: BatchNorm, warmup, Pre-LN).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from keras_metainit.validation import check

__all__ = [
    "Contender", "KINDS", "keras_default", "he", "suite", "anyinit", "load_anyinit", "fixup",
    "wninit", "reference", "transformer_inits", "keep", "chosen", "TRANSFORMER_METHODS",
    "INIT_DATA",
]

#: What a row is: ``"analytic"`` (a formula: Keras's default, He, AnyInit, Fixup, WN init),
#: ``"suite"`` (a method of this package run on the built model), ``"reference"`` (what the claim
#: is about: normalization, warmup, Pre-LN), ``"start"`` (a bad start left as it is).
KINDS = ("analytic", "suite", "reference", "start")

#: Examples of the training set given to an initialization (the first ones).
INIT_DATA = 8192

#: The Transformer initializations (T-Fixup, DeepNorm), by method name, when registered.
TRANSFORMER_METHODS = {"t_fixup": "T-Fixup", "deepnorm": "DeepNorm"}

Init = Callable[[Any, Any, int], Any]


@dataclass(frozen=True)
class Contender:
    """One row of a table.

    Attributes:
        name: the row's label.
        kind: one of :data:`KINDS`.
        model: keyword arguments of the table's model builder (``kernel_initializer``,
            ``fixup``, ``norm``, ``post_ln`` ...).
        init: ``init(model, (x, y), seed)``, run on the built model before training (the time
            it takes is the "init s" column); returns a report or None.
        budget: changes to the table's :class:`~keras_metainit.experiments.training.Budget`
            (``{"warmup": 100}``).
        scale: multiply every kernel by this before ``init`` (a bad start).
    """

    name: str
    kind: str = "analytic"
    model: Mapping[str, Any] = field(default_factory=dict)
    init: Optional[Init] = None
    budget: Mapping[str, Any] = field(default_factory=dict)
    scale: Optional[float] = None

    def __post_init__(self):
        check(self.kind in KINDS, "kind", self.kind, f"one of {KINDS}")

    def on(self, scale: Optional[float] = None, **model: Any) -> "Contender":
        """This row from another start: ``scale`` and builder arguments replaced."""
        return Contender(self.name, self.kind, {**self.model, **model}, self.init, self.budget,
                         scale if scale is not None else self.scale)

    def named(self, name: str) -> "Contender":
        """This row under another label."""
        return Contender(name, self.kind, self.model, self.init, self.budget, self.scale)


def keras_default() -> Contender:
    """Keras's default kernel initializer, ``glorot_uniform``: the start a user has."""
    return Contender("Keras default", "analytic", {"kernel_initializer": "glorot_uniform"})


def he() -> Contender:
    """He-normal kernels (``he_normal``): the one-line fix for ReLU nets."""
    return Contender("He", "analytic", {"kernel_initializer": "he_normal"})


_LABELS = {"metainit": "MetaInit", "gradinit": "GradInit", "gradcosine": "GradCosine",
           "lsuv": "LSUV", "sylvester": "Sylvester", **TRANSFORMER_METHODS}


_SHOWN = (("steps", "{} steps"), ("lr", "lr {:g}"), ("eta", "η {:g}"), ("step", "{} step"))


def _label(method: Union[str, Sequence[str]], options: Mapping[str, Any]) -> str:
    """``"MetaInit (20 steps)"``, ``"LSUV → GradInit (20 steps, η 0.001, adam step)"``: the
    method and its steps, rates and look-ahead step (the other options are the regime's)."""
    names = [method] if isinstance(method, str) else list(method)
    text = " → ".join(_LABELS.get(n, n) for n in names)
    shown = ", ".join(fmt.format(options[k]) for k, fmt in _SHOWN if k in options)
    return f"{text} ({shown})" if shown else text


def suite(method: Union[str, Sequence[str]], label: Optional[str] = None, *,
          start: str = "glorot_uniform", random_data: bool = False,
          **options: Any) -> Contender:
    """A method of the suite (or a chain, a list of methods) run on the built model.

    Args:
        method: a registered method name (``"metainit"``, ``"gradinit"``, ``"lsuv"`` ...) or a
            list of them run as one chain (``options`` but ``steps`` go to the last one).
        label: the row's label (default: the method's name and ``options``).
        start: the kernel initializer it starts from (default Keras's, ``glorot_uniform``).
        random_data: run on random data (``data=None``, MetaInit's reference setting) instead of
            the first :data:`INIT_DATA` training examples.
        **options: the method's options (``steps``, ``lr``, ``eta`` ...).

    Returns:
        A ``"suite"`` :class:`Contender`.

    Examples:
        >>> row = suite("metainit", steps=20)
        >>> chain = suite(["lsuv", "gradinit"], steps=20, eta=1e-3)
    """
    options = dict(options)

    def init(model, data, seed):
        from keras_metainit import methods

        arrays = None if random_data else tuple(a[:INIT_DATA] for a in data)
        if isinstance(method, str):
            return model.meta_initialize(arrays, method=method, seed=seed, verbose=0, **options)
        rest = {k: v for k, v in options.items() if k != "steps"}
        chain = [methods.get(m) for m in method[:-1]] + [methods.get(method[-1], **rest)]
        steps = {"steps": options["steps"]} if "steps" in options else {}
        return model.meta_initialize(arrays, method=chain, seed=seed, verbose=0, **steps)

    return Contender(label or _label(method, options), "suite",
                     {"kernel_initializer": start}, init)


def chosen(label: str = "default call", steps: Optional[int] = None) -> Contender:
    """``model.meta_initialize(data)`` without a method, as :func:`keras_metainit.choose.choose`
    picks it for the model (from Keras's default init), on the first :data:`INIT_DATA` training
    examples; ``steps`` overrides a learned method's steps (a quick run)."""
    def init(model, data, seed):
        from keras_metainit import methods
        from keras_metainit.choose import choose

        method, _ = choose(model)  # the default call's own choice; only to pass ``steps``
        extra = {"steps": steps} if steps and isinstance(method, methods.LearnedMethod) else {}
        return model.meta_initialize(tuple(a[:INIT_DATA] for a in data), seed=seed, verbose=0,
                                     **extra)

    return Contender(label, "suite", {"kernel_initializer": "glorot_uniform"}, init)


def keep(rows: Sequence[Contender], prefixes: Optional[Sequence[str]]) -> List[Contender]:
    """The rows whose name starts with one of ``prefixes`` (all of them for None; a prefix
    ending in ``$`` is a whole name): the rows of a quick or a partial run."""
    if prefixes is None:
        return list(rows)
    exact = {p[:-1] for p in prefixes if p.endswith("$")}
    starts = tuple(p for p in prefixes if not p.endswith("$"))
    return [r for r in rows if r.name in exact or (starts and r.name.startswith(starts))]


_ANYINIT: Dict[str, Any] = {}


def load_anyinit(quiet: bool = False):
    """The peer AnyInit (PyPI ``anyinit``), or None when it is not importable (said once).

    Returns:
        The ``anyinit`` module or None.
    """
    if "module" not in _ANYINIT:
        try:
            _ANYINIT["module"] = importlib.import_module("anyinit")
        except ImportError as exc:
            _ANYINIT["module"] = None
            if not quiet:
                print(f"note: AnyInit is not importable ({exc}); its rows are skipped "
                      "(pip install keras-metainit[anyinit])", flush=True)
    return _ANYINIT["module"]


def anyinit(mode: str = "empirical", examples: int = 1024) -> List[Contender]:
    """The peer AnyInit's row (``[]`` when ``anyinit`` is not installed): it redraws every
    kernel, in ``"empirical"`` mode from ``examples`` training inputs, or ``"analytic"``.

    Returns:
        A list of zero or one ``"analytic"`` :class:`Contender`.
    """
    module = load_anyinit()
    if module is None:
        return []

    def init(model, data, seed):
        spec = data[0][:examples] if mode == "empirical" else None
        return module.initialize(model, mode, spec, seed=seed)

    return [Contender(f"AnyInit ({mode})", "analytic", {"kernel_initializer": "glorot_uniform"},
                      init)]


def fixup() -> Contender:
    """Fixup (Zhang et al. 2019) for the residual builders: ``fixup=True``."""
    return Contender("Fixup", "analytic", {"fixup": True, "kernel_initializer": "he_normal"})


def wninit() -> Contender:
    """Weight-norm init (Arpit et al. 2019) for :func:`~keras_metainit.experiments.models.mlp`:
    ``WNDense`` layers, ``WNInit`` gamma 2 (ReLU) and 1 for the classifier."""
    from keras_metainit.initializers import WNInit
    from keras_metainit.layers import WNDense

    return Contender("WN + WNInit", "analytic", {
        "dense": WNDense, "kernel_initializer": WNInit(gamma=2.0),
        "output_initializer": WNInit(gamma=1.0)})


def reference(name: str, model: Optional[Mapping[str, Any]] = None,
              budget: Optional[Mapping[str, Any]] = None) -> Contender:
    """A reference row: what the claim is about (``model={"norm": "batch"}``,
    ``budget={"warmup": 100}``, ``model={"post_ln": False}``), from Keras's default init."""
    return Contender(name, "reference",
                     {"kernel_initializer": "glorot_uniform", **(model or {})}, None,
                     dict(budget or {}))


def transformer_inits(**options: Any) -> List[Contender]:
    """T-Fixup and DeepNorm rows, for the methods of :data:`TRANSFORMER_METHODS` registered in
    :mod:`keras_metainit.methods` (none before ``keras_metainit.transformers`` lands).

    Returns:
        A list of ``"suite"`` :class:`Contender` (methods of this package, run through
        ``meta_initialize``).
    """
    from keras_metainit import methods

    names = set(methods.available())
    return [suite(name, label, **options) for name, label in TRANSFORMER_METHODS.items()
            if name in names]
