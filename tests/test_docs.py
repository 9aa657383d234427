"""The README's promises: its two fresh-machine commands are what CI runs, its example runs."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()

MAIN_JOB = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && keras-metainit demo"
TESTS = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test,docs]" && pytest -q'


def _code_blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_opens_with_the_two_fresh_machine_commands():
    bash = [block.strip() for block in _code_blocks(README, "bash")]
    assert bash[:2] == [MAIN_JOB, TESTS]


def test_ci_runs_the_readme_test_command_word_for_word():
    # the command alone on its line (a trailing `\` continues it with `|| fail ...`)
    lines = [line.strip().rstrip("\\").strip() for line in CI_RUN.splitlines()]
    assert TESTS in lines, CI_RUN
    assert "mkdocs build --strict" in CI_RUN
    assert CI_RUN.splitlines()[0].startswith("#!") and "set -euo pipefail" in CI_RUN


def test_readme_names_every_method_and_its_paper():
    for needle in (
        "Dauphin & Schoenholz", "Zhu et al.", "Yang et al.", "Arpit, Campos & Bengio",
        "Zhang, Dauphin & Ma", "Das, Bhalgat & Porikli", "Mishkin & Matas",
    ):
        assert needle in README, needle


def test_api_page_documents_the_public_modules():
    api = (ROOT / "docs" / "api.md").read_text().split("<!--")[0]  # enabled blocks only
    documented = set(re.findall(r"^::: (keras_metainit\.\w+)", api, flags=re.M))
    assert {
        "keras_metainit.initializers", "keras_metainit.layers",
        "keras_metainit.schedules", "keras_metainit.datasets",
    } <= documented
    for module in documented:  # every documented module exists
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module


@pytest.mark.slow
def test_readme_usage_example_runs():
    """The first Python block of the README (build, compile, one epoch) runs as written."""
    example = _code_blocks(README, "python")[0]
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert len(model.layers) == 51
    assert model.optimizer.iterations.numpy() == 188  # one epoch of 6,000 images, batch 32
