"""Layer-wise methods: the Sylvester solve, patch layout, LSUV's variances, safety, entry point."""
import time
import warnings

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

import keras_metainit as km
from keras_metainit import layerwise
from keras_metainit.data import DataError
from keras_metainit.losses import LossSpec
from keras_metainit.datasets import load_fashion_mnist
from keras_metainit.layerwise import LayerwiseError
from keras_metainit.methods import LSUV, Sylvester

SPARSE = LossSpec(keras.losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", "argument")


@pytest.fixture(scope="module")
def fmnist():
    return load_fashion_mnist("train", flatten=True)


def stream(x, y=None):
    """An endless stream repeating one batch, in order (no shuffling)."""
    y = np.zeros(len(x), np.int64) if y is None else y
    return tf.data.Dataset.from_tensors((x.astype(np.float32), y)).repeat()


def run_lsuv(model, data, **options):
    return LSUV(**options).run(model, data, None, seed=0)


def run_sylvester(model, data, spec=None, **options):
    return Sylvester(**options).run(model, data, spec, seed=0)


def objective(W, X, S, lam):
    return np.sum((X - W.T @ S) ** 2) + lam * np.sum((W @ X - S) ** 2)


def weights(model):
    return [v.numpy().copy() for v in model.weights]


def assert_unchanged(model, before):
    for b, v in zip(before, model.weights):
        np.testing.assert_array_equal(b, v.numpy(), err_msg=v.path)


# ----------------------------------------------------------------------------- the solve
def test_solution_satisfies_the_sylvester_equation():
    rng = np.random.default_rng(0)
    d, k, n, lam = 30, 12, 300, 0.7
    X = rng.standard_normal((d, n)) * rng.uniform(0.1, 3, (d, 1))
    S = layerwise.latent_code("orthogonal", k, n, rng)
    np.testing.assert_allclose(S @ S.T, n * np.eye(k), atol=1e-9)  # orthonormal rows, unit variance
    np.testing.assert_allclose(S.mean(axis=1), 0, atol=1e-12)
    sol = layerwise.sylvester_solve(X, S, lam)
    A, B, C = S @ S.T, lam * X @ X.T, (1 + lam) * S @ X.T
    assert sol.W.shape == (k, d) and sol.ridge == 0.0
    assert np.linalg.norm(A @ sol.W + sol.W @ B - C) / np.linalg.norm(C) < 1e-6
    assert sol.residual < 1e-6
    # it is the minimizer: every small perturbation increases the objective
    f0 = objective(sol.W, X, S, lam)
    for _ in range(3):
        assert objective(sol.W + 1e-3 * rng.standard_normal(sol.W.shape), X, S, lam) > f0


def test_solution_beats_random_kernels_on_fashion_mnist(fmnist):
    x, _ = fmnist
    rng = np.random.default_rng(1)
    X = x[:600].astype(np.float64).T  # d = 784 > n = 600: X Xᵀ is singular, S Sᵀ is not
    S = layerwise.latent_code("orthogonal", 64, X.shape[1], rng)
    sol = layerwise.sylvester_solve(X, S, 1.0)
    assert sol.ridge == 0.0 and sol.residual < 1e-6
    f = objective(sol.W, X, S, 1.0)
    norm = np.linalg.norm(sol.W)
    for _ in range(3):
        R = rng.standard_normal(sol.W.shape)
        assert f < objective(R * norm / np.linalg.norm(R), X, S, 1.0)
    # and than the same kernel rescaled, or a random kernel in the data's span
    assert f < min(objective(c * sol.W, X, S, 1.0) for c in (0.0, 0.8, 1.25))
    R = rng.standard_normal((64, X.shape[1])) @ X.T
    assert f < objective(R * norm / np.linalg.norm(R), X, S, 1.0)


def test_fewer_samples_than_units_and_inputs_is_solved_exactly_in_the_span():
    rng = np.random.default_rng(2)
    d, k, n, lam = 40, 30, 10, 1.0  # n < k and n < d: S Sᵀ and X Xᵀ are both singular
    X, S = rng.standard_normal((d, n)), layerwise.latent_code("random", k, n, rng)
    sol = layerwise.sylvester_solve(X, S, lam)
    A, B, C = S @ S.T, lam * X @ X.T, (1 + lam) * S @ X.T
    assert sol.ridge == 0.0
    assert np.linalg.norm(A @ sol.W + sol.W @ B - C) / np.linalg.norm(C) < 1e-6
    # the minimum-norm solution: nothing outside the span of the samples
    q, _ = np.linalg.qr(X)
    np.testing.assert_allclose(sol.W - sol.W @ q @ q.T, 0, atol=1e-8)


def test_singular_system_gets_a_recorded_ridge():
    rng = np.random.default_rng(2)
    d, k, n, lam = 40, 30, 10, 1.0
    X, S = rng.standard_normal((d, n)), layerwise.latent_code("random", k, n, rng)
    X[:, -1] = X[:, 0]  # a repeated sample: X Xᵀ restricted to the span is singular too
    sol = layerwise.sylvester_solve(X, S, lam)
    A, B, C = S @ S.T, lam * X @ X.T, (1 + lam) * S @ X.T
    expected = layerwise.RIDGE * (np.trace(A) / k + np.trace(B) / d)
    assert sol.ridge == pytest.approx(expected)
    assert np.all(np.isfinite(sol.W))
    # the documented fallback: the regularized equation holds (minimizer of objective + ρ‖W‖²)
    lhs = A @ sol.W + sol.W @ B + sol.ridge * sol.W
    assert np.linalg.norm(lhs - C) / np.linalg.norm(C) < 1e-6
    # same with n >= d (the direct path): a constant-zero input and n < k
    X2, S2 = rng.standard_normal((6, 8)), layerwise.latent_code("random", 12, 8, rng)
    X2[2] = 0.0
    sol2 = layerwise.sylvester_solve(X2, S2, lam)
    A2, B2, C2 = S2 @ S2.T, lam * X2 @ X2.T, (1 + lam) * S2 @ X2.T
    assert sol2.ridge > 0
    lhs2 = A2 @ sol2.W + sol2.W @ B2 + sol2.ridge * sol2.W
    assert np.linalg.norm(lhs2 - C2) / np.linalg.norm(C2) < 1e-6
    with pytest.raises(ValueError, match="both zero"):
        layerwise.sylvester_solve(np.zeros((d, n)), np.zeros((k, n)), lam)
    with pytest.raises(ValueError, match="NaN"):
        layerwise.sylvester_solve(np.full((d, n), np.nan), S, lam)


@pytest.mark.parametrize("d,k,n", [(9, 2, 50), (12, 3, 6), (5, 8, 4)])
def test_batched_group_solve_is_bartels_stewart_per_group(d, k, n):
    rng = np.random.default_rng(5)
    X, S = rng.standard_normal((4, d, n)), rng.standard_normal((4, k, n))
    X[2, :, -1] = X[2, :, 0]  # one group with a repeated sample (a ridge when n < k)
    X[3] = 0.0
    lam = 0.7
    batched = layerwise.sylvester_maths.sylvester_solve_groups(X, S, lam)
    ridges = []
    for g in range(4):
        A, B, C = S[g] @ S[g].T, lam * X[g] @ X[g].T, (1 + lam) * S[g] @ X[g].T
        one = layerwise.sylvester_solve(X[g], S[g], lam)
        np.testing.assert_allclose(batched.W[g], one.W, rtol=1e-6, atol=1e-8)
        ridges.append(one.ridge)
        W = batched.W[g]
        lhs = A @ W + W @ B + one.ridge * W  # the (regularized) equation holds
        assert np.linalg.norm(lhs - C) <= 1e-6 * np.linalg.norm(C) + 1e-12
        if one.ridge == 0 and n >= d:  # the reference: SciPy's general Bartels–Stewart
            np.testing.assert_allclose(W, scipy.linalg.solve_sylvester(A, B, C), rtol=1e-6,
                                       atol=1e-8)
    assert batched.ridge == pytest.approx(max(ridges))
    assert any(r > 0 for r in ridges) == (n < k)


def test_label_code():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 5)
    S = layerwise.latent_code("labels", 10, 20, rng, labels=labels, classes=4)
    # unit j codes class j mod 4: correlates with that class' indicator, noise keeps rows apart
    for j in range(10):
        ind = (labels == j % 4).astype(float)
        assert np.corrcoef(S[j], ind)[0, 1] > 0.95
    assert np.linalg.matrix_rank(S @ S.T) == 10
    with pytest.raises(LayerwiseError, match=r"k=10 units but only n=8"):
        layerwise.latent_code("orthogonal", 10, 8, rng, layer_name="dense_x")


