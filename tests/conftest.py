"""Fixtures shared by the test modules."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from keras_metainit.datasets import load_fashion_mnist


@pytest.fixture(scope="session")
def fmnist_flat():
    """The bundled Fashion-MNIST subset as vectors: ``(x, y, x_test, y_test)``."""
    x, y = load_fashion_mnist("train", flatten=True)
    xt, yt = load_fashion_mnist("test", flatten=True)
    return x, y, xt, yt


# ----------------------------------------------------------------------------------------------
# Cross-backend comparisons (tests/test_cross_backend.py, tests/learned/test_jax.py)
# ----------------------------------------------------------------------------------------------
CROSS_BACKEND_SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "cross_backend_script.py")


@pytest.fixture(scope="session")
def cross_backend(tmp_path_factory):
    """``figures(backend, name=backend, env=None, args=())``: the JSON of
    ``tests/scripts/cross_backend_script.py`` run in a subprocess under ``KERAS_BACKEND=backend``, once
    per ``name`` in the session, on weights and batches the first run writes and every later
    one reads. Skips when the backend's framework is not installed, and inside a process that
    runs on another backend than TensorFlow (CI's TensorFlow step runs these)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("cross-backend subprocesses run in CI's TensorFlow step")
    workdir = tmp_path_factory.mktemp("cross_backend")
    done = {}

    def figures(backend, name=None, env=None, args=()):
        name = name or backend
        if name not in done:
            if importlib.util.find_spec(backend) is None:
                pytest.skip(f"{backend} is not installed")
            full_env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                            **(env or {}))
            out = workdir / f"{name}.json"
            proc = subprocess.run([sys.executable, CROSS_BACKEND_SCRIPT, str(workdir), str(out),
                                   *args], env=full_env, capture_output=True, text=True,
                                  timeout=1500)
            assert proc.returncode == 0, proc.stderr[-3000:]
            with open(out) as f:
                done[name] = json.load(f)
            assert done[name]["backend"] == backend
        return done[name]

    return figures
