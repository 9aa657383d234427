"""Keras's JAX and torch backends with TensorFlow not installed (made unimportable in a
subprocess, ``tests/scripts/no_tensorflow_script.py``): ``import keras_metainit`` imports no
``tensorflow`` module, MetaInit runs on NumPy data and lowers its objective, and what needs
TensorFlow (a TensorFlow Datasets name) says which extra to install. CI also runs the
backend-neutral tests in a venv without TensorFlow (``.ci/run``)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "no_tensorflow_script.py")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_package_runs_without_tensorflow(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend)
    proc = subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    assert out["backend"] == backend
    assert out["tf_modules"] == [] and out["tf_modules_after"] == []
    assert out["metainit"]["steps"] == 5
    assert out["metainit"]["after"] < out["metainit"]["before"]
    assert 'pip install "keras-metainit[tensorflow]"' in out["tfds_error"]
    assert "tensorflow_datasets" in out["tfds_error"]
