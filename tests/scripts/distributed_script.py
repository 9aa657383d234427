"""Run by tests/learned/test_tensorflow.py in a subprocess: the CPU split into two logical devices must be
configured before TensorFlow creates any device, which a test process has long done.

Prints one JSON object: for each case, the largest relative difference between the scales (or
weights) set under ``MirroredStrategy`` and on one device from the same data and seed, and the
largest difference between the two replicas' copies of every variable afterwards.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_metainit as km  # noqa: E402


#: the runs' seed: one whose probe batch MetaInit improves within 3 steps on the MLP (from seed 1
#: its guard keeps the start, and "distributed equals one device" would hold trivially)
SEED = 2


def build(conv=False):
    keras.utils.set_random_seed(0)
    if conv:
        return keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(), keras.layers.Dense(5)])
    return keras.Sequential([keras.Input((12,))] + [keras.layers.Dense(16, "relu") for _ in range(3)]
                            + [keras.layers.Dense(5)])


def replica_spread(strategy, model):
    """Largest difference between the replicas' copies of any variable."""
    spread = 0.0
    for v in model.variables:
        copies = [np.asarray(c) for c in strategy.experimental_local_results(v.value)]
        if len(copies) != 2:
            return float("inf")  # not mirrored
        spread = max(spread, float(np.max(np.abs(copies[0] - copies[1]))))
    return spread


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(256, 12)).astype("float32"), rng.integers(0, 5, 256)
    xc = rng.normal(size=(256, 8, 8, 1)).astype("float32")
    cases = {
        "metainit": (False, "metainit", dict(steps=3, batch_size=32)),
        "metainit_conv": (True, "metainit", dict(steps=2, batch_size=32)),
        "gradcosine": (False, "gradcosine", dict(steps=3, lr=0.05, batch_size=32)),
        "gradinit": (False, "gradinit", dict(steps=3, lr=0.05, batch_size=32)),
        "metainit_micro": (False, "metainit", dict(steps=3, batch_size=32, micro_batches=2)),
        "lsuv": (False, "lsuv", dict()),
        "sylvester": (False, "sylvester", dict()),
    }
    out = {}
    for name, (conv, method, options) in cases.items():
        data = (xc if conv else x, y)
        single = build(conv)
        r1 = km.meta_initialize(single, data, method, seed=SEED, verbose=0, **options)
        with strategy.scope():
            mirrored = build(conv)
        r2 = km.meta_initialize(mirrored, data, method, seed=SEED, verbose=0, **options)
        w1 = [v.numpy() for v in single.trainable_variables]
        w2 = [v.numpy() for v in mirrored.trainable_variables]
        moved = max(float(np.max(np.abs(a - b.numpy()))) for a, b in
                    zip(w1, build(conv).trainable_variables))
        out[name] = {
            "weights_rel": max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-30))
                               for a, b in zip(w1, w2)),
            "scales_rel": max([abs(t1["scale"] - t2["scale"]) / t1["scale"]
                               for t1, t2 in zip(r1.tensors, r2.tensors)] or [0.0]),
            "moved": moved,
            "replica_spread": replica_spread(strategy, mirrored),
            "notes": r2.notes,
        }
    # a strategy passed as an argument, for a model built outside any scope
    plain = build()
    r = km.meta_initialize(plain, (x, y), "metainit", steps=2, batch_size=32, seed=SEED, verbose=0,
                           strategy=strategy)
    out["argument"] = {"notes": r.notes}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
