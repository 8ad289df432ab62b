"""One import namespace: the card's folders install as `segbalance.*`, and nothing else lands in site-packages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"core": "segbalance.core", "db": "segbalance.db", "desktop_app": "segbalance.desktop_app",
           "resources": "segbalance.resources"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_under_segbalance():
    st = _pyproject()["tool"]["setuptools"]
    assert st["package-dir"] == {name: folder for folder, name in FOLDERS.items()}
    found = set()
    for folder, name in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]))
    assert set(st["packages"]) == found


def test_console_scripts_point_into_the_namespace():
    proj = _pyproject()["project"]
    assert proj["scripts"]["segbalance"].startswith("segbalance.core.")
    assert proj["gui-scripts"]["segbalance-gui"].startswith("segbalance.desktop_app.")


def test_no_code_finds_the_repository_from_a_module_file():
    # a wheel has no repository around it: paths must come from package data or the user's arguments
    bad = re.compile(r"(core|desktop_app|db)\.__file__|__file__\)\.resolve\(\)\.parents?\b.*parent")
    offenders = [str(p.relative_to(REPO)) for folder in FOLDERS for p in (REPO / folder).rglob("*.py")
                 if bad.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_cli_runs_as_a_module_from_any_directory(tmp_path):
    r = subprocess.run([sys.executable, "-m", "segbalance.core.cli", "--version"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "segbalance" in r.stdout + r.stderr


def test_resources_are_package_data():
    from segbalance.resources import read_text, resource_path

    assert resource_path("segbalance-256.png").is_file()
    assert "Q" in read_text("style.qss")  # a Qt stylesheet names Q* widgets


@pytest.mark.slow
def test_wheel_installs_only_segbalance(tmp_path):
    from importlib.metadata import version

    # the venv's own setuptools when it is new enough for pyproject's license field, else pip's isolated build
    new_enough = int(version("setuptools").split(".")[0]) >= 77
    isolation = ["--no-build-isolation"] if new_enough else []
    # build from a clean copy: setuptools builds in-tree, and a stale build/ folder would leak old modules
    src = tmp_path / "src"
    for name in (*FOLDERS, "pyproject.toml", "README.md"):
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(p, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                        "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("segbalance-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert z.read(top).decode().split() == ["segbalance"]
    roots = {n.split("/")[0] for n in names}
    assert {r for r in roots if not r.endswith(".dist-info")} == {"segbalance"}
    for must in ("segbalance/core/cli.py", "segbalance/db/models.py", "segbalance/desktop_app/main.py",
                 "segbalance/resources/style.qss", "segbalance/resources/segbalance-256.png"):
        assert must in names
