"""No stale figure: the tables of README.md and docs/ are their results files' renders.

``benchmarks/render.py --check`` compares every ``<!-- render: ... -->`` region with the render of
its results file; these tests run it on the repository and show that a changed, added or removed
result makes it fail. Standard library only: no TensorFlow is imported.
"""
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "render.py"


def _load_render():
    spec = importlib.util.spec_from_file_location("_render_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclass looks its module up there)
    spec.loader.exec_module(module)
    return module


render = _load_render()
#: the committed results files: the benchmarks' and the demo's
RESULTS_FILES = sorted(str(p.relative_to(ROOT))
                       for p in (ROOT / "benchmarks" / "results").glob("*.json")) + [render.DEMO]


def _check(root):
    out = io.StringIO()
    return render.run(root, check=True, out=out), out.getvalue()


def _regions():
    """(file, region) for every region of the repository's docs."""
    return [(path, region) for path in render.doc_files(ROOT)
            for region in render.find_regions(path.read_text(), str(path))]


@pytest.fixture
def tree(tmp_path):
    """A copy of the repository's docs and results files, to change without touching ours."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for source in RESULTS_FILES:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / source, tmp_path / source)
    return tmp_path


def test_committed_tables_are_their_render():
    code, report = _check(ROOT)
    assert code == 0, ("a table in README.md or docs/ differs from the render of its results "
                       "file; run `python benchmarks/render.py` and commit:\n" + report)


def test_every_results_file_is_rendered_somewhere():
    used = {region.source for _, region in _regions()}
    assert set(RESULTS_FILES) <= used, f"results files no table renders: {set(RESULTS_FILES) - used}"


def _moved(node):
    """Every measured number of a results file moved (``meta`` kept): a rerun's new figures."""
    if isinstance(node, bool):
        return node
    if isinstance(node, float):
        return node * 1.37 + 0.0123
    if isinstance(node, dict):
        return {k: v if k == "meta" else _moved(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_moved(v) for v in node]
    return node


def _docs_of(source):
    return sorted({str(path.relative_to(ROOT)) for path, region in _regions()
                   if region.source == source})


def test_a_changed_demo_figure_fails_the_check_until_rendered(tree):
    demo = tree / render.DEMO
    data = json.loads(demo.read_text())
    row = data["scenes"][0]["rows"][1]
    old = f"{row['mean']:.3f} ± {row['std']:.3f}"
    row["mean"] = round(row["mean"] + 0.0111, 6) % 1
    new = f"{row['mean']:.3f} ± {row['std']:.3f}"
    demo.write_text(json.dumps(data))

    code, report = _check(tree)
    assert code == 1
    assert "README.md (rendered)" in report
    assert any(line.startswith("+") and new in line for line in report.splitlines())
    assert any(line.startswith("-") and old in line for line in report.splitlines())

    assert render.run(tree, check=False, out=io.StringIO()) == 0  # rewrite the regions
    assert _check(tree)[0] == 0
    assert new in (tree / "README.md").read_text()


@pytest.mark.parametrize("source", RESULTS_FILES)
def test_every_results_file_is_checked(tree, source):
    (tree / source).write_text(json.dumps(_moved(json.loads((ROOT / source).read_text()))))
    code, report = _check(tree)
    assert code == 1
    for doc in _docs_of(source):
        assert f"{doc} (rendered)" in report


def test_a_hand_edited_table_fails_the_check(tree):
    text = (tree / "README.md").read_text()
    region = next(r for r in render.find_regions(text)
                  if (ROOT / r.source).exists() and any(c.isdigit() for c in text[r.start:r.end]))
    pos = next(i for i in range(region.start, region.end) if text[i].isdigit())
    (tree / "README.md").write_text(text[:pos] + str((int(text[pos]) + 1) % 10) + text[pos + 1:])
    code, report = _check(tree)
    assert code == 1 and "README.md (committed)" in report


def test_a_missing_results_file_renders_a_placeholder_naming_its_command(tree):
    (tree / render.DEMO).unlink()
    assert _check(tree)[0] == 1  # the committed tables no longer have their file
    render.run(tree, check=False, out=io.StringIO())
    text = (tree / "README.md").read_text()
    assert f"`{render.DEMO}` is not in the repository" in text
    assert "`keras-metainit demo --out docs/img/demo`" in text


def test_markers(tmp_path):
    text = ("a\n<!-- render: docs/x.json demo scene=bad -->\nold\n<!-- /render -->\n"
            "b\n<!--render:parity-->\n<!-- /render -->\n")
    first, second = render.find_regions(text)
    assert (first.source, first.table, first.options, first.line) == (
        "docs/x.json", "demo", {"scene": "bad"}, 2)
    assert (second.source, second.table) == ("benchmarks/results/parity.json", "parity")
    assert text[first.start:first.end] == "\nold\n"
    for broken in ("<!-- render: demo -->\n", "<!-- /render -->\n",
                   "<!-- render: a -->\n<!-- render: b -->\n<!-- /render -->\n"):
        with pytest.raises(render.RenderError):
            render.find_regions(broken)


def test_unknown_table_is_an_error_that_names_the_fix(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "x.json").write_text("{}")
    (tmp_path / "README.md").write_text("<!-- render: x nosuchtable -->\n<!-- /render -->\n")
    code, report = _check(tmp_path)
    assert code == 2 and "render_nosuchtable" in report and "README.md:1" in report


def test_a_missing_results_file_needs_a_known_command(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("<!-- render: nosuchbenchmark -->\n<!-- /render -->\n")
    code, report = _check(tmp_path)
    assert code == 2 and "no known command writes it" in report


def test_the_command_line_check_imports_no_tensorflow():
    code = ("import sys; sys.argv = ['render.py', '--check']; sys.path.insert(0, 'benchmarks'); "
            "import render; rc = render.main(['--check']); "
            "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; "
            "print(rc, heavy); sys.exit(rc or bool(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
