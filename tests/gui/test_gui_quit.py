"""Quitting during each kind of job (issue 41, item 3): the dialog says exactly what each job keeps, the app
waits for every subprocess to stop cleanly, and each run's final word is "cancelled" (never "interrupted")."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox
from sqlalchemy import func, select

from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from segbalance.desktop_app import core_calls
from tests.gui.conftest import wait_for_stats
from tests.gui.test_gui_generation import fake_generation, fake_train_gan


def _quit(qtbot, w) -> str:
    """Close the window, read the quit dialog, answer "Cancel jobs and quit"; returns the dialog's text."""
    w.close()
    box = w.quit_box
    assert box.isVisible() and w.isVisible()  # nothing stopped before the answer
    text = box.text()
    button = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole)
    button.click()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=60_000)
    return text


def _runs(ws_path: Path) -> list[tuple[str, str, int | None]]:
    with Workspace(ws_path, create=False) as ws, ws.session() as s:
        return [(r.kind, r.status, r.pid) for r in s.scalars(select(m.TrainingRun))]


def _dead(pid: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_quit_during_gan_training_keeps_its_checkpoint_and_the_run_ends_cancelled(
        qtbot, make_window, workspace_path, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_GAN_STEP_S", "0.1")
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    g = fake_train_gan(w, tmp_path)
    assert g.start_gan_training(100_000)
    qtbot.waitUntil(lambda: w.state.entries and w.state.entries[0].done >= 2, timeout=20_000)
    pid = g.train_process.pid()
    text = _quit(qtbot, w)
    assert "Train GAN (tiny): at iteration" in text and "of 100000" in text
    assert "saves again as it stops" in text and 'ends "cancelled"' in text and "Resume" in text
    out = workspace_path / "runs" / "gan-tiny"
    assert (out / "ckpt.pt").is_file()  # the work is kept
    assert [(k, st) for k, st, _ in _runs(workspace_path)] == [("gan", "cancelled")]
    assert _dead(pid)


def test_quit_during_segmentation_training_waits_and_the_run_ends_cancelled_not_interrupted(
        qtbot, make_window, workspace_path, tmp_path):
    from tests.test_training_panel import FAKE_TRAIN

    w = make_window(workspace_path)
    i = w._tab_with("start_run")
    panel = w.tabs.widget(i).inner
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    req = panel.request()
    panel.command_override = (sys.executable, [str(script), req.workspace, req.out_dir, "ds", "100000", "0.05",
                                               "ok"])
    assert panel.start_run()
    qtbot.waitUntil(lambda: panel.current_run is not None, timeout=20_000)
    pid = panel.process.pid()
    text = _quit(qtbot, w)
    assert "Train segmentation: " in text and "checkpoint" in text and "Resume" in text
    assert (Path(req.out_dir) / "checkpoint.pt").is_file()
    assert [(k, st) for k, st, _ in _runs(workspace_path)] == [("seg", "cancelled")]
    assert _dead(pid)


def test_quit_during_generation_keeps_the_pairs_written(qtbot, make_window, workspace_path, tiny_dataset,
                                                        tmp_path, monkeypatch):
    monkeypatch.setattr(core_calls, "run_generation", fake_generation(100_000, delay=0.01))
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    w.state.plan_path = plan
    w.generation._update_plan_label()
    w.generation.start()
    qtbot.waitUntil(lambda: w.generation.progress.value() >= 3, timeout=20_000)
    text = _quit(qtbot, w)
    assert "Generate (copypaste): the" in text and "pairs written so far" in text and "resumes" in text
    with Workspace(workspace_path, create=False) as ws, ws.session() as s:
        assert s.scalar(select(func.count()).select_from(m.GeneratedPair)) >= 3


@pytest.mark.parametrize("kind", ["gan", "seg"])
def test_resume_offered_for_a_cancelled_run(qtbot, make_window, workspace_path, tiny_dataset, kind):
    out = workspace_path / "runs" / kind / "r1"
    out.mkdir(parents=True)
    (out / ("ckpt.pt" if kind == "gan" else "checkpoint.pt")).write_bytes(b"x")
    with Workspace(workspace_path, create=False) as ws, ws.session() as s, s.begin():
        s.add(m.TrainingRun(kind=kind, name="r1", out_dir=str(out), config={"dataset": str(tiny_dataset)},
                            status="cancelled"))
        s.add(m.TrainingRun(kind=kind, name="r2", out_dir=str(out) + "2", config={}, status="done"))
    w = make_window(workspace_path)
    panel = w.tabs.widget(w._tab_with("start_run")).inner
    panel.refresh_runs()
    panel.select_run(2)
    assert not panel.resume_btn.isEnabled()  # a finished run has nothing to resume
    panel.select_run(1)
    assert panel.resume_btn.isEnabled()
    panel.command_override = None
    started = []
    monkey = panel.process.start
    panel.process.start = lambda program, args, cwd=None: started.append(args)  # see the command, run nothing
    try:
        panel.resume_btn.click()
    finally:
        panel.process.start = monkey
    assert started and started[0][2] == f"train-{kind}" and "--resume" in started[0]
    assert started[0][started[0].index("--out") + 1] == str(out)


def test_what_a_stop_keeps_in_words(tmp_path):
    from segbalance.core.runs.follow import kept_on_stop
    from segbalance.core.runs.live import RunProgress

    assert kept_on_stop("gan", tmp_path).startswith("no checkpoint saved yet; it saves again as it stops")
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    now = (tmp_path / "ckpt.pt").stat().st_mtime + 75
    text = kept_on_stop("gan", tmp_path, RunProgress(38, 2000, 0.2, None), now=now)
    assert text.startswith("at iteration 38 of 2000; its checkpoint was saved 1 min 15 s ago")
