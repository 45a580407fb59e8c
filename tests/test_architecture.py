"""The architecture as the code's imports draw it (docs/ARCHITECTURE.md): layers pointing one way,
no private names crossing modules, re-exports only in a package's ``__init__``, a thin command line,
and an install that claims no generic top-level names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGES = ("core", "spaces", "search", "reports")
MODULES = [p for p in ROOT.glob("*.py")] + [p for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py")]


def test_the_import_contracts_hold():
    """Layers (benchmark > options > pipeline > use > search | reports > spaces > core) and the
    forbidden imports (core: no Optuna/MLflow; spaces: no torch; reports: no training)."""
    # importlinter's entry point run by this interpreter (a copied venv's lint-imports script may
    # point at another one)
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    out = subprocess.run(
        [sys.executable, "-c", command, str(ROOT / "pyproject.toml")],
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textbench"):
            yield node


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{p.relative_to(ROOT)}: from {n.module} import {a.name}"
        for p in MODULES
        for n in _imports(p)
        for a in n.names
        if a.name.startswith("_")
    ]
    assert private == []


def test_only_a_package_init_re_exports():
    """Outside ``__init__`` every imported name is used where it is imported (ruff's F401 without
    the ``noqa`` that would mark a re-export)."""
    marked = [
        str(p.relative_to(ROOT))
        for p in MODULES
        if p.name != "__init__.py" and "F401 - re-export" in p.read_text(encoding="utf-8")
    ]
    assert marked == []


def test_the_command_line_is_thin():
    lines = (ROOT / "benchmark.py").read_text().splitlines()
    assert len(lines) <= 250
    assert not any(line.startswith(("def run", "def print_")) for line in lines)


@pytest.mark.slow
def test_the_wheel_installs_only_the_textbench_package(tmp_path):
    """``pip install .`` puts ``textbench/`` (and its dist-info) in site-packages, nothing called
    core, search, reports, spaces or benchmark."""
    built_before = (ROOT / "build").exists()
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
    ]
    subprocess.run([*command, str(ROOT)], check=True, timeout=600)
    if not built_before:  # setuptools' scratch folder, not part of the checkout
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheel = next(tmp_path.glob("textbench-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"textbench"}
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "textbench/benchmark.py",
        "textbench/core/models.py",
        "textbench/spaces/cnn.py",
        "textbench/search/objective.py",
        "textbench/reports/html.py",
        "textbench/reports/templates/report.html",
        "textbench/core/metrics/accuracy/accuracy.py",
    ):
        assert needed in names, needed
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "textbench = textbench.benchmark:main" in entry


def test_generic_names_are_not_importable_outside_the_checkout(tmp_path):
    """From another folder, the installed textbench answers and ``core`` (etc.) does not exist."""
    code = (
        "import importlib.util, textbench.core.data, textbench.search.objective; "
        "print([m for m in ('core', 'search', 'reports', 'spaces', 'benchmark') "
        "if importlib.util.find_spec(m) is not None])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
