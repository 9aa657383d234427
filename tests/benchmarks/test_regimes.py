"""benchmarks/regimes.py: a --quick smoke of one regime end to end (JSON with the run's date,
commit and machine, rows over the seeds, verdicts, wall times), the merge of results files, and
every regime's tables building in quick mode."""
import json
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")


@pytest.fixture
def regimes_cli(monkeypatch):
    monkeypatch.syspath_prepend(os.path.abspath(BENCH))
    for name in [m for m in sys.modules if m == "regimes" or m.startswith("regimes.")]:
        monkeypatch.delitem(sys.modules, name)
    import importlib.util

    spec = importlib.util.spec_from_file_location("regimes_cli", os.path.join(BENCH, "regimes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_regime_builds_its_quick_tables(regimes_cli):
    seen = {}
    for key, module in regimes_cli.REGIMES.items():
        tables = module.tables(True)
        assert tables and all(t.contenders for t in tables), key
        assert all(t.claims for t in tables), key
        seen[module.NUMBER] = key
    assert sorted(seen) == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_quick_run_writes_its_results(regimes_cli, tmp_path, capsys):
    path = tmp_path / "r.json"
    regimes_cli.main(["--quick", "--regimes", "residual", "--json", str(path)])
    printed = capsys.readouterr().out
    results = json.loads(path.read_text())
    meta = results["meta"]  # benchmarks/record.py's: command, date, commit, machine, versions
    assert results["config"] == {"seeds": [0, 1], "quick": True}
    # the command is this process's (pytest's here; the script's when it is run)
    assert "CPUs" in meta["machine"] and meta["date"] and meta["command"].startswith("python ")
    (regime,) = results["regimes"]
    assert regime["number"] == 3 and regime["wall_s"] > 0
    table = regime["tables"][0]
    names = [r["name"] for r in table["rows"]]
    assert names == ["He", "Fixup", "GradInit (2 steps)"]
    for r in table["rows"]:
        assert r["n"] == 2 and 0 <= r["diverged"] <= 2
    assert len(table["verdicts"]) == 2
    # the claims are stored with the table, so a later merge judges them without the definitions
    assert [c["text"] for c in table["claims"]] == [
        "a suite method beats every analytic init", "a suite method beats Fixup"]
    assert table["claims"][0]["against"] == ["Keras default", "He", "AnyInit (empirical)"]
    assert {v["verdict"] for v in table["verdicts"]} <= {"holds", "does not hold"}
    assert table["run"]["command"] == meta["command"]
    assert "| regime | table | seeds | claim | verdict | winners |" in printed
    assert "Wall time per regime: 3. residual" in printed


def test_merge_adds_rows_to_a_table_and_judges_its_claims_again(regimes_cli):
    def row(name, values):
        return {"name": name, "values": values, "mean": sum(values) / len(values)}

    def res(tables):
        return {"config": {"seeds": [0, 1, 2], "quick": False},
                "regimes": [{"key": "transformer", "tables": tables, "wall_s": 0}]}

    key = "post_ln_adam_0.001"
    # the claim the new run stored with its table (the old run's is not read)
    claim = {"text": "T-Fixup beats the default", "candidates": ["T-Fixup"],
             "against": ["Keras default"], "references": []}
    old = res([{"key": key, "wall_s": 10, "rows": [row("Keras default", [0.19, 0.19, 0.18]),
                                                   row("T-Fixup", [0.2, 0.19, 0.18])],
                "claims": [dict(claim, candidates=["nobody"])], "verdicts": []},
               {"key": "other", "wall_s": 5, "rows": [], "verdicts": []}])
    new = res([{"key": key, "wall_s": 7, "rows": [row("T-Fixup", [1.0, 1.0, 0.99])],
                "claims": [claim], "verdicts": []},
               {"key": "new", "wall_s": 1, "rows": [], "verdicts": []}])
    merged = regimes_cli.merge(old, new)
    tables = {t["key"]: t for t in merged["regimes"][0]["tables"]}
    assert set(tables) == {key, "other", "new"}
    table = tables[key]
    assert [(r["name"], r["values"]) for r in table["rows"]] == [
        ("Keras default", [0.19, 0.19, 0.18]), ("T-Fixup", [1.0, 1.0, 0.99])]
    assert table["wall_s"] == 7 + 10 / 2  # the old run's share of the row it keeps
    assert table["verdicts"][0]["verdict"] == "holds"
    assert table["verdicts"][0]["winners"] == ["T-Fixup"]
    assert merged["regimes"][0]["wall_s"] == 18 and merged["wall_s"] == 18
    assert regimes_cli.merge({}, new)["regimes"][0]["tables"] == new["regimes"][0]["tables"]


def test_a_finished_table_is_saved_whole_before_the_next_starts(regimes_cli):
    """The results file is written after every row and after every table: a run stopped later
    keeps each table it finished without the "partial" mark of its rows so far."""
    saves = []
    regimes_cli.run(["residual"], 2, True, rows=["He"], log=lambda line: None,
                    save=lambda out: saves.append(json.loads(json.dumps(out))))
    last = saves[-1]["regimes"][0]["tables"]
    assert [t["key"] for t in last] == [t.key for t in regimes_cli.REGIMES["residual"].tables(True)]
    assert not any(t.get("partial") for t in last)
    assert any(t.get("partial") for s in saves for t in s["regimes"][0]["tables"])
