"""Shared pieces of the benchmark scripts: models, bad starts, a fixed training budget."""
from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_metainit.datasets import load_fashion_mnist  # noqa: E402

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fashion_mnist(subset: str = "auto"):
    """Train and test arrays: the full set when Debian's package is installed, else the subset."""
    if subset == "auto":
        try:
            load_fashion_mnist("test", "full")
            subset = "full"
        except FileNotFoundError:
            subset = "small"
    return load_fashion_mnist("train", subset), load_fashion_mnist("test", subset), subset


def mlp(depth: int, width: int, seed: int, kernel_initializer="he_normal") -> keras.Model:
    """A plain ReLU MLP on 28×28 images: no normalization, zero biases."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten()]
        + [keras.layers.Dense(width, "relu", kernel_initializer=kernel_initializer)
           for _ in range(depth)]
        + [keras.layers.Dense(10, kernel_initializer=kernel_initializer)]
    )


def cnn(depth: int, width: int, seed: int, kernel_initializer="he_normal") -> keras.Model:
    """A plain ReLU CNN: two stride-2 convolutions, then 3×3 convolutions, no normalization."""
    keras.utils.set_random_seed(seed)
    conv = lambda f, s=1: keras.layers.Conv2D(  # noqa: E731
        f, 3, strides=s, padding="same", activation="relu", kernel_initializer=kernel_initializer)
    layers = [keras.Input((28, 28, 1)), conv(width, 2), conv(width, 2)]
    layers += [conv(width) for _ in range(depth - 2)]
    layers += [keras.layers.GlobalAveragePooling2D(),
               keras.layers.Dense(10, kernel_initializer=kernel_initializer)]
    return keras.Sequential(layers)


ARCHS = {
    "mlp12x128": lambda seed: mlp(12, 128, seed),
    "mlp20x64": lambda seed: mlp(20, 64, seed),
    "cnn8x16": lambda seed: cnn(8, 16, seed),
}


def scale_kernels(model: keras.Model, factor: float) -> keras.Model:
    """A bad start: every kernel multiplied by ``factor``."""
    for v in model.trainable_variables:
        if len(v.shape) >= 2:
            v.assign(v * factor)
    return model


def train_eval(model, train, test, *, epochs=2, lr=0.01, batch_size=128, optimizer="sgd"):
    """Fixed budget: SGD (momentum 0.9) or Adam; returns (test accuracy, seconds)."""
    opt = (keras.optimizers.SGD(lr, momentum=0.9) if optimizer == "sgd"
           else keras.optimizers.Adam(lr))
    model.compile(opt, CE, metrics=["accuracy"])
    t = time.perf_counter()
    model.fit(*train, batch_size=batch_size, epochs=epochs, verbose=0)
    acc = model.evaluate(*test, verbose=0, batch_size=512)[1]
    return (acc if np.isfinite(acc) else 0.0), time.perf_counter() - t


def mean_std(values):
    a = np.asarray(values, float)
    return f"{a.mean():.3f} ± {a.std():.3f}"


def build_arch(name: str, seed: int, kernel_initializer="he_normal") -> keras.Model:
    """``"mlpDxW"`` → ``mlp(D, W, ...)``, ``"cnnDxW"`` → ``cnn(D, W, ...)`` (e.g. ``"mlp20x128"``)."""
    kind, dims = name[:3], name[3:]
    if kind not in ("mlp", "cnn") or "x" not in dims:
        raise ValueError(f"architecture must look like 'mlp20x128' or 'cnn8x16', got {name!r}")
    depth, width = (int(v) for v in dims.split("x"))
    return (mlp if kind == "mlp" else cnn)(depth, width, seed, kernel_initializer)


def take(arrays, n):
    """The first ``n`` examples of ``(x, y)`` (all of them when ``n`` is None)."""
    return arrays if n is None else tuple(a[:n] for a in arrays)


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure (pip install keras-metainit[plot])")
        return None
    return plt


def save_figure(fig, path: str) -> None:
    """Lay out, write and close a figure; say where it went."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"figure: {path}", flush=True)
