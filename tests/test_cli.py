"""The ``keras-metainit`` command line: the demo in quick mode, diagnose, init and ``--help``."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from keras_metainit import cli


def _table_rows(text, contenders=None):
    """{contender name: fields after the name} for the printed table's lines (names have spaces)."""
    names = sorted((c.name for c in contenders or cli.CONTENDERS), key=len, reverse=True)
    rows = {}
    for line in text.splitlines():
        for name in names:
            if line.startswith(name + "  "):
                rows[name] = line[len(name):].split()
                break
    return rows


def test_demo_quick_prints_a_row_per_contender(tmp_path, capsys):
    out = tmp_path / "out"  # does not exist yet: the demo creates it
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    contenders = list(cli.CONTENDERS) + ([cli.ANYINIT] if cli.anyinit_available() else [])
    names = [c.name for c in contenders]
    assert {"Keras default", "He", cli.BAD_START, "+ MetaInit", "+ GradInit", "+ GradCosine",
            "+ LSUV", "+ Sylvester"} == {c.name for c in cli.CONTENDERS}
    assert "x0.1 of He-normal" in printed
    rows = _table_rows(printed, contenders)
    assert set(rows) == set(names), printed
    for name, fields in rows.items():
        acc = float(fields[-1])  # last column: test accuracy
        assert 0.0 <= acc <= 1.0, (name, acc)
        assert float(fields[0]) >= 0.0, fields  # init s
        fixes = next(c for c in contenders if c.name == name).fixes_bad_start
        assert (fields[1] == "-") != fixes, fields  # GQ before -> after only for the fixes
        if fixes:
            assert fields[2] == "->" and float(fields[1]) >= 0 and float(fields[3]) >= 0, fields
    assert "total time" in printed

    saved = json.loads((out / "demo.json").read_text())
    assert [r["init"] for r in saved["results"]] == names
    assert saved["config"]["depth"] == cli.QUICK["depth"]
    assert {r["init"]: round(r["test_acc"], 3) for r in saved["results"]} == {
        name: float(fields[-1]) for name, fields in rows.items()
    }
    meta = next(r for r in saved["results"] if r["init"] == "+ MetaInit")
    assert len(meta["report"]["history"]["gq"]) == cli.QUICK["metainit_steps"]
    assert all(len(r["loss_per_epoch"]) == cli.QUICK["epochs"] for r in saved["results"])
    pytest.importorskip("matplotlib")
    assert list(out.glob("*.png")), list(out.iterdir())
    assert (out / "training_curves.png").stat().st_size > 0


def test_anyinit_row_only_when_installed(tmp_path, monkeypatch, capsys):
    seen = []

    def fake_run(contender, cfg, data):
        seen.append(contender.name)
        return {"init": contender.name, "init_s": 0.0, "train_s": 0.0, "train_loss": 1.0,
                "test_acc": 0.5, "loss_per_epoch": [1.0]}

    monkeypatch.setattr(cli, "run_contender", fake_run)
    monkeypatch.setattr(cli, "write_plots", lambda rows, out: [])
    cfg = cli.DemoConfig(**{**cli.QUICK, "out": str(tmp_path)})
    monkeypatch.setattr(cli, "anyinit_available", lambda: False)
    cli.run_demo(cfg)
    assert cli.ANYINIT.name not in seen and "AnyInit (a peer) is not installed" in capsys.readouterr().out
    seen.clear()
    monkeypatch.setattr(cli, "anyinit_available", lambda: True)
    cli.run_demo(cfg)
    assert seen[-1] == cli.ANYINIT.name


def test_quick_keeps_explicit_options(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "run_demo", lambda cfg: seen.setdefault("cfg", cfg))
    cli.main(["demo", "--quick", "--depth", "3", "--seed", "7", "--out", str(tmp_path)])
    cfg = seen["cfg"]
    assert (cfg.depth, cfg.seed, cfg.width, cfg.epochs) == (3, 7, cli.QUICK["width"], cli.QUICK["epochs"])


def test_defaults_are_the_main_job(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "run_demo", lambda cfg: seen.setdefault("cfg", cfg))
    cli.main(["demo"])
    assert seen["cfg"] == cli.DemoConfig()
    assert (seen["cfg"].depth, seen["cfg"].width, seen["cfg"].wn) == (20, 128, False)
    assert (seen["cfg"].metainit_steps, seen["cfg"].gradinit_steps) == (200, 100)


