"""layerwise/sylvester.py: the Sylvester method on layers: fallbacks with few samples, a
non-finite solve never written, the label code, its arguments, and few-shot fine-tuning."""
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import layerwise
from keras_metainit.datasets import load_fashion_mnist
from keras_metainit.layerwise import LayerwiseError
from keras_metainit.losses import LossSpec
from keras_metainit.methods import Sylvester
from tests.layerwise.util import (SPARSE, assert_unchanged, images, mlp, run_sylvester, stream,
                                  weights)


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


def test_sylvester_arguments_are_validated():
    with pytest.raises(ValueError, match="latent='onehot'"):
        Sylvester(latent="onehot")
    with pytest.raises(ValueError, match="lam=-1"):
        Sylvester(lam=-1)
    s = km.methods.get("sylvester", latent="labels", lam=0.5)
    assert isinstance(s, Sylvester) and s.get_config()["lam"] == 0.5
    assert km.methods.deserialize(km.methods.serialize(s)).get_config() == s.get_config()


def test_sylvester_default_on_a_conv_with_more_filters_than_examples():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(48, 3, padding="same", activation="relu", name="wide")(inp)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(40, name="dense")(h)
    model = keras.Model(inp, out)
    x = images(96, 8, 3)  # batches of 16 examples: fewer than either layer's units
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        rows = Sylvester().run(model, stream(x, batch=16), SPARSE, seed=0)
    conv, dense = rows
    assert conv["latent"] == dense["latent"] == "orthogonal"
    assert conv["status"] == dense["status"] == "set"
    assert conv["samples"] > 48 and dense["samples"] > 40  # patches; more batches for the Dense
    assert conv["var_after"] == pytest.approx(1, abs=1e-3)
    # max_samples below the units: an orthogonal code still gets k + 1 rows
    rows = Sylvester(max_samples=8).run(model, stream(x, batch=16), SPARSE, seed=0)
    assert [(r["samples"], r["latent"]) for r in rows] == [(49, "orthogonal"), (41, "orthogonal")]


def test_sequential_model_is_handled():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(8, "tanh"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    report = km.meta_initialize(model, x, method=Sylvester(latent="random"), verbose=0)
    assert [r["status"] for r in report.layers] == ["set", "set"]


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