# ----------------------------------------------------------------------------- convolutions
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


# ----------------------------------------------------------------------------- LSUV
def independent_preactivation_variance(model, layer, x):
    x_in = keras.Model(model.inputs[0], layer.input)(x)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    if isinstance(layer, keras.layers.Conv2D):
        z = tf.nn.convolution(x_in, kernel, layer.strides, layer.padding.upper(),
                              dilations=layer.dilation_rate).numpy() + bias
    else:
        z = np.asarray(x_in) @ kernel + bias
    return float(np.var(z.astype(np.float64)))


@pytest.mark.parametrize("orthogonal", [True, False])
def test_lsuv_sets_unit_preactivation_variance(orthogonal, fmnist):
    x, y = fmnist
    x, y = x[:128].reshape(-1, 28, 28, 1), y[:128]
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu",
                            bias_initializer=keras.initializers.RandomNormal(0.3, 0.2))(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, "relu", bias_initializer=keras.initializers.RandomNormal(0, 0.5))(h)
    model = keras.Model(inp, keras.layers.Dense(10)(h))
    handled = [layer for layer in model.layers
               if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    before = [independent_preactivation_variance(model, layer, x) for layer in handled]
    tol = 0.05
    # one batch = the 128 examples (order does not matter for the variance)
    report = km.meta_initialize(model, (x, y), method=LSUV(tol=tol, orthogonal=orthogonal),
                                batch_size=128, seed=0, verbose=0)
    assert [r["name"] for r in report.layers] == [layer.name for layer in handled]
    for layer, row in zip(handled, report.layers):
        var = independent_preactivation_variance(model, layer, x)
        assert abs(var - 1) < tol, (layer.name, var)
        assert row["var_after"] == pytest.approx(var, rel=1e-4)
        assert row["status"] == "set"
    assert any(abs(v - 1) > 0.3 for v in before), "the start should be off (else nothing is shown)"
    if orthogonal:
        k = handled[-1].kernel.numpy()  # columns orthogonal (rescaled orthonormal)
        g = k.T @ k
        np.testing.assert_allclose(g, np.eye(10) * g[0, 0], atol=1e-5 * g[0, 0])
    else:
        assert max(r["iterations"] for r in report.layers) >= 2  # the biases made it iterate


# ----------------------------------------------------------------------------- bad input
def mlp(widths=(16, 8), inputs=12, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((inputs,))
    h = inp
    for i, w in enumerate(widths):
        h = keras.layers.Dense(w, "relu", name=f"h{i}")(h)
    return keras.Model(inp, keras.layers.Dense(3, name="out")(h))


def test_too_few_samples_for_an_orthogonal_code_falls_back_to_the_random_code():
    model = mlp()
    x = np.random.default_rng(0).standard_normal((10, 12))
    with pytest.warns(UserWarning, match=r"'h0'.*k=16 units.*only n=10.*random code"):
        rows = run_sylvester(model, stream(x), SPARSE, latent="orthogonal")
    assert rows[0]["latent"] == "random" and "latent 'random'" in rows[0]["status"]
    assert rows[1]["latent"] == "orthogonal" and rows[1]["status"] == "set"  # k=8 < n=10
    assert all(r["var_after"] == pytest.approx(1, abs=1e-3) for r in rows)
    # the orthogonal code's own error is still there for direct calls
    with pytest.raises(LayerwiseError, match=r"k=16 units but only n=10"):
        layerwise.latent_code("orthogonal", 16, 10, np.random.default_rng(0))


def test_too_few_samples_for_a_random_code_is_solved_or_falls_back_to_a_ridge():
    model = mlp()
    x = np.random.default_rng(0).standard_normal((10, 12))
    rows = run_sylvester(model, stream(x), SPARSE, latent="random", seed=0)
    assert rows[0]["status"] == "set" and rows[0]["ridge"] == 0  # n=10 < k=16: in the span
    assert rows[0]["residual"] < 1e-6
    x[5:] = 0.0  # repeated all-zero examples (kept once): now singular on both sides
    rows = run_sylvester(model, stream(x), SPARSE, latent="random", seed=0)
    assert rows[0]["samples"] == 6
    assert rows[0]["status"] == "set (ridge)" and rows[0]["ridge"] > 0
    assert all(np.all(np.isfinite(v.numpy())) for v in model.weights)
    assert all(r["var_after"] == pytest.approx(1, abs=1e-3) for r in rows)


class Linear(keras.layers.Layer):
    """x @ w: a custom layer with a kernel (no view registered)."""

    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units = units

    def build(self, shape):
        self.w = self.add_weight((shape[-1], self.units))

    def call(self, x):
        return x @ self.w


def test_nan_activations_name_the_layer_and_leave_the_model_unchanged():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12,))
    h = Linear(8, name="custom")(inp)  # a kind the methods do not know: skipped
    out = keras.layers.Dense(4, name="after_custom")(h)
    model = keras.Model(inp, out)
    model.get_layer("custom").w.assign(np.full((12, 8), np.nan, np.float32))
    before = weights(model)
    x = np.ones((32, 12), np.float32)
    for run in (lambda: run_lsuv(model, stream(x)),
                lambda: run_sylvester(model, stream(x), SPARSE, latent="random")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(LayerwiseError, match="'after_custom'.*NaN"):
                run()
        assert_unchanged(model, before)


def test_nan_batch_is_a_data_error():
    model = mlp()
    x = np.ones((32, 12))
    x[3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        run_lsuv(model, stream(x))


def test_zero_inputs_cannot_be_rescaled():
    model = mlp()
    before = weights(model)
    with pytest.raises(LayerwiseError, match="'h0'.*variance 0"):
        run_lsuv(model, stream(np.zeros((32, 12))))
    assert_unchanged(model, before)


def test_a_non_finite_solution_is_never_written(monkeypatch):
    from keras_metainit.layerwise import sylvester_maths as sylvester_module

    model = mlp()
    x = np.random.default_rng(0).standard_normal((64, 12))
    calls, real = [], sylvester_module._eigh

    def broken(a):
        calls.append(1)
        w, v = real(a)
        return w * (np.nan if len(calls) == 3 else 1.0), v  # the 2nd layer's solve fails

    monkeypatch.setattr(sylvester_module, "_eigh", broken)
    before = weights(model)
    with pytest.raises(LayerwiseError, match="'h1'.*non-finite"):
        run_sylvester(model, stream(x), SPARSE, latent="random")
    assert len(calls) == 4  # two decompositions per solve
    assert_unchanged(model, before)  # the first layer, already set, is restored too


def test_labels_latent_needs_real_labels(fmnist):
    x, y = fmnist
    model = mlp(inputs=784)
    spec = LossSpec(SPARSE.fn, "sparse", "argument", random_labels=True)
    with pytest.raises(ValueError, match="needs labelled data"):
        run_sylvester(model, stream(x[:64], y[:64]), spec, latent="labels")
    reg = LossSpec(keras.losses.MeanSquaredError(), "regression", "argument")
    with pytest.raises(ValueError, match="needs class labels"):
        run_sylvester(model, stream(x[:64], y[:64]), reg, latent="labels")
    with pytest.raises(ValueError, match="needs labelled data"):
        km.meta_initialize(model, x[:256], method=Sylvester(latent="labels"), verbose=0)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="latent='onehot'"):
        Sylvester(latent="onehot")
    with pytest.raises(ValueError, match="lam=-1"):
        Sylvester(lam=-1)
    with pytest.raises(ValueError, match="max_iter=0"):
        LSUV(max_iter=0)
    with pytest.raises(ValueError, match="tol=0"):
        LSUV(tol=0)
    assert isinstance(km.methods.get("lsuv"), LSUV)
    s = km.methods.get("sylvester", latent="labels", lam=0.5)
    assert isinstance(s, Sylvester) and s.get_config()["lam"] == 0.5
    assert km.methods.deserialize(km.methods.serialize(s)).get_config() == s.get_config()


# ----------------------------------------------------------------------------- entry point
def functional_cnn():
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inp)
    h = keras.layers.DepthwiseConv2D(3, name="depthwise")(h)
    h = keras.layers.Conv2D(8, 1, groups=2, name="grouped")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(24, activation="relu", name="hidden")(h)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(h))


