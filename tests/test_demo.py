"""demo.py: the quick run end to end through the CLI (tables, demo.json, figures by default), a
quiet CLI, the table, the result of a contender, the plots."""
import json

from keras_metainit import demo


def _table_rows(text, contenders=None):
    """{contender name: fields after the name} for the printed table's lines (names have spaces)."""
    names = sorted((c.name for c in contenders or demo.CONTENDERS), key=len, reverse=True)
    rows = {}
    for line in text.splitlines():
        for name in names:
            if line.startswith(name + "  "):
                rows[name] = line[len(name):].split()
                break
    return rows


def _row(name, acc=0.5, gq=(None, None), losses=(1.0, 0.5)):
    return {"init": name, "scene": "default", "init_s": 1.25, "gq_before": gq[0],
            "gq_after": gq[1], "train_s": 3.5, "train_loss": losses[-1], "test_acc": acc,
            "loss_per_epoch": list(losses)}


def test_demo_quick_prints_a_table_per_scene_and_writes_its_figures(tmp_path, capsys):
    """``keras-metainit demo --quick --out DIR``: both scenes' tables, demo.json and the figures,
    written without asking for them."""
    from keras_metainit import cli

    out = tmp_path / "out"  # does not exist yet: the demo creates it
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    contenders = list(demo.CONTENDERS) + ([demo.ANYINIT] if demo.anyinit_available() else [])
    names = [c.name for c in contenders]
    assert {c.scene for c in demo.CONTENDERS} == set(demo.SCENES)
    assert "from Keras's default init" in printed and "x0.1 of He-normal" in printed
    rows = _table_rows(printed, contenders)
    assert set(rows) == set(names), printed
    for name, fields in rows.items():
        acc = float(fields[-1])  # last column: test accuracy
        assert 0.0 <= acc <= 1.0, (name, acc)
        assert float(fields[0]) >= 0.0, fields  # init s
        fixes = next(c for c in contenders if c.name == name).fixes
        assert (fields[1] == "-") != fixes, fields  # GQ before -> after only for the fixes
        if fixes:
            assert fields[2] == "->" and float(fields[1]) >= 0 and float(fields[3]) >= 0, fields
    assert "total time" in printed

    saved = json.loads((out / "demo.json").read_text())
    assert sorted(r["init"] for r in saved["results"]) == sorted(names)
    assert saved["config"]["depth"] == demo.QUICK["depth"]
    assert {r["init"]: round(r["test_acc"], 3) for r in saved["results"]} == {
        name: float(fields[-1]) for name, fields in rows.items()
    }
    meta = next(r for r in saved["results"] if r["init"] == "default + MetaInit")
    assert len(meta["report"]["history"]["gq"]) == demo.QUICK["metainit_steps"]
    assert all(len(r["loss_per_epoch"]) == demo.QUICK["epochs"] for r in saved["results"])
    steps = demo.QUICK["epochs"] * -(-demo.QUICK["train_size"] // 128)
    assert all(len(r["loss_per_step"]) == steps for r in saved["results"])
    for name in ("demo_accuracy.png", "training_curves.png", "metainit_gq.png"):
        assert (out / name).stat().st_size > 0, name
        assert f"figure:  {out / name}" in printed


def test_demo_defaults_write_figures_to_a_folder_of_their_own():
    cfg = demo.DemoConfig()
    assert cfg.plots is True and cfg.out == "keras-metainit-demo"


def test_cli_is_quiet_before_tensorflow_is_imported():
    """``python -m keras_metainit`` (which imports TensorFlow through the package) prints none of
    TensorFlow's import-time lines."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "keras_metainit", "--help"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout
    for noise in ("cuInit", "oneDNN", "cudart", "absl::InitializeLog", "cpu_feature_guard"):
        assert noise not in done.stderr, done.stderr


def test_anyinit_row_only_when_installed(tmp_path, monkeypatch, capsys):
    seen = []

    def fake_run(contender, cfg, data):
        seen.append(contender.name)
        return _row(contender.name)

    monkeypatch.setattr(demo, "run_contender", fake_run)
    monkeypatch.setattr(demo, "write_plots", lambda rows, out: [])
    cfg = demo.DemoConfig(**{**demo.QUICK, "out": str(tmp_path)})
    monkeypatch.setattr(demo, "anyinit_available", lambda: False)
    demo.run_demo(cfg)
    assert demo.ANYINIT.name not in seen
    assert "AnyInit (a peer) is not installed" in capsys.readouterr().out
    seen.clear()
    monkeypatch.setattr(demo, "anyinit_available", lambda: True)
    demo.run_demo(cfg)
    assert demo.ANYINIT.name in seen


def test_format_table_columns():
    rows = [_row("He", acc=0.8125), _row("+ MetaInit", acc=0.75, gq=(123.456, 1.5))]
    lines = demo.format_table(rows).splitlines()
    assert lines[0].split() == ["method", "init", "s", "GQ", "before", "->", "after", "train", "s",
                                "train", "loss", "test", "acc"]
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    assert len({len(line) for line in lines}) == 1  # every line as wide as the header
    assert lines[2].split() == ["He", "1.2", "-", "3.5", "0.500", "0.812"]
    assert lines[3].split() == ["+", "MetaInit", "1.2", "123", "->", "1.5", "3.5", "0.500",
                                "0.750"]


def test_run_contender_reads_the_initialized_result(monkeypatch):
    """The GQ probes and the report come from the contender's result; the probes' time is not
    part of "init s"."""
    import keras

    class FakeReport:
        def to_dict(self):
            return {"method": "fake"}

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    built = demo.Initialized(model, FakeReport(), gq_before=9.0, gq_after=2.0, probe_s=1e6)
    contender = demo.Contender("fake", lambda cfg, data: built, fixes=True)
    trained = []
    monkeypatch.setattr(demo, "train_and_evaluate",
                        lambda m, cfg, data: trained.append(m) or {"test_acc": 0.5})
    row = demo.run_contender(contender, demo.DemoConfig(), None)
    assert trained == [model]
    assert (row["gq_before"], row["gq_after"], row["report"]) == (9.0, 2.0, {"method": "fake"})
    assert row["init_s"] < 0  # 1e6 probe seconds were taken out
    plain = demo.run_contender(demo.Contender("plain", lambda cfg, data: demo.Initialized(model)),
                               demo.DemoConfig(), None)
    assert (plain["gq_before"], plain["report"]) == (None, None) and plain["init_s"] >= 0


def test_write_plots_writes_the_accuracy_the_curves_and_the_metainit_gq(tmp_path):
    meta = {**_row("default + MetaInit", gq=(9.0, 2.0)),
            "report": {"history": {"gq": [5.0, 3.0, 2.0]}}}
    bad = {**_row("x0.1 + LSUV", gq=(1.0, 3.0)), "scene": "bad"}
    paths = demo.write_plots([_row("He"), meta, bad], str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        "demo_accuracy.png", "training_curves.png", "metainit_gq.png"]
    for path in paths:
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # no MetaInit row, no GQ figure
    assert [p.rsplit("/", 1)[-1] for p in demo.write_plots([_row("He")], str(tmp_path))] == [
        "demo_accuracy.png", "training_curves.png"]
