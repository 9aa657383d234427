"""learned/core.py, the runner's guarantees on every backend's runner: the best scales by the method's own objective on a
fixed probe batch, never worse than the start; the same seed gives bit-identical scales."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import scale_opt
from keras_metainit.learned import core
from keras_metainit.learned import guard as guard_lib


def mlp(depth=3, width=16, scale=1.0, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((784,))]
                             + [keras.layers.Dense(width, "relu", kernel_initializer="he_normal",
                                                   bias_initializer="random_normal")
                                for _ in range(depth)] + [keras.layers.Dense(10)])
    for v in model.trainable_variables:
        if len(v.shape) == 2:
            v.assign(v * scale)
    return model


class Uphill(km.methods.MetaInit):
    """MetaInit's objective with steps that climb it: every step makes the objective worse."""

    def transform(self):
        def update(grads, state, scales, base_norms, constraint=None):
            return scales * (1.0 + 0.2 * keras.ops.sign(grads)), state

        return scale_opt.ScaleTransform(lambda scales, base_norms: {}, update)


@pytest.mark.backend_neutral
def test_a_run_that_makes_its_objective_worse_leaves_the_model_bit_identical():
    model = mlp(scale=0.5)
    w0 = [v.numpy().copy() for v in model.trainable_variables]
    report = km.meta_initialize(model, None, method=Uphill(steps=10), batch_size=32, seed=0,
                                verbose=0)
    assert report.steps_run == 10
    assert report.history["gq"][-1] > report.history["gq"][0], "the steps should climb"
    assert report.kept_start
    assert any("kept the start" in n for n in report.notes)
    assert report.after == report.before
    for w, v in zip(w0, model.trainable_variables):
        np.testing.assert_array_equal(w, v.numpy())
    assert all(row["scale"] == 1.0 for row in report.tensors)


@pytest.mark.backend_neutral
def test_the_run_ends_at_the_best_scales_on_the_probe_batch():
    """MetaInit's steps improve, then overshoot; the written scales are the best scored ones,
    and the report's `after` is their probe score, which is never above `before`."""
    model = mlp(depth=4, scale=3.0)
    report = km.meta_initialize(model, None, method=km.methods.MetaInit(steps=40, lr=0.5),
                                batch_size=32, seed=0, verbose=0)
    assert not report.kept_start
    assert report.after["gq"] < report.before["gq"]
    # the wall time's parts besides the steps: the guard's checks and the waits for batches
    assert report.guard_time > 0 and report.data_time > 0
    assert report.guard_time + report.data_time < report.wall_time - report.trace_time
    x = np.asarray(tf.random.stateless_normal((32, 784), (0, 0)))
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


@pytest.mark.parametrize("steps", [1, 5, 10, 19, 37, 100, 1001])
def test_the_guard_evaluates_at_most_checks_points_the_last_among_them(steps):
    """The guard is a fixed cost of a run: the start is scored by the first step, then at most
    CHECKS evaluations, the last step always among them, however many steps."""
    scored = []

    class Scales:
        value = 0.0

        def numpy(self):
            return np.array([self.value])

    scales = Scales()

    def evaluate(probe):
        scored.append(scales.value)
        return -scales.value, False, {"v": -scales.value}, True

    guard = guard_lib.BestScales(evaluate, None, scales, steps, lambda: (1.0, 1.0))
    assert guard.start({"value": 0.0, "constraint": False, "ok": True, "v": 0.0}) == {"v": 0.0}
    for done in range(1, steps + 1):
        scales.value = float(done)
        guard.after_step(done)
    assert scored[-1] == steps and len(scored) <= guard_lib.BestScales.CHECKS
    assert len(scored) == min(steps, guard_lib.BestScales.CHECKS) or steps % guard.every
    assert guard.improved and guard.scales[0] == steps  # the objective falls with every step


@pytest.mark.backend_neutral
def test_the_guards_scores_are_the_objective_at_the_scales_they_keep():
    """The start is scored by the first step (on the probe batch) and the checks by the
    gradient-free evaluation; both are the gradient quotient of the model as it stands, computed
    independently by the diagnostics on the one batch the run sees."""
    x = np.asarray(tf.random.stateless_normal((32, 784), (1, 2)))
    y = np.arange(32) % 10
    model = mlp(depth=4, scale=3.0)
    before = km.diagnostics.gradient_quotient(model, (x, y), eps=1e-5)
    method = km.methods.MetaInit(steps=10, lr=0.5, eps=1e-5)
    report = km.meta_initialize(model, (x, y), method=method, batch_size=32, seed=0, verbose=0)
    assert not report.kept_start
    np.testing.assert_allclose(report.before["gq"], before, rtol=1e-4)
    np.testing.assert_allclose(report.after["gq"],
                               km.diagnostics.gradient_quotient(model, (x, y), eps=1e-5),
                               rtol=1e-4)


