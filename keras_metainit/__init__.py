"""keras-metainit: initializers that make deep Keras 3 networks start training.

Importing the package registers its initializers, layers and schedules for Keras
serialization, and adds a ``meta_initialize`` method to every ``keras.Model``
(``model.meta_initialize(data, ...)`` is ``keras_metainit.meta_initialize(model, data, ...)``).
"""
__version__ = "0.1.0"

from keras_metainit import datasets  # noqa: F401

# --- analytic initializers, layers, schedules (issue 2) ---
from keras_metainit import layers, schedules  # noqa: F401,E402
from keras_metainit.initializers import FixupInit, WNInit, WNResNetInit  # noqa: F401,E402
from keras_metainit.schedules import QuadraticWarmup  # noqa: F401,E402

# --- learned initializations: engine, methods, diagnostics (issue 3+) ---
from keras_metainit import methods  # noqa: F401
from keras_metainit.engine import grad_cosine, gradient_quotient, meta_initialize
from keras_metainit.report import InitReport
from keras_metainit import engine as _engine

_engine.install()
