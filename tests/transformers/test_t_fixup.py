"""T-Fixup: every kernel it draws has the authors' distribution and factor; the rest is untouched;
it runs as a method, alone and chained."""
import math

import keras
import numpy as np
import pytest

import keras_metainit
from keras_metainit.transformers import TFixup, t_fixup, t_fixup_factors

D, FF, HEADS, VOCAB = 64, 128, 4, 256


def _xavier_limit(fan_in, fan_out):
    return math.sqrt(6.0 / (fan_in + fan_out))


def _fans(row, layer_shape):
    """(fan_in, fan_out) of a kernel as a PyTorch Linear has them (d_in, d_out)."""
    part = row["part"].split("_")[-1]
    if part == "output":  # (heads, head_dim, d)
        return layer_shape[0] * layer_shape[1], layer_shape[2]
    if part in ("query", "key", "value"):  # (d, heads, head_dim)
        return layer_shape[0], layer_shape[1] * layer_shape[2]
    return layer_shape[0], layer_shape[1]


def _check_rows(model, report, ks, n, m):
    """Every kernel in the report against the authors' rule, written out here: Xavier uniform
    (query/key gain 1/sqrt(2)), value/output/ffn x 0.67 N^-1/4 (encoder) or (9M)^-1/4 (decoder),
    embeddings N(0, d^-1/2) x (9N)^-1/4 or (9M)^-1/4; pooled per kind as well."""
    variables = {v.path: v for v in model.weights}
    block = {"encoder": 0.67 * n ** -0.25, "decoder": (9 * m) ** -0.25 if m else None}
    embed = {"encoder": (9 * n) ** -0.25, "decoder": (9 * m) ** -0.25 if m else None}
    pooled = {}
    for row in (r for r in report.layers if r["status"] == "set"):
        w = keras.ops.convert_to_numpy(variables[row["name"]].value)
        part = row["part"].split("_")[-1]
        if part == "embedding":
            dist, scale = "normal", D ** -0.5 * embed[row["role"]]
        else:
            gain = 2 ** -0.5 if part in ("query", "key") else 1.0
            factor = 1.0 if part in ("query", "key") else block[row["role"]]
            dist, scale = "uniform", gain * factor * _xavier_limit(*_fans(row, w.shape))
        ks(w, dist, scale, p_min=1e-6)
        pooled.setdefault((dist, row["role"], part), []).append(w.ravel() / scale)
    for (dist, _, _), parts in pooled.items():
        ks(np.concatenate(parts), dist, 1.0, p_min=1e-3)
    return pooled


def test_encoder_kernels_follow_the_rule(build, ks):
    n = 3
    model = build(n, d=D, ff=FF, heads=HEADS, vocab=VOCAB, norm="none")
    report = model.meta_initialize(method="t_fixup", seed=1, verbose=0)
    pooled = _check_rows(model, report, ks, n, 0)
    # 4 projections and 2 feed-forward kernels per block, and the embedding
    assert sum(len(v) for v in pooled.values()) == 6 * n + 1
    assert {k[2] for k in pooled} == {"query", "key", "value", "output", "ffn1", "ffn2",
                                      "embedding"}


def test_decoder_kernels_follow_the_rule(build, ks):
    n, m = 2, 3
    model = build(n, m, d=D, ff=FF, heads=HEADS, vocab=VOCAB, norm="none")
    report = t_fixup(model, seed=2)
    pooled = _check_rows(model, report, ks, n, m)
    decoder = sum(len(v) for k, v in pooled.items() if k[1] == "decoder")
    assert decoder == 10 * m + 1  # self- and cross-attention, 2 ffn kernels, the embedding
    assert any(r["part"] == "cross_value" and r["role"] == "decoder" for r in report.layers)


def test_a_decoder_only_stack_takes_the_decoder_rule_when_asked(build, ks):
    model = build(2, d=D, ff=FF, heads=HEADS, vocab=VOCAB, norm="none")
    report = model.meta_initialize(method=TFixup(role="decoder"), seed=3, verbose=0)
    assert {r["role"] for r in report.layers if r["status"] == "set"} == {"decoder"}
    value = next(r for r in report.layers if r["part"] == "value")
    w = keras.ops.convert_to_numpy({v.path: v for v in model.weights}[value["name"]].value)
    ks(w, "uniform", (9 * 2) ** -0.25 * _xavier_limit(D, D))


def test_only_block_kernels_and_token_embeddings_change(build):
    model = build(2, d=D, ff=FF, heads=HEADS, vocab=VOCAB, norm="post")
    for v in model.weights:  # nonzero biases and norm weights, to see they are left alone
        v.assign(keras.random.normal(v.shape, seed=len(v.path)) + 1.0)
    before = {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}
    report = model.meta_initialize(method="tfixup", verbose=0)
    set_ = {r["name"] for r in report.layers if r["status"] == "set"}
    for v in model.weights:
        changed = not np.array_equal(before[v.path], keras.ops.convert_to_numpy(v.value))
        assert changed == (v.path in set_), v.path
    assert "head/kernel" not in set_ and any("normalization" in n for n in report.notes[1:2])


def test_t_fixup_then_gradinit_chains_from_t_fixups_kernels(build):
    model = build(2, vocab=20)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (32, 8)), rng.integers(0, 20, (32, 8))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    report = model.meta_initialize((x, y), method=["t_fixup", "gradinit"], steps=3,
                                   batch_size=16, seed=5, verbose=0)
    alone = twin.meta_initialize(method="t_fixup", seed=5, verbose=0)
    assert [s.method for s in report.stages] == ["t_fixup", "gradinit"]
    assert report.stages[1].steps_run == 3 and report.steps_run == 3
    assert len([r for r in report.layers if r["status"] == "set"]) == len(
        [r for r in alone.layers if r["status"] == "set"])
    # GradInit only rescales each tensor: every kernel T-Fixup drew keeps its direction
    chained = {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}
    for row in (r for r in alone.layers if r["status"] == "set"):
        a = keras.ops.convert_to_numpy({v.path: v for v in twin.weights}[row["name"]].value)
        b = chained[row["name"]]
        cos = np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b))
        assert cos == pytest.approx(1.0, abs=1e-5), row["name"]
    text = str(report)
    assert "stage 1: t_fixup" in text and "stage 2: gradinit, 3 steps" in text
    assert "factor" in text and "t_fixup: T-Fixup: encoder blocks x" in text


def test_factors_and_arguments():
    assert t_fixup_factors(encoder_layers=6)["encoder"] == pytest.approx(
        (0.67 / 6 ** 0.25, 54 ** -0.25))
    assert t_fixup_factors(0, 4) == {"decoder": pytest.approx((36 ** -0.25, 36 ** -0.25))}
    with pytest.raises(ValueError, match="Argument `role` must be None or one of"):
        TFixup(role="middle")
    with pytest.raises(ValueError, match="Argument `qk_gain` must be a positive float"):
        TFixup(qk_gain=0)
    with pytest.raises(ValueError, match="Argument `encoder_layers` must be positive"):
        t_fixup_factors()
    assert keras_metainit.methods.get("tfixup").get_config() == TFixup().get_config()


def test_no_block_is_an_error_and_steps_are_ignored(build):
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="nothing for TFixup to initialize"):
        mlp.meta_initialize(method="t_fixup", verbose=0)
    with pytest.warns(UserWarning, match="`steps` is ignored by the analytic method t_fixup"):
        build(1).meta_initialize(method="t_fixup", steps=5, verbose=0)
