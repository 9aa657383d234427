"""benchmarks/step_cost.py: the wall time per step as a user times it (long run minus short run,
per step) and its guard and input shares, from the reports of the runs."""
import os
import types

import pytest

import keras_metainit as km

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")


@pytest.mark.backend_neutral
def test_wall_per_step_splits_the_difference_of_two_runs(monkeypatch):
    monkeypatch.syspath_prepend(os.path.abspath(BENCH))
    import step_cost

    calls = []

    def fake(model, data, method, steps, **kwargs):
        """A run of ``steps``: 2 s of tracing, then per step 30 ms: 20 step, 6 guard, 1 data."""
        calls.append(steps)
        return types.SimpleNamespace(wall_time=2.0 + 0.03 * steps, guard_time=0.006 * steps,
                                     data_time=0.001 * steps)

    monkeypatch.setattr(km, "meta_initialize", fake)
    out = step_cost.wall_per_step(lambda: None, "metainit", None, 32, 10, 60)
    assert calls == [10, 10, 60]  # the first run warms the process up and is not timed
    assert out["wall_steps"] == [10, 60]
    assert out["wall_ms"] == pytest.approx(30.0)
    assert out["guard_share"] == pytest.approx(0.2) and out["data_share"] == pytest.approx(1 / 30)


def test_a_backend_past_its_timeout_shows_it_in_every_cell_of_its_model(monkeypatch):
    """step_cost_backends.py --timeout: one process per model; a model whose process runs past
    the limit shows "not done in N s" in its cells, the other models and backends their
    figures, and the table renders."""
    monkeypatch.syspath_prepend(os.path.abspath(BENCH))
    import render
    import step_cost_backends as scb

    def fake_run(cmd, timeout=None, **kwargs):
        model = cmd[cmd.index("--models") + 1]
        if model == "nasnet":
            raise scb.subprocess.TimeoutExpired(cmd, timeout)
        row = {"training step": {"ms": 10.0},
               "metainit": {"ms": 40.0, "train_ms": 10.0, "first_s": 25.0}}
        return types.SimpleNamespace(stdout="RESULT " + scb.json.dumps(
            {"device": "cpu:0", model: row}), stderr="")

    monkeypatch.setattr(scb.subprocess, "run", fake_run)
    out = scb._measure("tensorflow", ["resnet", "nasnet"], 2, ["metainit"], timeout=60)
    assert out["device"] == "cpu:0" and out["resnet"]["metainit"]["first_s"] == 25.0
    assert out["nasnet"]["metainit"] == {"error": "not done in 60 s"}
    table = render.render_step_cost_backends({
        "meta": {}, "models": {m: scb.LABELS[m] for m in ("resnet", "nasnet")},
        "methods": ["metainit"], "backends": {"tensorflow": out}})
    assert "not done in 60 s" in table and "| 25.0 |" in table


def test_a_tensorflow_setting_runs_as_a_tensorflow_process_with_its_setting(monkeypatch):
    """step_cost_backends.py --backends tensorflow-xla: the child runs under
    KERAS_BACKEND=tensorflow with ``--setting tensorflow-xla``, and a TensorFlow error in its
    cells names the op it was about."""
    monkeypatch.syspath_prepend(os.path.abspath(BENCH))
    import step_cost_backends as scb

    seen = []

    def fake_run(cmd, env=None, **kwargs):
        seen.append((env["KERAS_BACKEND"], cmd[cmd.index("--setting") + 1]))
        return types.SimpleNamespace(stdout="RESULT " + scb.json.dumps({"device": "cpu:0"}),
                                     stderr="")

    monkeypatch.setattr(scb.subprocess, "run", fake_run)
    scb._measure("tensorflow-xla", ["resnet"], 1, ["metainit"])
    assert seen == [("tensorflow", "tensorflow-xla")]
    cell = scb._error(LookupError("No gradient defined for operation 'a/b/c/d/e/f/g/h/i/j/k/l/m"
                                  "/n/o/p/q/r/s/t/u/v/w/x/y/z/Op' (op type: XlaOp). In general"))
    assert cell.startswith("LookupError: No gradient") and cell.endswith("(op type: XlaOp)")
