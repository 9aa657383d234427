"""MetaInit under MultiWorkerMirroredStrategy: two worker processes on this machine.

Run it as it is::

    python examples/distributed/multiworker.py

With no ``TF_CONFIG`` in the environment it is the launcher: it starts two copies of itself as
the workers of a local cluster (ports on localhost), waits for them, and checks that both set the
same scales as one process on the same global batches. On a real cluster, start this script on
every machine with ``TF_CONFIG`` describing the cluster and the machine's task, e.g.::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' python multiworker.py

Every worker builds the model under the strategy's scope and calls ``meta_initialize`` with the
same arguments; ``batch_size`` is the global batch, split across all replicas of all workers.
"""
import json
import os
import socket
import subprocess
import sys

MODEL_DEPTH, WIDTH, BATCH = 8, 64, 64
STEPS = 3 if os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") else 20


def build_and_initialize():
    """What every process runs: build the model (in the strategy's scope, if any), MetaInit."""
    import keras

    import keras_metainit as km
    from keras_metainit.datasets import load_fashion_mnist

    x, y = load_fashion_mnist("train", flatten=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,))]
                             + [keras.layers.Dense(WIDTH, "relu") for _ in range(MODEL_DEPTH)]
                             + [keras.layers.Dense(10)])
    report = model.meta_initialize((x, y), "metainit", steps=STEPS, batch_size=BATCH, seed=0,
                                   verbose=0)
    return model, report


def worker():
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model, report = build_and_initialize()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    if task == 0:
        print(report, file=sys.stderr)
    print(json.dumps({"task": task, "notes": report.notes,
                      "scales": [t["scale"] for t in report.tensors]}))


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launcher():
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, __file__], env=env, text=True,
                                      stdout=subprocess.PIPE))
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode:
            sys.exit(f"a worker failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _, single = build_and_initialize()
    one = [t["scale"] for t in single.tensors]
    diff = max(abs(a - b) / b for r in results for a, b in zip(r["scales"], one))
    print(f"workers: {results[0]['notes']}")
    print(f"scales of worker 0: {[round(s, 4) for s in results[0]['scales']]}")
    print(f"largest relative difference to one process: {diff:.2e}")
    return diff


if __name__ == "__main__":
    if "TF_CONFIG" in os.environ:
        worker()
    else:
        launcher()
