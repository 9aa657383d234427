"""The ``keras-metainit`` command line: the demo in quick mode, and ``--help``."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from keras_metainit import cli


def _table_rows(text):
    """{init name: row fields} for the lines of the printed table that start with a contender."""
    names = [c.name for c in cli.CONTENDERS]
    rows = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in names:
            rows[fields[0]] = fields
    return rows


def test_demo_quick_prints_a_row_per_contender(tmp_path, capsys):
    out = tmp_path / "out"  # does not exist yet: the demo creates it
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    rows = _table_rows(printed)
    assert set(rows) == {"WNInit", "glorot_uniform"}, printed
    for name, fields in rows.items():
        acc = float(fields[-1])  # last column: test accuracy
        assert 0.0 <= acc <= 1.0, (name, acc)
        assert all(float(f) >= 0.0 for f in fields[1:3]), fields  # init s, train s

    saved = json.loads((out / "demo.json").read_text())
    assert [r["init"] for r in saved["results"]] == ["WNInit", "glorot_uniform"]
    assert saved["config"]["depth"] == cli.QUICK["depth"]
    assert {r["init"]: round(r["test_acc"], 3) for r in saved["results"]} == {
        name: float(fields[-1]) for name, fields in rows.items()
    }


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
    assert (seen["cfg"].depth, seen["cfg"].width) == (50, 128)


@pytest.mark.parametrize("argv", [["demo", "--depth", "0"], ["demo", "--width", "x"], ["nope"]])
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
