"""The demo: the quick run end to end through the CLI (tables, verdicts, demo.json, figures), the
closing line from the verdicts, the AnyInit row only when installed, the figures, a quiet CLI."""
import json

import numpy as np
import pytest

from keras_metainit import demo


def _result(key, verdict, rows=None):
    rows = rows or [
        {"name": "Keras default", "kind": "analytic", "values": [0.1, 0.12], "mean": 0.11,
         "std": 0.014, "curve": [2.8, 2.7, None], "reports": [None, None]},
        {"name": "default call", "kind": "suite", "values": [0.9, 1.0], "mean": 0.95,
         "std": 0.07, "curve": [2.8, 0.5, 0.01],
         "reports": [{"method": "metainit", "before": {"gq": 300.0}, "after": {"gq": 1.0}},
                     None]}]
    return {"key": key, "metric": "test_acc", "seeds": [0, 1], "rows": rows,
            "budget": "Adam 0.003, batch 64, 200 steps",
            "verdicts": [{"claim": "c", "verdict": verdict, "winners": [], "text": ""}]}


@pytest.mark.slow
def test_demo_quick_prints_a_table_and_a_verdict_per_scene_and_writes_its_figures(tmp_path,
                                                                                    capsys):
    from keras_metainit import cli

    out = tmp_path / "out"  # does not exist yet: the demo creates it
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "demo.json").read_text())
    assert [s["key"] for s in saved["scenes"]] == ["transformer", "mlp"]
    # the rule's choice per scene, printed with its reason
    assert "default call: model.meta_initialize(data) runs t_fixup: 2 Post-LN attention block(s)" \
        in printed
    assert "default call: model.meta_initialize(data) runs lsuv: no attention layers" in printed
    assert [s["choice"]["method"] for s in saved["scenes"]] == ["t_fixup", "lsuv"]
    for scene in saved["scenes"]:
        names = [r["name"] for r in scene["rows"]]
        assert names[:2] == ["Keras default", "He"] and names[-1] == demo.DEFAULT_CALL
        for r in scene["rows"]:
            assert len(r["values"]) == 2 and all(0.0 <= v <= 1.0 for v in r["values"])
            assert r["mean"] == pytest.approx(np.mean(r["values"]))
            assert r["std"] == pytest.approx(np.std(r["values"], ddof=1))
            # the printed table shows the same figures
            assert f"| {r['name']} | {r['kind']} | {r['mean']:.3f} ± {r['std']:.3f} |" in printed
        verdict = scene["verdicts"][0]
        assert verdict["verdict"] in ("holds", "does not hold")
        assert f"**{verdict['verdict']}**" in printed
    chosen = next(r for r in saved["scenes"][0]["rows"] if r["name"] == demo.DEFAULT_CALL)
    assert [rep["method"] for rep in chosen["reports"]] == ["t_fixup", "t_fixup"]
    assert saved["closing"] in printed and "total time" in printed
    for name in ("demo_accuracy.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
        assert f"figure:  {out / name}" in printed
    assert not (out / "metainit_gq.png").exists()  # no row ran MetaInit


def test_closing_line_names_the_scenes_that_win_or_says_none_does():
    assert demo.closing_line([_result("transformer", "holds"), _result("mlp", "does not hold")]) \
        == ("The default call wins beyond the seed spread in: transformer; not in: mlp.")
    line = demo.closing_line([_result("transformer", "does not hold")])
    assert line.startswith("No scene shows a win")


def test_scenes_have_the_anyinit_row_only_when_installed(monkeypatch):
    from keras_metainit.experiments import contenders

    cfg = demo.DemoConfig(**{**demo.QUICK, "scenes": ("mlp",)})
    monkeypatch.setitem(contenders._ANYINIT, "module", None)
    names = [c.name for c in demo.build_scenes(cfg)[0].table.contenders]
    assert names == ["Keras default", "He", demo.DEFAULT_CALL]
    monkeypatch.setitem(contenders._ANYINIT, "module", object())
    names = [c.name for c in demo.build_scenes(cfg)[0].table.contenders]
    assert names == ["Keras default", "He", "AnyInit (empirical)", demo.DEFAULT_CALL]


def test_unknown_scene_and_one_seed_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scenes"):
        demo.build_scenes(demo.DemoConfig(scenes=("cifar",)))
    with pytest.raises(ValueError, match="seeds"):
        demo.run_demo(demo.DemoConfig(seeds=1, out=str(tmp_path)))


def test_demo_defaults_write_figures_to_a_folder_of_their_own():
    cfg = demo.DemoConfig()
    assert cfg.plots is True and cfg.out == "keras-metainit-demo"


def test_write_plots_writes_the_accuracy_the_curves_and_the_metainit_gq(tmp_path):
    paths = demo.write_plots([_result("transformer", "holds")], str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        "demo_accuracy.png", "training_curves.png", "metainit_gq.png"]
    for path in paths:
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # no MetaInit report, no GQ figure
    plain = _result("mlp", "does not hold")
    for r in plain["rows"]:
        r["reports"] = [None, None]
    assert [p.rsplit("/", 1)[-1] for p in demo.write_plots([plain], str(tmp_path))] == [
        "demo_accuracy.png", "training_curves.png"]


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
