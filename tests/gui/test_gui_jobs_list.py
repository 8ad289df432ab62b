"""One job list for every background job (issue 18): GAN training asks first, shows with its progress, is
cancelled from the list; the app's own jobs are not "running elsewhere"; Quit with a job running asks first."""

from __future__ import annotations

import sys
import textwrap

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

# Stands in for `segbalance train-gan`: tqdm-style progress on stderr, stops on SIGTERM like the real one
# (which saves its checkpoint then); the app's side (job list, progress, cancel, quit) is what is tested here.
FAKE_TRAIN_GAN = textwrap.dedent("""
    import signal, sys, time
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    for i in range(1, 100000):
        print(f"train-gan:  {i % 100}%|#    | {i}/100000 [00:01<00:09, 9.00it/s]", file=sys.stderr, flush=True)
        time.sleep(0.05)
        if stop:
            print("stopped after the current step; checkpoint saved", flush=True)
            sys.exit(0)
""")


def _gan_window(qtbot, loaded_window):
    w = loaded_window
    w.generation.train_command = [sys.executable, "-c", FAKE_TRAIN_GAN]
    return w


def _start_gan(qtbot, w):
    box = w.generation.train_tiny_gan()
    assert box is not None and box.isVisible() and w.generation.train_process is None  # nothing started yet
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.generation.train_process is not None, timeout=5000)
    entry = w.generation.train_entry
    qtbot.waitUntil(lambda: entry.total == 100000 and entry.done > 0, timeout=15_000)
    return entry


def test_gan_training_asks_first_shows_in_the_job_list_and_is_cancelled_from_it(qtbot, loaded_window):
    w = _gan_window(qtbot, loaded_window)
    entry = _start_gan(qtbot, w)
    jl = w.job_list
    assert "Train GAN (tiny)" in w.state.running_jobs()
    row = jl.row_of("Train GAN (tiny)")
    assert row is not None and jl.table.item(row, 0).text() == "Train GAN (tiny)"
    bar = jl.bars[id(entry)]
    qtbot.waitUntil(lambda: bar.maximum() == 100000 and bar.value() > 0, timeout=5000)
    assert w.status.job_label.text() == "Running: Train GAN (tiny)"  # ours, not "Running elsewhere"
    lines: list[str] = []
    w.state.log.connect(lines.append)
    qtbot.mouseClick(jl.cancel_button("Train GAN (tiny)"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.generation.train_process is None, timeout=15_000)
    assert w.state.running_jobs() == [] and jl.table.rowCount() == 0
    assert any(line.startswith("Train GAN (tiny): cancelled") for line in lines), lines
    assert w.status.job_label.text() == "Idle" and w.generation.train_button.isEnabled()


def test_quit_with_a_running_job_asks_first(qtbot, loaded_window):
    w = _gan_window(qtbot, loaded_window)
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
    assert p.state() == p.ProcessState.NotRunning  # stopped (SIGTERM, checkpoint saved), not killed mid-write
    assert p.exitCode() == 0
