"""GUI test fixtures: settings isolated per test, a tiny Cityscapes-layout dataset, the real main window."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from segbalance.core.io import write_png

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# label ids of Cityscapes: road 7, sidewalk 8, building 11, vegetation 21, sky 23, person 24, car 26
TINY_W, TINY_H = 64, 32
TINY_SPLITS = {"train": 6, "val": 2}


def _tiny_label(i: int) -> np.ndarray:
    lab = np.full((TINY_H, TINY_W), 7, np.uint8)  # road everywhere below
    lab[: TINY_H // 3] = 23  # sky on top
    lab[TINY_H // 3 : TINY_H // 2, :] = 11  # building band
    lab[TINY_H // 2 :, : TINY_W // 8] = 8  # sidewalk on the left
    if i % 2 == 0:
        lab[20:28, 10 + i : 30 + i] = 26  # a car in even samples only
    if i == 1:
        lab[18:30, 40:44] = 24  # one person in sample 1 only
    return lab


def make_tiny_cityscapes(root: Path, splits: dict[str, int] = TINY_SPLITS) -> dict[str, list[str]]:
    """Write a Cityscapes-layout dataset with known content; returns the sample ids per split."""
    ids: dict[str, list[str]] = {}
    k = 0
    for split, n in splits.items():
        ids[split] = []
        for _ in range(n):
            stem = f"tiny_{k:06d}_000019"
            lab = _tiny_label(k)
            rng = np.random.default_rng(k)
            img = (rng.integers(0, 60, (TINY_H, TINY_W, 3)) + lab[..., None] * 4).astype(np.uint8)
            write_png(root / "gtFine" / split / "tiny" / f"{stem}_gtFine_labelIds.png", lab)
            write_png(root / "leftImg8bit" / split / "tiny" / f"{stem}_leftImg8bit.png", img, rgb=True)
            ids[split].append(stem)
            k += 1
    return ids


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own settings file; the user's real preferences are never read or written."""
    path = tmp_path / "settings" / "gui.ini"
    monkeypatch.setenv("SEGBALANCE_GUI_SETTINGS", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny_cityscapes")
    make_tiny_cityscapes(root)
    return root


@pytest.fixture
def workspace_path(tmp_path: Path) -> Path:
    from segbalance.core.workspace import Workspace

    ws = Workspace(tmp_path / "ws", create=True)
    ws.close()
    return ws.path


@pytest.fixture
def make_window(qtbot, isolated_settings: Path):
    """Build the real main window through the entry point's factory; closed at teardown."""

    def make(workspace: Path | None = None):
        from segbalance.desktop_app.main import create_main_window

        w = create_main_window(settings_path=isolated_settings, workspace=workspace)
        # at teardown the test is the user saying "quit anyway": jobs still running are cancelled and waited
        # for (the window would otherwise ask, stay open, and be deleted under its running workers)
        qtbot.addWidget(w, before_close_func=lambda win: setattr(win, "_quit_confirmed", True))
        w.show()
        return w

    return make


@pytest.fixture
def window(make_window, workspace_path: Path):
    return make_window(workspace_path)


def wait_for_stats(qtbot, window, timeout: int = 20_000) -> None:
    qtbot.waitUntil(lambda: window.state.stats is not None and not window.state.running_jobs(), timeout=timeout)


@pytest.fixture
def loaded_window(qtbot, window, tiny_dataset: Path):
    """The main window with the tiny dataset added and measured."""
    window.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, window)
    return window
