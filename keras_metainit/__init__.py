"""keras-metainit: initializers that make deep Keras 3 networks start training.

Importing the package registers its initializers, layers and schedules for Keras
serialization, and adds a ``meta_initialize`` method to every ``keras.Model``
(``model.meta_initialize(data, ...)`` is ``keras_metainit.meta_initialize(model, data, ...)``).
"""
__version__ = "0.1.0"

from keras_metainit import datasets, layers, methods, schedules
from keras_metainit import engine as _engine
from keras_metainit.diagnostics import (HealthLimits, diagnose, grad_cosine, gradient_quotient,
                                        layer_signal)
from keras_metainit.engine import meta_initialize
from keras_metainit.initializers import FixupInit, WNInit, WNResNetInit
from keras_metainit.report import InitReport
from keras_metainit.schedules import QuadraticWarmup

__all__ = [
    # analytic initializers, weight-normalized layers, warmup
    "WNInit", "WNResNetInit", "FixupInit", "QuadraticWarmup", "layers", "schedules",
    # learned and layer-wise initialization, diagnostics
    "meta_initialize", "methods", "InitReport", "gradient_quotient", "grad_cosine",
    "diagnose", "HealthLimits", "layer_signal",
    # data
    "datasets",
]

_engine.install()
