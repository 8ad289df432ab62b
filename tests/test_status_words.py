"""Each rule and name once (issue #42): the status words, strategies and backbones that views and commands use
come from core's one definition; none of them spells a status word itself or declares its own copy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VIEWS_AND_COMMANDS = sorted([*(ROOT / "desktop_app").rglob("*.py"), *(ROOT / "core" / "commands").glob("*.py")])
# the worker adapter's Qt signals are named started/returned/errored/cancelled/finished: event names, not statuses
SIGNAL_NAMES = {ROOT / "desktop_app" / "workers.py"}
# names that core defines once and views and commands import
CORE_NAMES = {"QUEUED", "RUNNING", "DONE", "CANCELLED", "FAILED", "INTERRUPTED", "PENDING", "ACCEPTED", "REJECTED",
              "STATUSES", "RUN_STATUSES", "PAIR_STATUSES", "REVIEW_STATUSES", "EXPORTABLE_STATUSES", "DEFAULT_EXPORT",
              "REVIEWED_EXPORT", "ACTIVE", "FINISHED", "BACKBONES", "STRATEGIES"}


def status_words() -> set[str]:
    from segbalance.core.jobs.pairs import PAIR_STATUSES
    from segbalance.core.runs.records import STATUSES

    return set(PAIR_STATUSES) | set(STATUSES)


def _field_names(tree: ast.AST) -> set[int]:
    """ids of the string constants that name a field or an attribute (row["done"], counts.get("done"),
    getattr(result, "failed")): they share a spelling with a status word without being one."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            out.add(id(node.slice))
        elif isinstance(node, ast.Call) and node.args:
            if isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                out.add(id(node.args[0]))
            elif isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr", "setattr") \
                    and len(node.args) > 1:
                out.add(id(node.args[1]))
    return out


def spelled_status_words(source: str, words: set[str]) -> list[str]:
    """'line: word' for each status word a module's source spells as a value of its own."""
    tree = ast.parse(source)
    fields = _field_names(tree)
    return [f"{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words
            and id(node) not in fields]


def own_copies(source: str) -> list[str]:
    """'line: NAME' for each module-level (re)definition of a name core defines once."""
    out = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        out += [f"{node.lineno}: {n.id}" for t in targets for n in ast.walk(t)
                if isinstance(n, ast.Name) and n.id in CORE_NAMES]
    return out


def test_views_and_commands_spell_no_status_word() -> None:
    words = status_words()
    found = [f"{p.relative_to(ROOT)}:{hit}" for p in VIEWS_AND_COMMANDS if p not in SIGNAL_NAMES
             for hit in spelled_status_words(p.read_text(), words)]
    assert not found, "import the word from core.jobs.pairs or core.runs.records:\n" + "\n".join(found)


def test_views_and_commands_declare_no_copy_of_core_names() -> None:
    found = [f"{p.relative_to(ROOT)}:{hit}" for p in VIEWS_AND_COMMANDS for hit in own_copies(p.read_text())]
    assert not found, "import these from core instead:\n" + "\n".join(found)


def test_core_spells_each_status_word_once() -> None:
    from segbalance.core.jobs import pairs
    from segbalance.core.runs import records

    assert records.STATUSES == (records.QUEUED, records.RUNNING, records.DONE, records.CANCELLED, records.FAILED,
                                records.INTERRUPTED)
    assert set(records.ACTIVE) | set(records.FINISHED) == set(records.STATUSES)
    assert pairs.PAIR_STATUSES == (pairs.PENDING, pairs.ACCEPTED, pairs.REJECTED, pairs.FAILED)
    assert set(pairs.REVIEW_STATUSES) | set(pairs.EXPORTABLE_STATUSES) <= set(pairs.PAIR_STATUSES)


@pytest.mark.parametrize(("source", "caught"), [
    ('if job["status"] == "running":\n    pass\n', True),
    ('STATUS_COLORS = {"done": "#2ca02c"}\n', True),
    ('button.clicked.connect(lambda: decide("accepted"))\n', True),
    ('print(row["done"], counts.get("done"), getattr(result, "failed", None))\n', False),
    ('label.setText("finished")\n', False),
])
def test_the_check_catches_a_spelled_word(source: str, caught: bool) -> None:
    assert bool(spelled_status_words(source, status_words())) is caught


@pytest.mark.parametrize(("source", "caught"), [
    ('BACKBONES = ("resnet18", "resnet50")\n', True),
    ("STATUSES = PAIR_STATUSES\n", True),
    ('STRATEGIES: tuple = ("single", "multi", "recon")\n', True),
    ("from segbalance.core.seg import BACKBONES\n", False),
])
def test_the_copy_check_catches_a_redeclared_name(source: str, caught: bool) -> None:
    assert bool(own_copies(source)) is caught
