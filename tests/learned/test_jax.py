"""Keras's JAX backend.

- Data parallel (run by CI's TensorFlow step, in subprocesses): JAX under
  ``keras.distribution.DataParallel`` over two host devices sets the scales of one device
  (``tests/scripts/cross_backend_script.py``; its comparisons with TensorFlow are in
  ``tests/test_cross_backend.py``).
The in-process tests that hold on every backend (every learned and layer-wise method, the guard,
the analytic initializers) are in ``tests/test_backends.py``.
"""
import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (pip install 'keras-metainit[jax]')")


@pytest.fixture(scope="module")
def data_parallel(cross_backend):
    """The MLP's runs on JAX, on one device and under ``keras.distribution.DataParallel`` over
    two host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``), on the same
    weights and batches."""
    out = cross_backend("jax", "jax_dp", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
                        ["--models", "mlp", "--data-parallel"])
    return cross_backend("jax"), out


@pytest.mark.parametrize("method", ["metainit", "gradinit", "gradcosine"])
def test_data_parallel_on_jax_sets_the_scales_of_one_device(data_parallel, method):
    one, dp = data_parallel
    assert dp["devices"] == 2
    a, b = one["mlp"][method], dp["mlp"][method]
    assert "error" not in b, b
    assert any("DataParallel, 2 device(s)" in n for n in b["notes"]), b["notes"]
    assert np.any(np.abs(np.asarray(a["scales"]) - 1) > 1e-3)
    np.testing.assert_allclose(b["scales"], a["scales"], rtol=1e-5, atol=0)
    np.testing.assert_allclose(b["weights"], a["weights"], rtol=1e-5, atol=0)
