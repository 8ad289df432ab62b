"""What the app remembers inside a workspace: the dataset last open, its targets and locks, the last plan and
the chosen checkpoints. Kept in the workspace folder (gui_state.json, paths relative to the workspace where
they lie inside it), so it follows the workspace when it is moved or copied; written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from segbalance.core.io import atomic_write_json
from segbalance.core.workspace import Workspace

FILE = "gui_state.json"
CHECKPOINT_NAMES = ("latest_net_G.pth", "ckpt.pt")  # generator weights first, then a full training checkpoint


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def state_problem(data: object) -> str | None:
    """What makes a parsed gui_state.json unusable (a value of the wrong type), or None when it is fine."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if not isinstance(data.get("dataset", ""), str):
        return "'dataset' is not a path"
    datasets = data.get("datasets", {})
    if not isinstance(datasets, dict):
        return "'datasets' is not an object"
    for key, d in datasets.items():
        if not isinstance(d, dict):
            return f"datasets[{key!r}] is not an object"
        targets = d.get("targets") or {}
        if not isinstance(targets, dict) or not all(_is_number(v) for v in targets.values()):
            return f"datasets[{key!r}].targets is not an object of numbers"
        locks = d.get("locks") or []
        if not isinstance(locks, list) or not all(isinstance(x, str) for x in locks):
            return f"datasets[{key!r}].locks is not a list of class names"
        if not isinstance(d.get("plan") or "", str):
            return f"datasets[{key!r}].plan is not a path"
    cks = data.get("checkpoints", {})
    if not isinstance(cks, dict) or not all(v is None or isinstance(v, str) for v in cks.values()):
        return "'checkpoints' is not an object of paths"
    return None


class WorkspaceMemory:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.path = ws.path / FILE
        self.warning: str | None = None  # why an existing file was ignored, for the app's Log
        data: object = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass  # none yet
        except (OSError, ValueError, RecursionError) as exc:  # the file is only a convenience: start afresh
            self.warning = f"{self.path}: ignored, cannot be read ({type(exc).__name__}); starting afresh"
            data = {}
        problem = state_problem(data)
        if problem is not None:
            self.warning = f"{self.path}: ignored, {problem}; starting afresh"
            data = {}
        self.data: dict[str, Any] = data  # type: ignore[assignment]

    def _save(self) -> None:
        try:
            atomic_write_json(self.path, self.data)
        except OSError:
            pass  # a read-only workspace just forgets; nothing else depends on this file

    # -- paths: relative inside the workspace --------------------------------------------------
    def _store(self, p: str | Path) -> str:
        return self.ws.stored_path(p)

    def _path(self, stored: str | None) -> Path | None:
        return self.ws.resolve_stored(stored) if stored else None

    # -- values ------------------------------------------------------------------------------------
    def dataset(self) -> Path | None:
        return self._path(self.data.get("dataset"))

    def set_dataset(self, root: str | Path) -> None:
        self.data["dataset"] = self._store(root)
        self._save()

    def _ds(self, root: str | Path) -> dict:
        return self.data.setdefault("datasets", {}).setdefault(self._store(root), {})

    def targets(self, root: str | Path) -> tuple[dict[str, float], set[str]]:
        d = self.data.get("datasets", {}).get(self._store(root), {})
        return {str(k): float(v) for k, v in (d.get("targets") or {}).items()}, set(d.get("locks") or [])

    def set_targets(self, root: str | Path, targets: dict[str, float], locks: set[str]) -> None:
        d = self._ds(root)
        if d.get("targets") == targets and set(d.get("locks") or []) == locks:
            return
        d["targets"], d["locks"] = dict(targets), sorted(locks)
        self._save()

    def plan(self, root: str | Path) -> Path | None:
        return self._path(self.data.get("datasets", {}).get(self._store(root), {}).get("plan"))

    def set_plan(self, root: str | Path, plan_path: str | Path) -> None:
        self._ds(root)["plan"] = self._store(plan_path)
        self._save()

    def checkpoint(self, kind: str) -> Path | None:
        return self._path(self.data.get("checkpoints", {}).get(kind))

    def set_checkpoint(self, kind: str, path: str | Path | None) -> None:
        cks = self.data.setdefault("checkpoints", {})
        value = self._store(path) if path else None
        if cks.get(kind) == value:
            return
        cks[kind] = value
        self._save()


    def training_form(self) -> dict:
        """The training tab's New-run form as last used in this workspace (empty when never)."""
        form = dict(self.data.get("training_form") or {})
        if form.get("dataset"):
            form["dataset"] = str(self._path(form["dataset"]))
        return form

    def set_training_form(self, form: dict) -> None:
        form = dict(form)
        if form.get("dataset"):
            form["dataset"] = self._store(form["dataset"])
        if self.data.get("training_form") != form:
            self.data["training_form"] = form
            self._save()


def workspace_checkpoints(ws: Workspace) -> list[Path]:
    """Generator checkpoints the workspace's own GAN runs left (runs/*/), newest first."""
    runs = ws.path / "runs"
    found = [p for name in CHECKPOINT_NAMES for p in runs.glob(f"*/{name}")] if runs.is_dir() else []
    # one per run folder: the generator weights when both are there
    best: dict[Path, Path] = {}
    for p in found:
        best.setdefault(p.parent, p)
    return sorted(best.values(), key=lambda p: p.stat().st_mtime, reverse=True)
