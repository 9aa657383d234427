"""Every backend meets TensorFlow: ``tests/scripts/cross_backend_script.py`` in a subprocess under
``KERAS_BACKEND=tensorflow``, ``jax`` and ``torch`` on the same saved weights and batches. GQ,
GradCosine, GradInit's look-ahead and their scale gradients (MetaInit's a third derivative), the
diagnostics, and ``meta_initialize``'s scales after 5 steps with a fixed seed (MetaInit, GradInit,
GradCosine; the CNN on ``data=None``, the random data drawn with NumPy) agree with TensorFlow's to
1e-5 (relative, float32). Run by CI's TensorFlow step (and its torch step, where torch is
installed beside TensorFlow); a backend that is not installed is skipped."""
import numpy as np
import pytest

RTOL = 1e-5
BACKENDS = ["jax", "torch"]


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64), rtol=rtol,
                               atol=0)


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request, cross_backend):
    """``(TensorFlow's figures, the other backend's)``."""
    return cross_backend("tensorflow"), cross_backend(request.param)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("what", ["gq", "gc", "gc_target", "lookahead"])
def test_objectives_and_scale_gradients_agree_with_tensorflow(pair, model, what):
    tf_out, other = pair
    (v_tf, g_tf), (v, g) = tf_out[model][what], other[model][what]
    _close(v_tf, v)
    assert np.all(np.asarray(g_tf) != 0)
    _close(g_tf, g)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_diagnostics_agree_with_tensorflow(pair, model):
    tf_out, other = pair
    _close(tf_out[model]["diag_gq"], other[model]["diag_gq"])
    for k in ("gc", "gn"):
        _close(tf_out[model]["diag_gc"][k], other[model]["diag_gc"][k])


@pytest.mark.parametrize("model", ["mlp", "cnn"])  # cnn: data=None (random data)
@pytest.mark.parametrize("method", ["metainit", "gradinit", "gradcosine"])
def test_meta_initialize_sets_the_same_scales_as_tensorflow(pair, model, method):
    tf_out, other = pair
    a, b = tf_out[model][method], other[model][method]
    assert "error" not in a, a
    assert "error" not in b, b
    assert np.any(np.abs(np.asarray(a["scales"]) - 1) > 1e-3)  # the run moved the scales
    _close(a["scales"], b["scales"])
    _close(a["weights"], b["weights"])
    assert a["kept_start"] == b["kept_start"]