@pytest.mark.parametrize("method", ["lsuv", "sylvester_labels"])
def test_meta_initialize_on_a_functional_model(method, fmnist):
    x, y = fmnist
    x, y = x[:512].reshape(-1, 28, 28, 1), y[:512]
    model = functional_cnn()
    chosen = "lsuv" if method == "lsuv" else Sylvester(latent="labels", max_samples=512)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no layer skipped
        report = km.meta_initialize(model, (x, y), method=chosen, seed=0, verbose=0)
    rows = {r["name"]: r for r in report.layers}
    assert list(rows) == ["conv", "depthwise", "grouped", "hidden", "logits"]
    for name in ("conv", "depthwise", "grouped", "hidden", "logits"):
        assert rows[name]["status"].startswith("set")
        assert rows[name]["var_after"] == pytest.approx(1, abs=0.1)
    text = str(report)
    assert "layers:" in text
    assert all(name in text for name in rows)
    if method != "lsuv":
        assert "residual" in text and rows["logits"]["samples"] == 512
        # the label code makes the initialized net a classifier already (chance is 0.1)
        xt, yt = load_fashion_mnist("test")
        acc = np.mean(np.argmax(model.predict(xt[:500], verbose=0), -1) == yt[:500])
        assert acc > 0.4, acc


