"""The layering contracts of pyproject's [tool.importlinter] hold, and they do fail on a planted violation.

A broken import must fail CI: the contracts run here (and as `lint-imports` in `make test`), and the same
contracts run against a copy of the tree with one forbidden import planted in it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    assert LINT is not None, "lint-imports not found: install the dev extras (pip install -e '.[dev]')"
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(pythonpath), "HOME": str(cwd)}
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _tree_copy(tmp_path: Path) -> Path:
    """The project's packages laid out as `segbalance/<folder>` (what the wheel installs), plus pyproject."""
    src = tmp_path / "src"
    for folder in ("core", "db", "desktop_app", "resources"):
        shutil.copytree(ROOT / folder, src / "segbalance" / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return src


def test_the_project_keeps_its_layering_contracts(tmp_path):
    res = _lint(tmp_path, _tree_copy(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/planted.py", "import PySide6.QtCore\n", "core and db import neither Qt"),
    ("core/planted.py", "import pyqtgraph\n", "core and db import neither Qt"),
    ("db/planted.py", "from segbalance.core.datasets import labels\n", "db does not import core"),
    ("desktop_app/planted.py", "from sqlalchemy import select\n", "desktop_app imports neither sqlalchemy"),
    ("desktop_app/planted.py", "from segbalance.db import models\n", "desktop_app imports neither sqlalchemy"),
])
def test_a_planted_violation_breaks_the_build(tmp_path, module, line, contract):
    src = _tree_copy(tmp_path)
    (src / "segbalance" / module).write_text(textwrap.dedent(f'"""planted by the test."""\n{line}'))
    res = _lint(tmp_path, src)
    assert res.returncode != 0
    assert "1 broken" in res.stdout and contract in res.stdout.replace("\n", " ")


@pytest.mark.parametrize(("module", "line"), [
    ("core/io.py", "from segbalance.core.runs import records\n"),  # the io <-> runs/records cycle of issue #42
    ("core/parallel.py", "from segbalance.core.runs.records import STATUSES\n"),
    ("core/processes.py", "from segbalance.core import workspace\n"),
    ("core/ranks.py", "from segbalance.core.runs import runtime\n"),
    ("core/errors.py", "from segbalance.core import jobs\n"),  # io imports errors: io would reach up through it
])
def test_a_planted_import_above_the_ground_floor_breaks_the_build(tmp_path, module, line):
    src = _tree_copy(tmp_path)
    path = src / "segbalance" / module
    path.write_text(path.read_text() + line)
    res = _lint(tmp_path, src)
    assert res.returncode != 0
    assert "1 broken" in res.stdout and "the ground floor" in res.stdout.replace("\n", " ")