@pytest.mark.backend_neutral
@pytest.mark.numerics
@pytest.mark.parametrize("method,data", [("metainit", None), ("gradinit", "arrays"),
                                         ("gradcosine", "arrays")])
def test_same_seed_gives_bit_identical_scales(method, data):
    rng = np.random.default_rng(0)
    arrays = (rng.normal(size=(256, 784)).astype("float32"), rng.integers(0, 10, 256))
    scales = []
    for _ in range(2):
        model = mlp(scale=2.0)
        report = km.meta_initialize(model, arrays if data else None, method=method, steps=5,
                                    batch_size=32, seed=7, verbose=0)
        scales.append(np.array(list(report.scales.values())))
        assert report.steps_run == 5
    np.testing.assert_array_equal(scales[0], scales[1])
    assert np.any(scales[0] != 1.0), "the runs should move the scales (else the test shows nothing)"


@pytest.mark.backend_neutral
def test_a_chain_runs_its_stages_in_order_on_one_report():
    """LSUV then MetaInit equals LSUV, then MetaInit on LSUV's result, run by hand."""
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(256, 784)).astype("float32"), rng.integers(0, 10, 256))
    chained = mlp(scale=3.0)
    report = km.meta_initialize(chained, data, method=["lsuv", km.methods.MetaInit(steps=4)],
                                batch_size=64, seed=3, verbose=0)
    by_hand = mlp(scale=3.0)
    lsuv = km.meta_initialize(by_hand, data, method="lsuv", batch_size=64, seed=3, verbose=0)
    meta = km.meta_initialize(by_hand, data, method=km.methods.MetaInit(steps=4), batch_size=64,
                              seed=3, verbose=0)
    for a, b in zip(chained.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert report.method == "lsuv+metainit"
    assert [s.method for s in report.stages] == ["lsuv", "metainit"]
    assert [r["var_after"] for r in report.layers] == [r["var_after"] for r in lsuv.layers]
    assert report.after == meta.after
    assert list(report.scales.values()) == list(meta.scales.values())
    assert report.steps_run == lsuv.steps_run + 4
    assert "stage 1: lsuv" in str(report) and "stage 2: metainit" in str(report)
    config = km.methods.serialize(km.methods.get(["lsuv", "metainit"]))
    assert km.methods.get(config).name == "lsuv+metainit"
    with pytest.raises(ValueError, match="list of methods"):
        km.meta_initialize(mlp(), data, method=["lsuv", "metainit"], lr=0.1, verbose=0)


# ------------------------------------------------- responsive: the guard never leaves a model dead
def _spread(model, x):
    return float(np.mean(np.std(model.predict(x, verbose=0), axis=0)))


def _layer_norm_classifier():
    """A GELU layer, LayerNormalization and a 2-way head at std 0.02 (BERT's head init): the
    paper's absolute MetaInit step (0.1 per step on a head of norm 0.27) used to drive the head
    to the 1e-3 floor in 5 steps (output spread 0.186 -> 0.000186) while GQ went down."""
    keras.utils.set_random_seed(0)
    x = np.random.randn(256, 32).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([
        keras.Input((32,)), keras.layers.Dense(128, "gelu", kernel_initializer="he_normal"),
        keras.layers.LayerNormalization(),
        keras.layers.Dense(2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02)),
    ])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, x, y


@pytest.mark.numerics
def test_metainit_never_leaves_the_classifier_head_dead():
    model, x, y = _layer_norm_classifier()
    before = _spread(model, x[:64])
    report = model.meta_initialize((x, y), method="metainit", steps=5, batch_size=16,
                                   verbose=0, seed=0)
    after = _spread(model, x[:64])
    assert after >= guard_lib.DEAD_RATIO * before, (before, after)
    assert any(n.startswith("kept responsive") for n in report.notes), report.notes


def test_the_relative_step_keeps_the_head_alive_by_itself():
    model, x, y = _layer_norm_classifier()
    report = model.meta_initialize(
        (x, y), method=km.methods.MetaInit(steps=5, step="relative"), batch_size=16, verbose=0,
        seed=0)
    head = report.tensors[-2]  # kernel of the head (its bias follows)
    assert head["name"].endswith("kernel") and head["scale"] > 0.5, report.tensors
    assert not any(n.startswith("kept responsive") for n in report.notes), report.notes


