"""keras-metainit: initializers that make deep Keras 3 networks start training.

Importing the package registers its initializers, layers and schedules for Keras
serialization, and adds a ``meta_initialize`` method to every ``keras.Model``
(``model.meta_initialize(data, ...)`` is ``keras_metainit.meta_initialize(model, data, ...)``).
"""
__version__ = "0.1.0"

import importlib.util as _importlib_util
import json as _json
import os as _os
import sys as _sys


def _keras_backend_named() -> str:
    """The backend Keras will load, read as Keras reads it (``KERAS_BACKEND``, else
    ``keras.json`` under ``KERAS_HOME`` or ``~/.keras``, else TensorFlow), without importing
    Keras (which would import that backend)."""
    name = _os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = _os.environ.get("KERAS_HOME") or _os.path.join(_os.path.expanduser("~"), ".keras")
    try:
        with open(_os.path.join(home, "keras.json")) as f:
            return str(_json.load(f).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _quiet_tensorflow_import() -> None:
    """For the ``keras-metainit`` command only (console script or ``python -m keras_metainit``,
    whose package import runs before ``cli.py``), on the TensorFlow backend: TensorFlow's C++
    logs off (``TF_CPP_MIN_LOG_LEVEL=3`` unless set) and stderr muted while TensorFlow is first
    imported, since its import-time lines (absl, oneDNN, ``cudart_stub``) ignore that variable.
    On another backend TensorFlow is not imported at all."""
    if "tensorflow" in _sys.modules or not _sys.argv or _os.path.basename(
            _sys.argv[0]) not in ("-m", "keras-metainit", "keras-metainit.exe"):
        return
    if _keras_backend_named() != "tensorflow" or _importlib_util.find_spec("tensorflow") is None:
        return
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        _sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError):
        return
    null = _os.open(_os.devnull, _os.O_WRONLY)
    _os.dup2(null, 2)
    try:
        __import__("tensorflow")
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(null)


_quiet_tensorflow_import()

from keras_metainit import datasets, layers, methods, schedules
from keras_metainit import engine as _engine
from keras_metainit.diagnostics import (HealthLimits, diagnose, grad_cosine, gradient_quotient,
                                        layer_signal)
from keras_metainit.engine import meta_initialize
from keras_metainit.initializers import FixupInit, WNInit, WNResNetInit
from keras_metainit.report import InitReport
from keras_metainit.schedules import QuadraticWarmup
from keras_metainit import callbacks  # noqa: E402  (imports the engine)
from keras_metainit import transformers  # noqa: E402
from keras_metainit.transformers import DeepNormInit, DeepNormResidual  # noqa: E402

__all__ = [
    # analytic initializers, weight-normalized layers, warmup
    "WNInit", "WNResNetInit", "FixupInit", "QuadraticWarmup", "layers", "schedules",
    # Transformer initializations (T-Fixup, DeepNorm)
    "transformers", "DeepNormInit", "DeepNormResidual",
    # learned and layer-wise initialization, diagnostics
    "meta_initialize", "methods", "InitReport", "gradient_quotient", "grad_cosine",
    "diagnose", "HealthLimits", "layer_signal",
    # data; initialization at the start of fit
    "datasets", "callbacks",
]

_engine.install()
