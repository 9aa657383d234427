"""The demo's contenders: one row of a scene's table each, a function that builds the initialized model.

A contender's ``build(cfg, data)`` returns the *initialized*, uncompiled model in an
:class:`Initialized`; the time it takes is the "init s" column, so a learned initialization
(``model.meta_initialize(...)``) fits here too. :data:`CONTENDERS` holds both scenes' rows,
:data:`ANYINIT` the optional peer's and :data:`WN_CONTENDERS` the weight-normalized MLP's.

TensorFlow and Keras are imported inside the functions that need them.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from keras_metainit.demo.config import DemoConfig, DemoData

__all__ = [
    "Initialized", "Contender", "CONTENDERS", "WN_CONTENDERS", "ANYINIT", "BAD_START",
    "anyinit_available", "plain_mlp", "he_mlp", "default_mlp", "bad_start_mlp", "wn_mlp",
]


@dataclass
class Initialized:
    """What a contender's ``build`` returns.

    Attributes:
        model: the initialized model, not yet compiled.
        report: the ``InitReport`` of ``meta_initialize``, for a contender that runs it.
        gq_before: the gradient quotient on a fixed training batch before ``meta_initialize``.
        gq_after: the same after it.
        probe_s: seconds spent measuring those two (taken out of the "init s" column).
    """

    model: Any
    report: Any = None
    gq_before: Optional[float] = None
    gq_after: Optional[float] = None
    probe_s: float = 0.0


@dataclass(frozen=True)
class Contender:
    """One row of the demo's tables.

    Attributes:
        name: the row's label (unique over both scenes).
        build: ``build(cfg, data) -> Initialized``, the initialized model, not yet compiled.
        fixes: whether ``build`` runs ``meta_initialize`` on its scene's start (then the table
            shows the gradient quotient before and after it).
        scene: ``"default"`` or ``"bad"`` (:data:`SCENES`), the table the row belongs to.
    """

    name: str
    build: Callable[["DemoConfig", "DemoData"], Initialized]
    fixes: bool = False
    scene: str = "default"


def _layer_seed(cfg: DemoConfig, i: int) -> int:
    return cfg.seed * 10_000 + i


def plain_mlp(cfg: DemoConfig, kernel_init: Callable[[int], Any]):
    """The demo's network: ``cfg.depth`` ReLU ``keras.layers.Dense`` of ``cfg.width``, 10 logits.

    Args:
        cfg: the run's settings.
        kernel_init: ``kernel_init(i)`` is the kernel initializer of layer ``i`` (the classifier
            is layer ``cfg.depth``); one fresh, seeded instance per layer.
    """
    import keras

    inputs = keras.Input((784,))
    h = inputs
    for i in range(cfg.depth):
        h = keras.layers.Dense(cfg.width, activation="relu", kernel_initializer=kernel_init(i))(h)
    logits = keras.layers.Dense(10, kernel_initializer=kernel_init(cfg.depth))(h)
    return keras.Model(inputs, logits, name=f"mlp_{cfg.depth}x{cfg.width}")


def he_mlp(cfg: DemoConfig):
    """The demo's network with He-normal kernels (``he_normal``)."""
    import keras

    return plain_mlp(cfg, lambda i: keras.initializers.HeNormal(seed=_layer_seed(cfg, i)))


def default_mlp(cfg: DemoConfig):
    """The demo's network with Keras's default kernels (``glorot_uniform``)."""
    import keras

    return plain_mlp(cfg, lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i)))


def bad_start_mlp(cfg: DemoConfig):
    """He-normal kernels, every one multiplied by ``cfg.bad_scale``: the signal dies with depth."""
    model = he_mlp(cfg)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(layer.kernel * cfg.bad_scale)
    return model


_STARTS = {"default": default_mlp, "bad": bad_start_mlp}


def build_keras_default(cfg: DemoConfig, data: DemoData) -> Initialized:
    """Keras's default kernel initializer, ``glorot_uniform``."""
    return Initialized(default_mlp(cfg))


def build_he(cfg: DemoConfig, data: DemoData) -> Initialized:
    """He-normal kernels (``he_normal``): the one-line fix."""
    return Initialized(he_mlp(cfg))


def build_bad_start(cfg: DemoConfig, data: DemoData) -> Initialized:
    """The bad start, not fixed."""
    return Initialized(bad_start_mlp(cfg))


def _probe_gq(model, data: DemoData) -> float:
    """GQ on the first 128 training examples (the same batch for every contender)."""
    from keras_metainit import gradient_quotient

    return gradient_quotient(model, (data.x_train[:128], data.y_train[:128]))