def _constant_output_model():
    """A ReLU layer whose bias (-100) keeps every unit off: the output does not depend on the
    input, though every kernel has a nonzero norm (MobileNetV3Small's start, in miniature)."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, "relu", bias_initializer=keras.initializers.Constant(-100.0)),
        keras.layers.Dense(32, "relu"), keras.layers.Dense(3),
    ])


@pytest.mark.parametrize("method", ["metainit", "gradinit", "gradcosine"])
def test_a_model_with_constant_output_gets_the_no_signal_note(method):
    model = _constant_output_model()
    x = np.random.rand(64, 16).astype("float32")
    y = np.random.randint(0, 3, 64)
    with pytest.warns(UserWarning, match="no signal"):
        report = model.meta_initialize((x, y), method=method, steps=2, batch_size=16,
                                       verbose=0, seed=0)
    note = next(n for n in report.notes if n.startswith("no signal"))
    assert "lsuv" in note.lower()


def test_a_responsive_model_gets_no_no_signal_note():
    model, x, y = _layer_norm_classifier()
    report = model.meta_initialize((x, y), method="gradinit", steps=2, batch_size=16,
                                   verbose=0, seed=0)
    assert not any(n.startswith("no signal") for n in report.notes), report.notes


def test_output_spread_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 3, 2)), rng.normal(size=(8, 5))
    spread, magnitude = guard_lib.output_spread([keras.ops.convert_to_tensor(a, "float32"),
                                            keras.ops.convert_to_tensor(b, "float32")])
    want = np.mean([np.std(a.reshape(8, -1), axis=0).mean(), np.std(b, axis=0).mean()])
    np.testing.assert_allclose(float(spread), want, rtol=1e-5)
    np.testing.assert_allclose(float(magnitude), np.mean([np.abs(a).mean(), np.abs(b).mean()]),
                               rtol=1e-5)


class _Read:
    """A step output that records how many steps had been dispatched when it was read back."""

    def __init__(self, value, log, calls):
        self.value, self.log, self.calls = value, log, calls

    def __array__(self, dtype=None, copy=None):
        self.log.append(self.calls[0])
        return np.asarray(self.value, dtype)


def _drive(steps, fail_at=None, bad_batch_at=None):
    """``core.drive`` over a fake run whose step lowers the objective by one each step."""
    import types

    reads, calls, scale = [], [0], [0.0]

    class Scales:
        def numpy(self):
            return np.array([scale[0]])

    def step_fn(batches):
        k = calls[0]
        calls[0] += 1
        ok = k != fail_at
        if ok:
            scale[0] = k + 1.0
        out = {"ok": ok, "batch_ok": k != bad_batch_at, "constraint": False,
               "value": -float(k), "m": -float(k)}
        return {n: _Read(v, reads, calls) for n, v in out.items()}

    run = types.SimpleNamespace(scales=Scales(), spread=lambda x: (1.0, 1.0), traces=1,
                                write_back=lambda s: None, tuned=[], variables=[], norms=[])
    method = types.SimpleNamespace(metric_names=("m",), name="fake")
    report = km.InitReport(method="fake", config={})
    evaluate = lambda probe: (-scale[0], False, {"m": -scale[0]}, True)  # noqa: E731
    it = iter(lambda: ((np.zeros((2, 3)), np.zeros(2)),), None)
    core.drive(run, method, it, step_fn, evaluate, steps, 0, report, 0.0)
    return report, reads


def test_the_loop_reads_the_steps_back_only_at_the_first_step_and_the_checks():
    """No host round-trip per step: with verbose=0 the outputs are read back after the first
    step and at the guard's checks (at most CHECKS), all of them, in order."""
    report, reads = _drive(100)
    assert len(set(reads)) <= guard_lib.BestScales.CHECKS + 1 < 100
    assert _drive(2)[0].step_time >= 0  # the second step is timed
    assert report.history["m"] == [-float(k) for k in range(100)]
    assert report.steps_run == 100 and report.step_time >= 0


def test_a_failed_step_in_a_block_ends_the_run_there():
    """A step refused (not ok) between two read-backs ends the run at that step, as if it had
    been read at once; a bad batch raises naming its step."""
    with pytest.warns(RuntimeWarning, match="step 37"):
        report, _ = _drive(100, fail_at=37)
    assert report.steps_run == 37 and "step 37" in report.stopped_early
    assert report.history["m"] == [-float(k) for k in range(37)]
    with pytest.raises(ValueError, match="step 23"):
        _drive(100, bad_batch_at=23)
