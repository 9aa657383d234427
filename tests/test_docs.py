"""The README's promises: its two fresh-machine commands are what CI runs, its example runs."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()

MAIN_JOB = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[tensorflow]" && keras-metainit demo'
TESTS = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test,docs]" && pytest -q -n 2 --dist loadfile'


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
    assert {"keras_metainit.demo", "keras_metainit.cli", "keras_metainit.diagnostics"} <= documented
    for module in documented:  # every documented module exists (a file or a package)
        path = ROOT / module.replace(".", "/")
        assert path.with_suffix(".py").exists() or (path / "__init__.py").exists(), module


def _readme_methods_table():
    section = README.split("\n## Methods\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_every_registered_method_is_in_the_readme_table_and_the_docs():
    """A new method class must appear in README's Methods table (its class and its name) and
    on a method page of the documentation that the site's navigation lists."""
    from keras_metainit import methods

    rows = _readme_methods_table()
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p: p.read_text() for p in (ROOT / "docs" / "methods").glob("*.md")
             if f"methods/{p.name}" in nav}
    classes = dict.fromkeys(methods._REGISTRY.values())
    assert len(classes) == len(methods.available()) >= 5
    for cls in classes:
        needle = f"methods.{cls.__name__}`"
        row = [r for r in rows if needle in r]
        assert len(row) == 1, f"{cls.__name__} has no row in README's Methods table"
        assert f'"{cls.aliases[0]}"' in row[0], (cls.aliases[0], row[0])
        assert any(needle in text for text in pages.values()), (
            f"no page under docs/methods/ names {needle}")


@pytest.mark.slow
def test_readme_usage_example_runs():
    """The first Python block of the README (build, compile, one epoch) runs as written."""
    example = _code_blocks(README, "python")[0]
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert len(model.layers) == 51
    assert model.optimizer.iterations.numpy() == 188  # one epoch of 6,000 images, batch 32


def _fenced_docstring_examples():
    """Every ```python block in a docstring of the package (the `>>>` examples run as doctests,
    configured in pyproject.toml)."""
    import ast
    import textwrap

    found = []
    for path in sorted((ROOT / "keras_metainit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node, clean=True) or ""
                for i, block in enumerate(_code_blocks(doc, "python")):
                    name = f"{path.relative_to(ROOT)}:{getattr(node, 'name', 'module')}:{i}"
                    found.append(pytest.param(textwrap.dedent(block), id=name))
    return found


@pytest.mark.parametrize("example", _fenced_docstring_examples())
def test_every_fenced_docstring_example_runs(example):
    exec(compile(example, "<docstring example>", "exec"), {})


def test_docstring_examples_sit_in_an_examples_section():
    """griffe (the docs site's parser) reads only ``Examples:`` as code: under ``Example:`` the
    ``>>>`` lines render as quotes and an output such as ``[0.43, 0.37]`` as a broken link, which
    fails the strict build."""
    singular = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "keras_metainit").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip() == "Example:"
    ]
    assert not singular, singular


def test_the_docs_site_builds_with_strict(tmp_path):
    """``mkdocs build --strict`` (CI's docs step) inside the test run, so that a docstring the
    site cannot render (an ``Args`` entry naming several parameters, an ``Example:`` section)
    fails the README's test command itself."""
    import os
    import shutil
    import subprocess
    import sys

    pytest.importorskip("mkdocs")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("the mkdocs command is not installed")
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
