"""The benchmarks' results files, ``benchmarks/results/NAME.json``: written once, read by the docs.

Every benchmark whose figures appear in the README or the docs takes ``--json PATH`` (default
``benchmarks/results/<name>.json``) and writes its measurements there with :func:`write`, which
adds ``meta``: the command, the date, the commit, the machine, the library versions, the wall
time and the load average. ``benchmarks/render.py`` turns the file into the tables of the docs
(and the script prints the same table), so a figure is typed by no one.

A ``--quick`` smoke run writes no file unless ``--json`` is given: its figures mean nothing.

Standard library only: the renderer and its test import nothing heavy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Dict, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
_STARTED = time.time()  # the script imported this module at its start
_VERSIONS = ("tensorflow", "keras", "jax", "torch", "numpy", "anyinit")


def add_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """Add ``--json PATH`` to a benchmark's parser (default ``benchmarks/results/<name>.json``)."""
    parser.add_argument(
        "--json", metavar="PATH", default=None,
        help=f"results file, rendered into the docs by benchmarks/render.py (default "
             f"{default_path(name).relative_to(ROOT)})")


def default_path(name: str) -> Path:
    """``benchmarks/results/<name>.json``."""
    return RESULTS / f"{name}.json"


def path_for(args: argparse.Namespace, name: str, smoke: bool = False) -> Optional[Path]:
    """Where this run writes: ``--json``, else nothing for a smoke run, else the default."""
    if args.json:
        return Path(args.json)
    return None if smoke else default_path(name)


def _git(*cmd: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _cpu() -> str:
    """The CPU's model name and whether it has AVX-512 (which picks TensorFlow's kernel path)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return model + (", AVX-512" if "avx512f" in info else ", no AVX-512")


def metadata() -> Dict[str, Any]:
    """What a reader needs to judge a figure: command, date, commit, machine, versions, time."""
    versions = {}
    for package in _VERSIONS:
        try:
            versions[package] = _metadata.version(package)
        except _metadata.PackageNotFoundError:
            pass
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return {
        "command": " ".join(["python", str(script), *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "commit": _git("describe", "--always", "--dirty", "--abbrev=7"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({_cpu()})",
        "versions": versions,
        "wall_s": round(time.time() - _STARTED, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def write(path: Optional[Path], results: Dict[str, Any], quiet: bool = False) -> Dict[str, Any]:
    """Add ``meta`` to ``results``, write it to ``path`` (unless None) and return it, for the
    script to print its table from exactly what was written (``quiet``: without saying so, for
    a script that saves its results as they come)."""
    payload = {"meta": metadata(), **results}
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # default=float: NumPy scalars (anything else that is not JSON is an error)
        path.write_text(json.dumps(payload, indent=1, default=float) + "\n")
        if not quiet:
            print(f"results: {path}", flush=True)
    return payload

