"""WNInit, WNResNetInit and FixupInit: statistics, signal propagation, seeds, bad arguments."""
import math

import keras
import numpy as np
import pytest

from keras_metainit import FixupInit, WNInit, WNResNetInit


def fans(shape):
    """(fan_in, fan_out) of a Dense (in, out) or convolution (..., in, out) kernel, from scratch."""
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def columns(kernel):
    kernel = np.asarray(kernel, dtype=np.float64)
    return kernel.reshape(-1, kernel.shape[-1])


SHAPES = [(64, 32), (32, 64), (3, 3, 8, 16)]


@pytest.mark.backend_neutral
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma", [2.0, 0.3])
def test_wninit_column_norms_equal_gain(shape, gamma):
    fan_in, fan_out = fans(shape)
    g = math.sqrt(gamma * fan_in / fan_out)
    for direction in ("orthogonal", "normal"):
        kernel = WNInit(gamma=gamma, direction=direction, seed=1)(shape)
        assert tuple(kernel.shape) == shape
        np.testing.assert_allclose(np.linalg.norm(columns(kernel), axis=0), g, rtol=1e-5)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("shape", [(64, 32), (3, 3, 8, 16), (48, 48)])
def test_wninit_orthogonal_columns_when_tall(shape):
    m = columns(WNInit(gamma=2.0, seed=2)(shape))
    g2 = 2.0 * fans(shape)[0] / fans(shape)[1]
    np.testing.assert_allclose(m.T @ m, g2 * np.eye(shape[-1]), atol=1e-5 * g2)


def rescaled_rows_residual(m):
    """How far m is from (orthonormal rows) x (positive column scales): min over w of
    ||m diag(w) m^T - I||, which is linear least squares in w = 1 / scale^2."""
    rows = m.shape[0]
    a = np.einsum("ij,kj->ikj", m, m).reshape(rows * rows, -1)
    w, *_ = np.linalg.lstsq(a, np.eye(rows).ravel(), rcond=None)
    return np.abs(a @ w - np.eye(rows).ravel()).max()


@pytest.mark.backend_neutral
def test_wninit_wide_kernel_is_orthonormal_rows_with_rescaled_columns():
    # Fewer rows than columns: orthonormal rows, then every column rescaled to norm g.
    assert rescaled_rows_residual(columns(WNInit(gamma=1.0, seed=3)((32, 64)))) < 1e-4
    normal = columns(WNInit(gamma=1.0, direction="normal", seed=3)((32, 64)))
    assert rescaled_rows_residual(normal) > 0.1


@pytest.mark.backend_neutral
def test_normal_direction_is_not_orthogonal():
    m = columns(WNInit(gamma=1.0, direction="normal", seed=4)((64, 32)))
    gram = m.T @ m * 32 / 64
    assert np.abs(gram - np.diag(np.diag(gram))).max() > 0.05


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_dtype(dtype):
    for init in (WNInit(seed=0), FixupInit(4, seed=0)):
        assert keras.backend.standardize_dtype(init((8, 4), dtype=dtype).dtype) == dtype


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    "role, gamma", [("branch_in", 2.0), ("branch_out", 1 / 4), ("shortcut", 1.0), ("stem", 1.0)]
)
def test_wnresnet_roles(role, gamma):
    shape = (3, 3, 8, 16)
    init = WNResNetInit(role, blocks_per_stage=4, seed=5)
    assert init.gamma == pytest.approx(gamma)
    fan_in, fan_out = fans(shape)
    np.testing.assert_allclose(
        np.linalg.norm(columns(init(shape)), axis=0), math.sqrt(gamma * fan_in / fan_out), rtol=1e-5
    )
    # Same direction code as WNInit: same seed and gamma give the same kernel.
    np.testing.assert_allclose(init(shape), WNInit(gamma=gamma, seed=5)(shape), rtol=1e-6)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("num_branches, depth", [(16, 2), (16, 3), (1, 2)])
def test_fixup_std_is_he_fan_out_times_factor(num_branches, depth):
    shape = (3, 3, 64, 128)  # fan_in = 576 and fan_out = 1152 differ by 2x
    values = np.asarray(FixupInit(num_branches, branch_depth=depth, seed=6)(shape))
    expected = math.sqrt(2 / fans(shape)[1]) * num_branches ** (-1 / (2 * depth - 2))
    assert values.std() == pytest.approx(expected, rel=0.03)
    assert abs(values.mean()) < 0.02 * expected


def relu_net_gain(make_kernel, depth=50, width=256, seed=0):
    """||output|| / ||input|| of a zero-bias plain ReLU MLP on Gaussian inputs."""
    x = np.random.default_rng(seed).standard_normal((32, width)).astype(np.float32)
    h = x
    for _ in range(depth):
        h = np.maximum(h @ np.asarray(make_kernel((width, width))), 0.0)
    return np.linalg.norm(h) / np.linalg.norm(x)


