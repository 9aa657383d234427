"""Every script in examples/ runs, in its quick mode, and measures what it says it measures.

The examples are run in-process (``runpy.run_path``) with ``KERAS_METAINIT_EXAMPLES_QUICK=1``
(tiny depth, data and step counts); the checks below read the variables each script defines.
"""
import math
import runpy
from pathlib import Path

import keras
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _accuracy(value):
    assert math.isfinite(value) and 0.0 <= value <= 1.0, value
    return value


def check_wn_init(ns, out):
    np.testing.assert_allclose(ns["column_norms"], ns["expected"], rtol=1e-4)
    assert ns["expected"] == pytest.approx(math.sqrt(2 * 784 / 128))
    assert set(ns["results"]) == {"WNInit", "glorot_uniform"}
    for acc in ns["results"].values():
        _accuracy(acc)


def check_wn_resnet(ns, out):
    wn, he = ns["results"]["WNResNetInit"], ns["results"]["he_normal"]
    assert len(wn["stream_rms"]) == 2 * ns["BLOCKS"]
    # the role gains keep the residual stream well below He's, which grows block by block
    assert all(math.isfinite(r) for r in wn["stream_rms"] + he["stream_rms"])
    assert wn["stream_rms"][-1] < he["stream_rms"][-1]
    _accuracy(wn["accuracy"]), _accuracy(he["accuracy"])


def check_fixup(ns, out):
    fixup, he = ns["results"]["Fixup"], ns["results"]["He, no Fixup"]
    assert fixup["logits_rms"] == 0.0  # zero classifier: Fixup's logits start at exactly 0
    assert he["logits_rms"] > 0.0
    _accuracy(fixup["accuracy"]), _accuracy(he["accuracy"])


def check_metainit(ns, out):
    report = ns["report"]
    assert report.method == "metainit" and report.steps_run == ns["STEPS"]
    assert report.stopped_early is None
    assert report.data.startswith("random")
    assert math.isfinite(ns["gq_before"]) and math.isfinite(ns["gq_after"])
    assert report.end_to_end_gain["after"] > report.end_to_end_gain["before"]  # x0.1 start: grows
    assert set(ns["accuracy"]) == {"MetaInit", "bad start, no fix", "He"}
    for acc in ns["accuracy"].values():
        _accuracy(acc)


def _check_learned(ns, method, metrics):
    report = ns["report"]
    assert report.method == method and report.steps_run == ns["STEPS"]
    assert report.stopped_early is None
    assert set(report.before) == set(report.after) == set(metrics)
    assert all(math.isfinite(v) for v in list(report.before.values()) + list(report.after.values()))
    assert len(report.scales) == ns["DEPTH"] + 1  # one scale per kernel (zero biases skipped)
    for acc in ns["accuracy"].values():
        _accuracy(acc)


def check_gradinit(ns, out):
    _check_learned(ns, "gradinit", {"lookahead", "loss", "gnorm"})


def check_gradcosine(ns, out):
    _check_learned(ns, "gradcosine", {"gc", "gn", "loss"})


def check_lsuv(ns, out):
    rows = ns["report"].layers
    assert len(rows) == ns["DEPTH"] + 1
    for row in rows:
        assert row["status"] == "set"
        assert abs(row["var_after"] - 1.0) < 0.1
    for acc in ns["accuracy"].values():
        _accuracy(acc)


def check_sylvester(ns, out):
    rows = ns["report"].layers
    assert [row["status"] for row in rows] == ["set"] * (ns["DEPTH"] + 1)
    assert all(row["residual"] < 1e-6 for row in rows)
    for acc in list(ns["deep"].values()) + list(ns["few_shot"].values()):
        _accuracy(acc)
    # the label code alone (no training) is far above chance on 10 classes
    assert ns["few_shot"]["Sylvester (labels), before fine-tuning"] > 0.3


def check_diagnostics(ns, out):
    results = ns["results"]
    assert results["He"]["healthy"]
    assert not results["x0.1 He (vanishing)"]["healthy"]
    assert not results["x3 He (exploding)"]["healthy"]
    # the standalone functions and diagnose agree
    assert ns["gq"] == pytest.approx(results["He"]["gq"], rel=1e-5)
    assert ns["gc"]["gc"] == pytest.approx(results["He"]["gc"], rel=1e-5, abs=1e-6)


def check_deepnorm(ns, out):
    n = ns["N"]
    assert (ns["ALPHA"], ns["BETA"]) == pytest.approx(((2 * n) ** 0.25, (8 * n) ** -0.25))
    rows = [r for r in ns["report"].layers if r["status"] == "set"]
    assert len(rows) == 6 * n  # 4 projections and 2 feed-forward kernels per block
    assert not any("needs alpha" in note for note in ns["report"].notes)
    assert all(math.isfinite(v) for v in ns["losses"]) and ns["losses"][-1] < ns["losses"][0]
    _accuracy(ns["accuracy"])


CHECKS = {
    "wn_init.py": check_wn_init,
    "wn_resnet.py": check_wn_resnet,
    "fixup.py": check_fixup,
    "metainit.py": check_metainit,
    "gradinit.py": check_gradinit,
    "gradcosine.py": check_gradcosine,
    "lsuv.py": check_lsuv,
    "sylvester.py": check_sylvester,
    "diagnostics.py": check_diagnostics,
    "deepnorm.py": check_deepnorm,
}


def test_every_example_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_in_quick_mode(name, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_METAINIT_EXAMPLES_QUICK", "1")
    keras.backend.clear_session()
    namespace = runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), f"{name} printed nothing"
    CHECKS[name](namespace, out)
    source = (EXAMPLES / name).read_text()
    assert source.startswith('"""') and f"python examples/{name}" in source  # docstring says how
