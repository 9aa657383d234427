"""The demo's settings and data: :class:`DemoConfig` (what every contender gets), :data:`QUICK`,
:data:`SCENES` (the two starts) and :func:`load_demo_data` (the bundled Fashion-MNIST subset)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["DemoConfig", "QUICK", "SCENES", "DemoData", "load_demo_data"]


@dataclass(frozen=True)
class DemoConfig:
    """Settings of one ``demo`` run. Every contender gets exactly these.

    The training budget (SGD with momentum 0.9, rate 0.01, batch 128, 2 epochs) is the one of the
    learned methods' evidence in ``docs/benchmarks.md``.
    """

    depth: int = 20  # hidden Dense layers
    width: int = 128  # units per hidden layer
    epochs: int = 2
    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 0.01  # SGD
    momentum: float = 0.9
    bad_scale: float = 0.1  # the bad start: every kernel times this, of He-normal
    metainit_steps: int = 200
    gradinit_steps: int = 100
    gradcosine_steps: int = 50
    wn: bool = False  # also run the weight-normalized MLP rows
    train_size: Optional[int] = None  # None: all 6,000 bundled training images
    test_size: Optional[int] = None  # None: all 2,000 bundled test images
    out: str = "keras-metainit-demo"
    plots: bool = True  # write the figures (needs matplotlib, installed with the package)


#: What ``--quick`` changes: a tiny run for tests and smoke checks (seconds, not minutes).
QUICK = {
    "depth": 4, "width": 32, "epochs": 2, "train_size": 1024, "test_size": 512,
    "metainit_steps": 20, "gradinit_steps": 10, "gradcosine_steps": 5,
}


#: The two scenes: key -> title.
SCENES = {
    "default": "from Keras's default init (glorot_uniform), the start a user has",
    "bad": "from a bad start (every kernel x{bad_scale:g} of He-normal: gradients vanish)",
}


@dataclass
class DemoData:
    """The demo's data: flattened, standardized images and integer labels."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


def load_demo_data(cfg: DemoConfig) -> DemoData:
    """The bundled Fashion-MNIST subset, flattened, standardized with the training mean and std.

    With ``train_size`` / ``test_size`` a seeded random subset of that size is taken.
    """
    import numpy as np

    from keras_metainit.datasets import load_fashion_mnist

    rng = np.random.default_rng(cfg.seed)
    arrays = []
    for split, size in (("train", cfg.train_size), ("test", cfg.test_size)):
        x, y = load_fashion_mnist(split, flatten=True)
        if size is not None and size < len(x):
            keep = rng.permutation(len(x))[:size]
            x, y = x[keep], y[keep]
        arrays.append((x, y))
    (x_train, y_train), (x_test, y_test) = arrays
    mean, std = float(x_train.mean()), float(x_train.std())
    return DemoData(
        x_train=(x_train - mean) / std,
        y_train=y_train,
        x_test=(x_test - mean) / std,
        y_test=y_test,
    )
