"""learned/tensorflow.py's strategy plumbing: every method of meta_initialize under MirroredStrategy over two logical CPU devices gives the
single-device result, and leaves the model's variables mirrored and equal across replicas."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "distributed_script.py"


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["metainit", "metainit_conv", "gradcosine", "gradinit",
                                  "metainit_micro"])
def test_learned_methods_match_one_device(results, case):
    r = results[case]
    assert any("MirroredStrategy, 2 replica(s), global batch 32" in n for n in r["notes"]), r
    assert r["moved"] > 1e-4, r  # the run changed the weights
    assert r["scales_rel"] < 1e-5, r
    assert r["weights_rel"] < 1e-5, r
    assert r["replica_spread"] == 0.0, r


@pytest.mark.slow
@pytest.mark.parametrize("case", ["lsuv", "sylvester"])
def test_layerwise_methods_match_one_device(results, case):
    r = results[case]
    assert r["moved"] > 1e-4, r
    assert r["weights_rel"] < 1e-5, r
    assert r["replica_spread"] == 0.0, r


@pytest.mark.slow
def test_strategy_argument_for_a_model_built_outside_its_scope(results):
    assert any("MirroredStrategy, 2 replica(s)" in n for n in results["argument"]["notes"])


@pytest.mark.slow
def test_multiworker_example_runs_and_matches_one_process():
    """docs/distributed.md's MultiWorkerMirroredStrategy example: two local worker processes."""
    script = Path(__file__).resolve().parents[2] / "examples" / "distributed" / "multiworker.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "KERAS_METAINIT_EXAMPLES_QUICK": "1"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "2 replica(s), global batch 64" in proc.stdout, proc.stdout
    diff = float(proc.stdout.split("largest relative difference to one process:")[1].split()[0])
    assert diff < 1e-5, proc.stdout