def test_wn_option_adds_the_weight_norm_rows(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "run_demo", lambda cfg: seen.setdefault("cfg", cfg))
    cli.main(["demo", "--quick", "--wn"])
    assert seen["cfg"].wn is True


@pytest.mark.parametrize("argv", [
    ["demo", "--depth", "0"], ["demo", "--width", "x"], ["nope"],
    ["init", "m.keras", "-o", "o.keras"],  # --method is required
    ["init", "m.keras", "--method", "bogus", "-o", "o.keras"],
    ["diagnose", "m.keras", "--data", "cifar"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 1
    assert "usage: keras-metainit" in capsys.readouterr().err


def _console_script():
    """The installed ``keras-metainit`` script of the running interpreter's environment."""
    beside = os.path.join(os.path.dirname(sys.executable), "keras-metainit")
    return beside if os.path.exists(beside) else shutil.which("keras-metainit")


def test_console_script_help():
    script = _console_script()
    assert script, "the keras-metainit console script is not installed (pip install -e .)"
    proc = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout


# ------------------------------------------------------------------ diagnose and init


def _save_mlp(path, scale=1.0, depth=6):
    """A ``depth``-layer He-normal ReLU MLP on 784 inputs, kernels times ``scale``, saved."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(64, "relu", kernel_initializer="he_normal") for _ in range(depth)]
        + [keras.layers.Dense(10, kernel_initializer="he_normal")]
    )
    for layer in model.layers:
        layer.kernel.assign(layer.kernel * scale)
    model.save(path)
    return model


def test_diagnose_healthy_model_exits_0(tmp_path, capsys):
    path = tmp_path / "he.keras"
    _save_mlp(path)
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy"]) == 0
    printed = capsys.readouterr().out
    assert "gradient quotient" in printed and "grad cosine" in printed
    assert printed.count("dense") >= 7  # a signal line per layer
    assert "healthy" in printed and "UNHEALTHY" not in printed


def test_diagnose_blown_up_model_fails_only_when_asked(tmp_path, capsys):
    path = tmp_path / "x3.keras"
    _save_mlp(path, scale=3.0)
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy"]) == 1
    assert "UNHEALTHY" in capsys.readouterr().out
    assert cli.main(["diagnose", str(path), "--data", "random", "--batch", "64"]) == 0
    # looser limits accept it
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy", "--max-gq", "1e30",
                     "--max-signal", "1e30"]) == 0


def test_diagnose_vanishing_signal_is_unhealthy(tmp_path, capsys):
    path = tmp_path / "x01.keras"
    _save_mlp(path, scale=0.1)  # GQ is near 1 here: only the signal ratio catches it
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy"]) == 1
    assert "RMS ratio" in capsys.readouterr().out


def test_diagnose_result_flags_non_finite_values():
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    model.layers[0].kernel.assign(np.full((784, 10), np.nan, "float32"))
    x = np.ones((16, 784), "float32")
    result = cli.diagnose(model, (x, np.zeros(16, "int64")))
    assert not result["healthy"] and any("not finite" in p for p in result["problems"])


def test_init_writes_a_loadable_reinitialized_model(tmp_path, capsys):
    import keras
    import numpy as np

    src, dst = tmp_path / "in.keras", tmp_path / "out.keras"
    _save_mlp(src, scale=0.1, depth=4)
    assert cli.main(["init", str(src), "--method", "metainit", "--data", "random",
                     "--steps", "10", "-o", str(dst)]) == 0
    printed = capsys.readouterr().out
    assert "keras-metainit report: metainit" in printed and "saved" in printed
    before = keras.models.load_model(src)
    after = keras.models.load_model(dst)
    changed = [not np.allclose(a.kernel.numpy(), b.kernel.numpy())
               for a, b in zip(before.layers, after.layers)]
    assert any(changed), changed
    assert all(np.isfinite(l.kernel.numpy()).all() for l in after.layers)


def test_init_layerwise_on_bundled_data(tmp_path, capsys):
    import keras
    import numpy as np

    src, dst = tmp_path / "in.keras", tmp_path / "out.keras"
    _save_mlp(src, scale=0.1, depth=3)
    assert cli.main(["init", str(src), "--method", "lsuv", "-o", str(dst)]) == 0
    printed = capsys.readouterr().out
    assert "skipped" not in printed, printed  # a loaded Sequential's layers are not "shared"
    before, after = keras.models.load_model(src), keras.models.load_model(dst)
    assert not np.allclose(before.layers[0].kernel.numpy(), after.layers[0].kernel.numpy())
