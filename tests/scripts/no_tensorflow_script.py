"""Run by tests/test_no_tensorflow.py in a subprocess under ``KERAS_BACKEND`` jax or torch, with
TensorFlow made unimportable (a meta-path finder that answers for ``tensorflow*`` with a spec
whose loader raises ``ImportError``, as a missing package does; ``importlib.util.find_spec``
sees no file). Prints one JSON line: the ``tensorflow`` modules imported, a MetaInit run on a tiny
MLP with NumPy data, and the errors for what needs TensorFlow."""
import importlib.abc
import importlib.machinery
import json
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets", "tf_keras")


class _Missing(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"No module named {spec.name!r} (blocked by the test)")

    def exec_module(self, module):  # pragma: no cover - never reached
        pass


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _Missing())
        return None


sys.meta_path.insert(0, _Block())

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_metainit as km  # noqa: E402

out = {"backend": keras.backend.backend(),
       "tf_modules": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((10,))] + [keras.layers.Dense(16, "relu")
                                                 for _ in range(3)] + [keras.layers.Dense(4)])
rng = np.random.default_rng(0)
x, y = rng.normal(size=(128, 10)).astype("float32"), rng.integers(0, 4, 128)
report = km.meta_initialize(model, (x, y), "metainit", steps=5, lr=0.05, batch_size=32, seed=0,
                            verbose=0)
out["metainit"] = {"steps": report.steps_run, "before": report.before["gq"],
                   "after": report.after["gq"]}
try:
    km.meta_initialize(model, "mnist", "metainit", steps=1, verbose=0)
except ImportError as e:
    out["tfds_error"] = str(e)
out["tf_modules_after"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print("RESULT " + json.dumps(out))