def _fixed(start: str, method: str, with_data: bool = True, **fixed_options):
    """A contender's ``build``: the scene's start, then ``meta_initialize(method)``."""

    def build(cfg: DemoConfig, data: DemoData) -> Initialized:
        options = {k: (getattr(cfg, v) if isinstance(v, str) and hasattr(cfg, v) else v)
                   for k, v in fixed_options.items()}
        model = _STARTS[start](cfg)
        t0 = time.perf_counter()
        gq_before = _probe_gq(model, data)
        probe_s = time.perf_counter() - t0
        report = model.meta_initialize(
            (data.x_train, data.y_train) if with_data else None,
            method=method, verbose=0, seed=cfg.seed, **options,
        )
        t0 = time.perf_counter()
        gq_after = _probe_gq(model, data)
        probe_s += time.perf_counter() - t0
        return Initialized(model, report, gq_before, gq_after, probe_s)

    build.__doc__ = (f"The {start!r} start fixed by {method} "
                     f"({'training data' if with_data else 'random data'}).")
    return build


#: MetaInit on random data (its reference setting), GradInit and GradCosine at lr 0.1 on the
#: training data, LSUV and Sylvester (orthogonal latent code) on the training data.
build_metainit = _fixed("default", "metainit", with_data=False, steps="metainit_steps")
build_gradinit = _fixed("default", "gradinit", steps="gradinit_steps", lr=0.1)
build_gradcosine = _fixed("default", "gradcosine", steps="gradcosine_steps", lr=0.1)
build_lsuv = _fixed("default", "lsuv")
build_sylvester = _fixed("default", "sylvester", latent="orthogonal")
build_bad_metainit = _fixed("bad", "metainit", with_data=False, steps="metainit_steps")
build_bad_gradinit = _fixed("bad", "gradinit", steps="gradinit_steps", lr=0.1)
build_bad_lsuv = _fixed("bad", "lsuv")


def build_anyinit(cfg: DemoConfig, data: DemoData) -> Initialized:
    """A peer: AnyInit (PyPI ``anyinit``) in its empirical mode on 1,024 training images, applied
    to Keras's default start (it redraws every kernel)."""
    import anyinit

    model = default_mlp(cfg)
    anyinit.initialize(model, "empirical", data.x_train[:1024], seed=cfg.seed)
    return Initialized(model)


def anyinit_available() -> bool:
    """Whether the optional peer ``anyinit`` can be imported."""
    try:
        importlib.import_module("anyinit")
    except ImportError:
        return False
    return True


def wn_mlp(cfg: DemoConfig, hidden_init: Callable[[int], Any], output_init: Any):
    """``cfg.depth`` ReLU ``WNDense`` layers of ``cfg.width``, then 10 logits (``--wn`` rows).

    Args:
        cfg: the run's settings.
        hidden_init: ``hidden_init(i)`` is the kernel initializer of hidden layer ``i`` (one
            fresh, seeded instance per layer: a seeded Keras initializer repeats its values).
        output_init: the classifier's kernel initializer.
    """
    import keras

    from keras_metainit.layers import WNDense

    inputs = keras.Input((784,))
    h = inputs
    for i in range(cfg.depth):
        h = WNDense(cfg.width, activation="relu", kernel_initializer=hidden_init(i))(h)
    logits = WNDense(10, kernel_initializer=output_init)(h)
    return keras.Model(inputs, logits, name=f"wn_mlp_{cfg.depth}x{cfg.width}")


def build_wninit(cfg: DemoConfig, data: DemoData) -> Initialized:
    """Arpit et al.'s weight-norm init: gamma=2 for the ReLU layers, gamma=1 for the classifier."""
    from keras_metainit.initializers import WNInit

    return Initialized(wn_mlp(
        cfg,
        hidden_init=lambda i: WNInit(gamma=2.0, seed=_layer_seed(cfg, i)),
        output_init=WNInit(gamma=1.0, seed=_layer_seed(cfg, cfg.depth)),
    ))


def build_glorot(cfg: DemoConfig, data: DemoData) -> Initialized:
    """Keras's default kernel initializer (``glorot_uniform``) in the weight-normalized net."""
    import keras

    return Initialized(wn_mlp(
        cfg,
        hidden_init=lambda i: keras.initializers.GlorotUniform(seed=_layer_seed(cfg, i)),
        output_init=keras.initializers.GlorotUniform(seed=_layer_seed(cfg, cfg.depth)),
    ))


BAD_START = "x0.1 He, no fix"

CONTENDERS: List[Contender] = [
    Contender("Keras default", build_keras_default),
    Contender("He", build_he),
    Contender("default + MetaInit", build_metainit, True),
    Contender("default + GradInit", build_gradinit, True),
    Contender("default + GradCosine", build_gradcosine, True),
    Contender("default + LSUV", build_lsuv, True),
    Contender("default + Sylvester", build_sylvester, True),
    Contender(BAD_START, build_bad_start, scene="bad"),
    Contender("x0.1 + MetaInit", build_bad_metainit, True, "bad"),
    Contender("x0.1 + GradInit", build_bad_gradinit, True, "bad"),
    Contender("x0.1 + LSUV", build_bad_lsuv, True, "bad"),
]

#: The peer's row (first scene), added when ``anyinit`` is installed.
ANYINIT = Contender("AnyInit (peer)", build_anyinit)

#: The weight-normalized MLP rows, added by ``--wn``.
WN_CONTENDERS: List[Contender] = [
    Contender("WN: WNInit", build_wninit),
    Contender("WN: glorot_uniform", build_glorot),
]
