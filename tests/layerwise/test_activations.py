"""layerwise/activations.py: image patches in the kernel's layout (checked through the
Sylvester solve they feed)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_metainit import layerwise
from tests.layerwise.util import SPARSE, run_sylvester, stream


@pytest.mark.parametrize("strides,padding,dilation", [
    (2, "same", 1), (2, "valid", 1), (1, "same", 2), (1, "valid", 2),
])
def test_conv_patches_times_solved_kernel_is_the_layer_output(strides, padding, dilation):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 9, 11, 3)).astype(np.float32)
    inp = keras.Input((9, 11, 3))
    conv = keras.layers.Conv2D(5, (3, 2), strides=strides, padding=padding,
                               dilation_rate=dilation, activation="relu")
    model = keras.Model(inp, conv(inp))
    rows = run_sylvester(model, stream(x), SPARSE, latent="random", max_samples=10**6,
                                   seed=7)
    assert rows[0]["status"] == "set"
    kernel, bias = conv.kernel.numpy(), conv.bias.numpy()
    np.testing.assert_array_equal(bias, 0)
    patches = layerwise.conv_patches(x, conv.kernel_size, conv.strides, padding, conv.dilation_rate)
    out = keras.ops.convert_to_numpy(tf.nn.convolution(x, kernel, strides, padding.upper(),
                                                       dilations=dilation))
    np.testing.assert_allclose(patches @ kernel.reshape(-1, 5), out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.maximum(patches @ kernel.reshape(-1, 5), 0), conv(x),
                               rtol=1e-4, atol=1e-5)
    # the written kernel is the solve on these patches (same code: the seed's first draw),
    # reshaped in Keras's layout and rescaled
    P = patches.reshape(-1, patches.shape[-1]).astype(np.float64)
    S = np.random.default_rng(7).standard_normal((5, len(P)))
    W = layerwise.sylvester_solve(P.T, S, 1.0).W
    k = kernel.reshape(-1, 5).astype(np.float64)
    cos = np.sum(k * W.T) / np.linalg.norm(k) / np.linalg.norm(W)
    assert cos > 1 - 1e-6
    assert rows[0]["var_after"] == pytest.approx(1.0, abs=1e-3)
