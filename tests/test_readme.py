"""The README stays a five-minute user guide: short, its commands real, its links alive (issue #42)."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 260

# `| \`segbalance stats\` | what it does |`: the first cell of a row of the command table
COMMAND_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def command_table(text: str) -> list[list[str]]:
    """The command lines (split into words) of the README's table under "## Commands"."""
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [COMMAND_ROW.match(line) for line in section.splitlines()]
    return [m.group(1).split() for m in rows if m]


def entry_points() -> dict[str, str]:
    """Console and GUI script names -> "module:function", as pyproject installs them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {**project["scripts"], **project["gui-scripts"]}


def answers_help(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Exit code and stdout of the installed script `argv[0]` run with `argv[1:] + ['--help']`."""
    module, func = entry_points()[argv[0]].split(":")
    entry = getattr(importlib.import_module(module), func)
    monkeypatch.setattr(sys, "argv", [*argv, "--help"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        entry()
    return stop.value.code or 0, out.getvalue()


def test_readme_is_short() -> None:
    n = len(README.read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; keep it a guide (<= {MAX_LINES}) and move detail to docs/"


def test_every_command_in_the_table_answers_help(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = command_table(README.read_text())
    assert len(commands) >= 10, commands
    for argv in commands:
        assert argv[0] in entry_points(), f"{' '.join(argv)}: not a script pyproject installs"
        code, out = answers_help(argv, monkeypatch)
        assert code == 0 and "usage:" in out, f"{' '.join(argv)} --help exited {code}"


def test_the_table_lists_every_sub_command() -> None:
    from segbalance.core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    listed = {" ".join(argv[1:]) for argv in command_table(README.read_text()) if argv[0] == "segbalance"}
    assert set(sub.choices) <= listed, f"missing from README's command table: {sorted(set(sub.choices) - listed)}"


def _anchors(md: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    heads = re.findall(r"^#+\s+(.+)$", md.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_links_to_docs_exist() -> None:
    for target in LINK.findall(README.read_text()):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else README
        assert file.exists(), f"README links to {path}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"README links to {target}: no such heading in {path}"