@pytest.mark.backend_neutral
def test_signal_propagation_50_layer_relu_mlp():
    # Finite width makes one net's gain log-normal around 1 (about x/÷ 1.5 at this size): take the
    # geometric mean over 4 independent nets.
    wn = [relu_net_gain(WNInit(seed=keras.random.SeedGenerator(s)), seed=s) for s in range(4)]
    glorot = [
        relu_net_gain(keras.initializers.GlorotUniform(seed=keras.random.SeedGenerator(s)), seed=s)
        for s in range(2)
    ]
    wn_gain = float(np.exp(np.mean(np.log(wn))))
    print(f"\n50-layer ReLU MLP, ||out||/||in||: WNInit {np.round(wn, 3)} "
          f"(geometric mean {wn_gain:.3f}), "
          f"GlorotUniform {[f'{r:.1e}' for r in glorot]}")
    assert 0.5 < wn_gain < 2.0
    assert all(0.25 < r < 4.0 for r in wn)
    assert max(glorot) < 0.05


FACTORIES = [
    lambda seed: WNInit(seed=seed),
    lambda seed: WNResNetInit("branch_out", blocks_per_stage=2, direction="normal", seed=seed),
    lambda seed: FixupInit(8, seed=seed),
]


@pytest.mark.backend_neutral
@pytest.mark.parametrize("factory", FACTORIES)
def test_unseeded_instance_draws_fresh_values(factory):
    init = factory(None)
    assert not np.allclose(init((16, 8)), init((16, 8)))


@pytest.mark.backend_neutral
@pytest.mark.parametrize("factory", FACTORIES)
def test_int_seed_gives_identical_values(factory):
    init = factory(42)
    np.testing.assert_array_equal(init((16, 8)), init((16, 8)))
    np.testing.assert_array_equal(init((16, 8)), factory(42)((16, 8)))
    assert not np.allclose(init((16, 8)), factory(43)((16, 8)))


@pytest.mark.backend_neutral
@pytest.mark.parametrize("factory", FACTORIES)
def test_seed_generator_advances_and_is_reproducible(factory):
    a = factory(keras.random.SeedGenerator(7))
    b = factory(keras.random.SeedGenerator(7))
    a1, a2 = np.asarray(a((16, 8))), np.asarray(a((16, 8)))
    assert not np.allclose(a1, a2)
    np.testing.assert_array_equal(a1, b((16, 8)))
    np.testing.assert_array_equal(a2, b((16, 8)))


@pytest.mark.backend_neutral
def test_unseeded_instance_shared_by_layers_gives_distinct_kernels():
    init = WNInit()
    model = keras.Sequential(
        [keras.Input((8,))] + [keras.layers.Dense(8, kernel_initializer=init) for _ in range(2)]
    )
    k1, k2 = (np.asarray(layer.kernel) for layer in model.layers)
    assert not np.allclose(k1, k2)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: WNInit(gamma=-1.0), "gamma"),
        (lambda: WNInit(gamma=0), "gamma"),
        (lambda: WNInit(gamma=float("nan")), "gamma"),
        (lambda: WNInit(gamma="2"), "gamma"),
        (lambda: WNInit(direction="uniform"), "direction"),
        (lambda: WNInit(seed="abc"), "seed"),
        (lambda: WNInit(seed=1.5), "seed"),
        (lambda: WNResNetInit("middle"), "role"),
        (lambda: WNResNetInit("stem", direction="uniform"), "direction"),
        (lambda: WNResNetInit("stem", blocks_per_stage=0), "blocks_per_stage"),
        (lambda: WNResNetInit("stem", blocks_per_stage=1.5), "blocks_per_stage"),
        (lambda: FixupInit(0), "num_branches"),
        (lambda: FixupInit(2.0), "num_branches"),
        (lambda: FixupInit(4, branch_depth=1), "branch_depth"),
        (lambda: WNInit()((5,)), "shape"),
    ],
)
def test_bad_arguments_name_the_argument(build, argument):
    with pytest.raises(ValueError, match=f"`?{argument}`?.*Received|{argument}="):
        build()


@pytest.mark.backend_neutral
def test_unseeded_initializers_follow_keras_global_seed():
    """seed=None: fresh values per call, yet reproducible after keras.utils.set_random_seed."""
    for init in (WNInit(), WNResNetInit("branch_in"), FixupInit(4)):
        keras.utils.set_random_seed(3)
        a, b = init((16, 8)), init((16, 8))
        keras.utils.set_random_seed(3)
        c = init((16, 8))
        assert not np.allclose(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
