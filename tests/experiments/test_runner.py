"""experiments.runner: a table over seeds (summaries by the stats convention), the learning-rate
sweep, initializations run once per row and seed across tables, the claim verdicts, the
markdown table; experiments.contenders' rows."""
import numpy as np
import pytest

from keras_metainit.experiments import contenders as C
from keras_metainit.experiments import models, runner, stats
from keras_metainit.experiments.training import Budget


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0).astype("int64")


DATA = (_data(512, 0), _data(128, 1))


def _table(rows, **kw):
    return runner.Table(
        "t", "tiny", models.mlp, {"depth": 2, "width": 8, "input_shape": (10,), "classes": 4},
        DATA, Budget("adam", 1e-2, batch_size=32, steps=15), rows, **kw)


def test_run_table_summaries_the_sweep_and_init_once_per_seed():
    calls = []

    def init(model, data, seed):
        calls.append(seed)
        models.scale_kernels(model, 0.5)

    counted = C.Contender("counted", "suite", {"kernel_initializer": "he_normal"}, init)
    table = _table([C.keras_default(), counted], lrs=(1e-7, 3e-2),
                   claims=[runner.Claim("counted wins", ["counted"], ["Keras default"])])
    session = runner.Session()
    logged = []
    result = runner.run_table(table, [0, 1, 2], session, log=logged.append)
    rows = {r["name"]: r for r in result["rows"]}
    for r in rows.values():
        assert r["n"] == 3 and len(r["values"]) == 3
        assert r["mean"] == pytest.approx(np.mean(r["values"]))
        assert r["std"] == pytest.approx(np.std(r["values"], ddof=1))
        assert set(r["sweep"]) == {"1e-07", "0.03"}
        assert r["lr"] == 3e-2  # a rate of 1e-7 learns nothing in 15 steps
    # seed 0 at each rate of the sweep, then seeds 1 and 2: one initialization per seed
    assert sorted(calls) == [0, 1, 2]
    assert sum("lr 1e-07 seed 0" in line for line in logged) == 2
    table2 = _table([counted])
    runner.run_table(table2, [0, 1, 2], session, log=lambda line: None)
    assert sorted(calls) == [0, 1, 2]  # the second table reuses the initialized weights
    runner.run_table(table2, [0], runner.Session(), log=lambda line: None)
    assert sorted(calls) == [0, 0, 1, 2]  # a new session initializes again
    assert result["verdicts"][0]["verdict"] in ("holds", "does not hold")
    text = runner.format_table(result)
    assert "| counted | suite |" in text and "- VERDICT (counted wins): **" in text
    assert "| best lr |" in text and "| 0.03 |" in text


def test_judge_uses_the_verdict_rule():
    def row(values):
        return {"values": values, "mean": float(np.mean(values))}

    claim = runner.Claim("x wins", ["x", "absent"], ["a", "b", "missing"], ["ref"])
    rows = {"x": row([0.9, 0.92, 0.91]), "a": row([0.1, 0.12, 0.11]), "b": row([0.5, 0.52, 0.51]),
            "ref": row([0.95, 0.96, 0.97])}
    v = runner.judge(claim, rows)
    assert v["verdict"] == "holds" and v["winners"] == ["x"]
    assert "the reference ref" in v["text"]
    rows["b"] = row([0.7, 0.9, 1.1])  # within the spread of x
    assert not stats.compare(rows["x"]["values"], rows["b"]["values"]).above
    assert runner.judge(claim, rows)["verdict"] == "does not hold"
    assert runner.judge(runner.Claim("t", ["nobody"], ["a"]), rows)["verdict"] == "not run"


def test_contenders_rows():
    assert C.keras_default().model == {"kernel_initializer": "glorot_uniform"}
    assert C.he().kind == "analytic" and C.fixup().model["fixup"] is True
    assert C.suite("metainit", steps=20).name == "MetaInit (20 steps)"
    chain = C.suite(["lsuv", "gradinit"], steps=5, eta=1e-3, step="adam")
    assert chain.name == "LSUV → GradInit (5 steps, η 0.001, adam step)"
    assert chain.kind == "suite"
    bad = C.suite("lsuv").on(scale=0.1, kernel_initializer="he_normal").named("x0.1 + LSUV")
    assert (bad.name, bad.scale, bad.model["kernel_initializer"]) == (
        "x0.1 + LSUV", 0.1, "he_normal")
    ref = C.reference("warmup 100", budget={"warmup": 100})
    assert ref.kind == "reference" and ref.budget == {"warmup": 100}
    assert [r.name for r in C.keep([C.he(), C.suite("lsuv"), ref], ("He", "warm"))] == [
        "He", "warmup 100"]
    rows = [C.suite("lsuv"), C.suite(["lsuv", "gradinit"], steps=2), C.he()]
    assert [r.name for r in C.keep(rows, ["LSUV$"])] == ["LSUV"]
    assert [r.name for r in C.keep(rows, ["LSUV"])] == ["LSUV", "LSUV → GradInit (2 steps)"]
    with pytest.raises(ValueError, match="kind"):
        C.Contender("x", "magic")


def test_a_chain_row_runs_both_methods():
    model = models.mlp(2, 8, input_shape=(10,), classes=4, seed=0)
    report = C.suite(["lsuv", "gradinit"], steps=2, eta=1e-3).init(model, _data(256, 0), 0)
    assert [s.method for s in report.stages] == ["lsuv", "gradinit"]
    assert report.stages[1].steps_run == 2


def test_init_cache_on_disk_is_reused_by_another_session(tmp_path):
    calls = []

    def init(model, data, seed):
        calls.append(seed)
        models.scale_kernels(model, 0.5)

    row = C.Contender("counted", "suite", {"kernel_initializer": "he_normal"}, init)
    table = _table([row])
    first, init_s, _ = runner.Session(str(tmp_path)).initialized(table, row, 3)
    again, init_s2, _ = runner.Session(str(tmp_path)).initialized(table, row, 3)
    assert calls == [3] and init_s2 == init_s
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = runner.Session(str(tmp_path)).initialized(table, row, 4)[0]  # another seed
    assert calls == [3, 4]
    assert any(not np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights()))
