"""keras-metainit: initializers that make deep Keras 3 networks start training.

Importing the package registers its initializers, layers and schedules for Keras
serialization, and adds a ``meta_initialize`` method to every ``keras.Model``
(``model.meta_initialize(data, ...)`` is ``keras_metainit.meta_initialize(model, data, ...)``).
"""
__version__ = "0.1.0"

from keras_metainit import datasets  # noqa: F401

# --- analytic initializers, layers, schedules (issue 2) ---

# --- learned initializations: engine, methods, diagnostics (issue 3+) ---
