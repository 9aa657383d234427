"""report.py: InitReport printed, as a dict, plotted to a file (matplotlib's Agg backend)."""
import json

import pytest

from keras_metainit.report import InitReport, resolve_verbose


def _learned():
    return InitReport(
        method="metainit", config={"steps": 3, "lr": 0.1}, loss="sparse CE (inferred)",
        data="random Gaussian", history={"gq": [5.0, 2.5, 1.25], "loss": [2.3, 2.2, 2.1]},
        before={"gq": 5.0, "loss": 2.3}, after={"gq": 1.25, "loss": 2.1},
        tensors=[{"name": "dense/kernel", "shape": (4, 3), "norm_before": 2.0,
                  "norm_after": 1.0, "scale": 0.5, "tuned": True},
                 {"name": "dense/bias", "shape": (3,), "norm_before": 0.0, "norm_after": 0.0,
                  "scale": 1.0, "tuned": False}],
        end_to_end_gain={"before": 0.8, "after": 0.4}, steps_run=3, constraint_steps=1,
        wall_time=1.5, step_time=0.0125, traces=1, notes=["a note"])


@pytest.mark.backend_neutral
def test_print_shows_the_headline_changes_and_tuned_tensors(capsys):
    _learned().print()
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "keras-metainit report: metainit"
    assert "  gq: 5 -> 1.25" in lines and "  loss: 2.3 -> 2.1" in lines
    assert "  steps: 3" in lines and "  constraint steps: 1" in lines
    assert "  time: 1.50 s (12.5 ms/step)" in lines
    assert "  end-to-end gain vs He: 0.8 -> 0.4" in lines
    assert "dense/kernel" in text and "dense/bias" not in text  # untuned tensors are counted
    assert "(1 tensors not tuned, unchanged: see report.tensors)" in text
    assert lines[-1] == "  note: a note"
    assert str(_learned()) == text.rstrip("\n")


@pytest.mark.backend_neutral
def test_to_dict_is_plain_and_complete():
    report = _learned()
    d = report.to_dict()
    assert json.loads(json.dumps(d))["history"]["gq"] == [5.0, 2.5, 1.25]
    assert d["after"] == {"gq": 1.25, "loss": 2.1} and d["steps_run"] == 3
    assert report.scales == {"dense/kernel": 0.5}


@pytest.mark.backend_neutral
def test_plot_writes_a_file_with_the_agg_backend(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path / "report.png"
    fig = _learned().plot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines()] == ["gq", "loss"]
    assert left.get_yscale() == "log"
    assert [p.get_height() for p in right.patches] == [0.5]  # one bar per tuned tensor
    plt.close(fig)
    layerwise = InitReport(method="lsuv", config={}, layers=[
        {"name": "dense", "var_before": 0.01, "var_after": 1.0},
        {"name": "skipped", "status": "skipped"}])
    fig = layerwise.plot()  # no path: nothing written, the figure returned
    assert [p.get_height() for p in fig.axes[1].patches] == [1.0]
    assert fig.axes[1].get_title() == "output variance per layer"
    plt.close(fig)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("verbose,want", [("auto", 1), (0, 0), (1, 1), (2, 2)])
def test_resolve_verbose(verbose, want):
    assert resolve_verbose(verbose) == want


@pytest.mark.backend_neutral
def test_resolve_verbose_names_the_argument():
    with pytest.raises(ValueError, match="Argument `verbose`.*Received: verbose=3"):
        resolve_verbose(3)
