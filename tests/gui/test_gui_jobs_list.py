"""One job list for every background job (issue 18): GAN training asks first, shows with its progress, is
cancelled from the list; the app's own jobs are not "running elsewhere"; Quit with a job running asks first."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from segbalance.desktop_app import core_calls
from tests.gui.test_gui_generation import fake_train_gan


def _gan_window(qtbot, loaded_window, tmp_path, monkeypatch):
    """The real window with train-gan replaced by a stand-in that keeps its rows like train-gan (progress on
    its Job row, SIGTERM: checkpoint saved, run ended "cancelled"); the dialog's timing is made instant."""
    monkeypatch.setattr(core_calls, "gan_seconds_per_iteration", lambda device="auto", steps=2: 2.0)
    monkeypatch.setenv("FAKE_GAN_STEP_S", "0.05")
    fake_train_gan(loaded_window, tmp_path)
    return loaded_window


def _start_gan(qtbot, w):
    box = w.generation.train_tiny_gan()
    assert box is not None and box.isVisible() and w.generation.train_process is None  # nothing started yet
    qtbot.mouseClick(box.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.generation.train_process is not None, timeout=5000)
    entry = w.generation.train_entry
    qtbot.waitUntil(lambda: entry.total == 2000 and entry.done > 0, timeout=15_000)  # from the run's job row
    return entry


def test_gan_training_asks_first_shows_in_the_job_list_and_is_cancelled_from_it(qtbot, loaded_window, tmp_path,
                                                                                  monkeypatch):
    w = _gan_window(qtbot, loaded_window, tmp_path, monkeypatch)
    entry = _start_gan(qtbot, w)
    jl = w.job_list
    assert "Train GAN (tiny)" in w.state.running_jobs()
    row = jl.row_of("Train GAN (tiny)")
    assert row is not None and jl.table.item(row, 0).text() == "Train GAN (tiny)"
    bar = jl.bars[id(entry)]
    qtbot.waitUntil(lambda: bar.maximum() == 2000 and bar.value() > 0, timeout=5000)
    assert w.status.job_label.text() == "Running: Train GAN (tiny)"  # ours, not "Running elsewhere"
    lines: list[str] = []
    w.state.log.connect(lines.append)
    qtbot.mouseClick(jl.cancel_button("Train GAN (tiny)"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.generation.train_process is None, timeout=15_000)
    assert w.state.running_jobs() == [] and jl.table.rowCount() == 0
    assert any(line.startswith("Train GAN (tiny): cancelled") for line in lines), lines
    assert w.status.job_label.text() == "Idle" and w.generation.train_button.isEnabled()


def test_quit_with_a_running_job_asks_first(qtbot, loaded_window, tmp_path, monkeypatch):
    w = _gan_window(qtbot, loaded_window, tmp_path, monkeypatch)
    _start_gan(qtbot, w)
    w.close()
    box = w.quit_box
    assert box.isVisible() and w.isVisible()  # still open, asking
    assert "Train GAN (tiny)" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()  # changed my mind: the job goes on
    assert w.isVisible() and w.generation.train_process is not None
    w.close()
    quit_button = next(b for b in w.quit_box.buttons() if b.text() == "Cancel jobs and quit")
    p = w.generation.train_process
    quit_button.click()
    assert not w.isVisible()
    assert not p.running and p.exit_code == 0  # stopped (SIGTERM, checkpoint saved), not killed mid-write
