"""Initialization at the start of ``fit``: a Keras callback.

``model.fit(x, y, callbacks=[MetaInitialize((x, y), method="gradinit")])`` runs
:func:`keras_metainit.meta_initialize` on the model in ``on_train_begin``, before the first
training step, on every backend. Keras's TensorFlow trainer reads the model's variables in each
step; Keras's JAX trainer copies them into its own state at the first step of each epoch (after
``on_train_begin`` and ``on_epoch_begin``), so the weights written here are the ones it trains.
"""
from __future__ import annotations

from typing import Any, Optional

import keras

from keras_metainit import methods as methods_lib
from keras_metainit.engine import meta_initialize
from keras_metainit.report import InitReport

__all__ = ["MetaInitialize"]


class MetaInitialize(keras.callbacks.Callback):
    """Initialize the model with a learned or layer-wise method when training starts.

    Args:
        data: the data for the method, in any form :func:`keras_metainit.meta_initialize`
            takes (None: random inputs and labels); usually the training data or part of it.
        method: a method name, object or list (see :func:`keras_metainit.meta_initialize`).
        every_fit: initialize again at the start of every ``fit``; by default only the first
            ``fit`` of this callback initializes (a second ``fit`` continues training).
        **options: the other arguments of :func:`keras_metainit.meta_initialize` (``steps``,
            ``seed``, ``batch_size``, ``loss``, ``verbose``, method options such as ``lr``).

    Attributes:
        report: the :class:`~keras_metainit.report.InitReport` of the last initialization
            (None before the first).

    Examples:
        >>> import keras, keras_metainit
        >>> from keras_metainit.datasets import load_fashion_mnist
        >>> x, y = load_fashion_mnist("train", flatten=True)  # the bundled subset
        >>> model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, "relu"),
        ...                           keras.layers.Dense(10)])
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> init = keras_metainit.callbacks.MetaInitialize((x[:256], y[:256]), method="lsuv",
        ...                                                verbose=0)
        >>> history = model.fit(x[:512], y[:512], epochs=2, verbose=0, callbacks=[init])
        >>> init.report.method, init.runs  # initialized at the first fit only
        ('lsuv', 1)
    """

    def __init__(self, data: Any = None, method: Any = methods_lib.DEFAULT, every_fit: bool = False,
                 **options):
        super().__init__()
        if not isinstance(every_fit, bool):
            raise ValueError(f"Argument `every_fit` must be a bool. Received: every_fit={every_fit!r}")
        self.data, self.method, self.every_fit, self.options = data, method, every_fit, options
        self.report: Optional[InitReport] = None
        self.runs = 0

    def on_train_begin(self, logs=None):
        if self.runs and not self.every_fit:
            return
        self.report = meta_initialize(self.model, self.data, self.method, **self.options)
        self.runs += 1