def test_subclassed_model_is_set():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d1, self.d2 = keras.layers.Dense(8, "relu"), keras.layers.Dense(3)

        def call(self, x):
            return self.d2(self.d1(x))

    model = Net()
    x = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        report = km.meta_initialize(model, x, method="lsuv", verbose=0)
    assert [r["status"] for r in report.layers] == ["set", "set"]
    assert all(abs(r["var_after"] - 1) < 0.1 for r in report.layers)


def test_sequential_model_is_handled():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(8, "tanh"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    report = km.meta_initialize(model, x, method=Sylvester(latent="random"), verbose=0)
    assert [r["status"] for r in report.layers] == ["set", "set"]


# ----------------------------------------------------------------------------- few-shot
@pytest.mark.slow
def test_few_shot_fine_tuning(fmnist, capsys):
    """10 labelled examples per class, MLP 784-256-128-10, 30 epochs of Adam; test accuracy."""
    x, y = fmnist
    xt, yt = load_fashion_mnist("test", flatten=True)
    start = time.perf_counter()
    idx = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(10)])
    xs, ys = x[idx], y[idx]
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def net(init, seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((784,)),
                                 keras.layers.Dense(256, "relu", kernel_initializer=init),
                                 keras.layers.Dense(128, "relu", kernel_initializer=init),
                                 keras.layers.Dense(10, kernel_initializer=init)])

    def accuracy(model):
        return float(np.mean(np.argmax(model(xt, training=False), -1) == yt))

    def fine_tune(model, seed):  # 30 epochs of reshuffled batches of 32, as one fit call
        data = tf.data.Dataset.from_tensor_slices((xs, ys)).shuffle(100, seed=seed).batch(32)
        model.compile(keras.optimizers.Adam(1e-3), ce)
        model.fit(data.repeat(30), epochs=1, verbose=0, shuffle=False)

    results = {"glorot": [], "he": [], "sylvester": [], "sylvester (no fine-tuning)": []}
    for seed in range(3):
        for name, init in (("glorot", "glorot_uniform"), ("he", "he_normal"),
                           ("sylvester", "glorot_uniform")):
            model = net(init, seed)
            if name == "sylvester":
                km.meta_initialize(model, (xs, ys), method=Sylvester(latent="labels"), seed=seed,
                                   verbose=0)
                results["sylvester (no fine-tuning)"].append(accuracy(model))
            fine_tune(model, seed)
            results[name].append(accuracy(model))
    with capsys.disabled():
        print(f"\nfew-shot Fashion-MNIST (100 examples, 3 seeds, "
              f"{time.perf_counter() - start:.1f}s):")
        for name, accs in results.items():
            print(f"  {name:28s} {np.mean(accs):.3f} ± {np.std(accs):.3f}  {np.round(accs, 3)}")
    assert np.mean(results["sylvester"]) > 0.5  # clearly above chance (0.1)
    assert np.mean(results["sylvester (no fine-tuning)"]) > 0.3


def test_a_loaded_sequential_model_is_not_taken_for_shared_layers(tmp_path):
    """load_model leaves extra inbound nodes on a Sequential's layers; only calls within the
    model's own graph count, so every layer is still set."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,))] + [keras.layers.Dense(16, "relu") for _ in range(3)]
                             + [keras.layers.Dense(3)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert max(len(layer._inbound_nodes) for layer in loaded.layers) > 1  # the trap is there
    x = np.random.default_rng(0).normal(size=(256, 20)).astype("float32")
    report = km.meta_initialize(loaded, (x, np.arange(256) % 3), method="lsuv", verbose=0)
    assert [row["status"] for row in report.layers] == ["set"] * 4
