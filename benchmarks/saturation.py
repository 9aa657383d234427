"""Why MetaInit ran away from a x3 start on CPUs without AVX-512, in one table.

A 12-layer width-96 plain ReLU MLP with every kernel 3x He-normal (seed 1; logits ~1e6, the
softmax saturated), one random batch of 128 (MetaInit's reference data). For each CPU kernel path
(TensorFlow's oneDNN kernels, and its Eigen kernels as on CPUs without AVX-512, forced here with
TF_ENABLE_ONEDNN_OPTS=0) and each form of the cross-entropy (TensorFlow's fused
``sparse_softmax_cross_entropy_with_logits``, which Keras's loss ends in, and ``log_softmax``, which
``keras_metainit.losses`` uses), it prints the gradient quotient (ε = 1e-2), the third-order
autodiff derivative of GQ with respect to the first, a middle and the last kernel's scale, and
central differences of GQ's own values (step 1e-2). The last column: MetaInit (200 steps, random
data, seed 0) as the suite runs it now, GQ before -> after on its probe batch.

    python benchmarks/saturation.py [--json PATH]   # each kernel path in a subprocess

Writes ``benchmarks/results/saturation.json`` (``--json``); the table is ``render.py``'s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import record
import render

WORKER = "--worker"


def worker() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_metainit as km
    from keras_metainit import objectives

    def model_x3():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((784,))]
                                 + [keras.layers.Dense(96, "relu", kernel_initializer="he_normal")
                                    for _ in range(12)] + [keras.layers.Dense(10)])
        for v in model.trainable_variables:
            if len(v.shape) == 2:
                v.assign(v * 3.0)
        return model

    model = model_x3()
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(128, 784)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, 128))
    nt = model.non_trainable_variables
    params0 = [v.value for v in model.trainable_variables]
    tuned = [i for i, p in enumerate(params0) if len(p.shape) == 2]
    path = "Eigen (oneDNN off)" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" else "oneDNN"
    report = km.meta_initialize(model_x3(), None, steps=200, seed=0, verbose=0, method="metainit")
    run = {"before": report.before["gq"], "after": report.after["gq"]}
    for form in ("fused op", "log_softmax"):
        def per_example(params, batch, form=form):
            logits, _ = model.stateless_call(list(params), nt, batch[0], training=False)
            if form == "fused op":
                return tf.nn.sparse_softmax_cross_entropy_with_logits(batch[1], logits)
            return -tf.gather(tf.nn.log_softmax(logits), batch[1], batch_dims=1)

        loss_fn = tf.function(per_example, experimental_attributes={"_noinline": True})

        def gq(s):
            params = list(params0)
            for j, i in enumerate(tuned):
                params[i] = s[j] * params0[i]
            return objectives.gradient_quotient(loss_fn, params, (x, y), eps=1e-2)[0]

        s0 = tf.ones([len(tuned)])
        with tf.GradientTape() as tape:
            tape.watch(s0)
            value = gq(s0)
        grad = tape.gradient(value, s0).numpy()
        picks = (0, len(tuned) // 2, len(tuned) - 1)
        fd = []
        for j in picks:
            e = np.zeros(len(tuned), "float32")
            e[j] = 1e-2
            fd.append((float(gq(s0 + e)) - float(gq(s0 - e))) / 2e-2)
        row = {"path": path, "form": form, "gq": float(value),
               "autodiff": [float(grad[j]) for j in picks], "differences": fd,
               "metainit": run if form == "log_softmax" else None}
        print("ROW " + json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    record.add_argument(parser, "saturation")
    args = parser.parse_args()
    rows = []
    for flag in ("1", "0"):
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=flag, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, __file__, WORKER], env=env, capture_output=True,
                             text=True, check=True).stdout
        rows += [json.loads(line[4:]) for line in out.splitlines() if line.startswith("ROW ")]
    print(render.render_saturation(record.write(record.path_for(args, "saturation"),
                                                {"rows": rows})))


if __name__ == "__main__":
    worker() if WORKER in sys.argv else main()
