"""Generation panel user stories against the engine adapter (desktop_app.core_calls): progress to 100 %,
pairs reaching the gallery, a job failing mid-way, cancelling. The real copypaste job is in
test_gui_pipeline.py."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from sqlalchemy import func, select

from segbalance.core.errors import Cancelled, DataError
from segbalance.core.io import write_png
from segbalance.db import models as m
from segbalance.desktop_app import core_calls


def fake_generation(n: int, fail_at: int | None = None, delay: float = 0.01):
    """An engine-shaped job: files first, then a row per pair; progress and cancel like core.jobs."""

    def run(workspace, ds, plan_path, renderer, *, checkpoint=None, device="auto", min_quality=None,
            log=None, progress=None, cancel=None):
        with workspace.session() as s, s.begin():
            job = m.Job(kind="generate", params={"renderer": renderer}, status="running", total=n)
            s.add(job)
            s.flush()
            job_id = job.id
        for i in range(n):
            if cancel and cancel():
                raise Cancelled()
            if fail_at is not None and i == fail_at:
                raise DataError("corrupt or truncated PNG (cannot decode)", "/data/broken_gtFine_labelIds.png")
            d = workspace.subdir("pairs", str(job_id))
            lab = np.full((16, 32), 7, np.uint8)
            lab[4:10, 4:12] = 26
            write_png(d / f"p{i}_gtFine_labelIds.png", lab)
            write_png(d / f"p{i}_leftImg8bit.png", np.full((16, 32, 3), 90, np.uint8), rgb=True)
            with workspace.session() as s, s.begin():
                s.add(m.GeneratedPair(job_id=job_id, recipe_index=i, recipe={}, strategy="single",
                                      source_samples=["a"], classes_added=["car"],
                                      image_path=workspace.rel(d / f"p{i}_leftImg8bit.png"),
                                      label_path=workspace.rel(d / f"p{i}_gtFine_labelIds.png"),
                                      renderer=renderer))
            time.sleep(delay)
            if log and i == 0:
                log("first pair written")
            if progress:
                progress(i + 1, n)
        return job_id

    return run


@pytest.fixture
def gen_window(loaded_window, monkeypatch, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    loaded_window.state.plan_path = plan
    loaded_window.generation._update_plan_label()
    return loaded_window


def pair_count(win) -> int:
    with win.state.workspace.session() as s:
        return s.scalar(select(func.count()).select_from(m.GeneratedPair))


def test_job_runs_to_100_percent_and_gallery_shows_the_pairs(qtbot, gen_window, monkeypatch):
    monkeypatch.setattr(core_calls, "run_generation", fake_generation(12))
    g = gen_window.generation
    assert g.start_button.isEnabled() and "plan.json" in g.plan_label.text()
    with qtbot.waitSignal(g.jobFinished, timeout=20_000) as done:
        qtbot.mouseClick(g.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "Running: Generate (copypaste)" in gen_window.status.job_label.text(), timeout=5000)
    assert done.args == ["done"]
    assert g.progress.value() == g.progress.maximum() == 12
    assert g.progress.text() == "12 / 12 pairs (100%)"
    assert gen_window.gallery.model.rowCount() == 12
    qtbot.waitUntil(lambda: "generate: first pair written" in gen_window.log_view.toPlainText(), timeout=2000)
    qtbot.waitUntil(lambda: gen_window.status.job_label.text() == "Idle", timeout=5000)
    assert g.start_button.isEnabled()


def test_job_failing_midway_shows_the_error_and_keeps_the_pairs(qtbot, gen_window, monkeypatch):
    monkeypatch.setattr(core_calls, "run_generation", fake_generation(10, fail_at=4))
    g = gen_window.generation
    with qtbot.waitSignal(g.jobFinished, timeout=20_000) as done:
        g.start()
    assert done.args == ["failed"]
    assert "/data/broken_gtFine_labelIds.png: corrupt or truncated PNG" in g.error_label.text()
    qtbot.waitUntil(lambda: "Generate (copypaste): failed" in gen_window.log_view.toPlainText(), timeout=2000)
    assert pair_count(gen_window) == 4 and gen_window.gallery.model.rowCount() == 4
    qtbot.waitUntil(lambda: g.start_button.isEnabled(), timeout=5000)
    assert gen_window.isVisible()


def test_cancel_stops_a_running_generation(qtbot, gen_window, monkeypatch):
    monkeypatch.setattr(core_calls, "run_generation", fake_generation(10_000, delay=0.005))
    g = gen_window.generation
    g.start()
    qtbot.waitUntil(lambda: g.progress.value() > 0, timeout=10_000)
    assert g.cancel_button.isEnabled()
    t0 = time.monotonic()
    with qtbot.waitSignal(g.jobFinished, timeout=5000) as done:
        qtbot.mouseClick(g.cancel_button, Qt.MouseButton.LeftButton)
    assert done.args == ["cancelled"] and time.monotonic() - t0 < 1.0
    assert 0 < pair_count(gen_window) < 10_000
    assert g.rate_label.text() == "cancelled"


def test_pix2pixhd_without_checkpoint_says_what_is_missing(qtbot, gen_window):
    g = gen_window.generation
    g.renderer.setCurrentText("pix2pixhd")
    assert g.checkpoint.isEnabled()
    assert g.start() is None
    assert "needs a generator checkpoint" in g.error_label.text()


# A stand-in for `segbalance train-gan` that keeps its rows the way train-gan does (core's RunRecord: run and Job
# rows, progress and rate on the Job row), stops on SIGTERM after the current step with a checkpoint saved and
# the run ended "cancelled", and otherwise writes the generator at the end.
FAKE_TRAIN_GAN = """
import os, pathlib, signal, sys, time
from segbalance.core.runs.records import RunRecord
from segbalance.core.workspace import Workspace
a = sys.argv
out = pathlib.Path(a[a.index('--out') + 1])
assert a[a.index('--preset') + 1] == 'tiny' and '--save-every-s' in a
iters = int(a[a.index('--iters') + 1]) if '--iters' in a else 10
step = float(os.environ.get('FAKE_GAN_STEP_S', '0.01'))
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
out.mkdir(parents=True, exist_ok=True)
ws = Workspace(a[a.index('--workspace') + 1])
rec = RunRecord(ws, 'gan', out, name='pix2pixHD tiny ' + out.name, config={'dataset': a[1]}, total=iters).open()
t0 = time.monotonic()
for it in range(iters):
    if stop:
        (out / 'ckpt.pt').write_bytes(b'checkpoint')
        rec.finish('cancelled', None, f'cancelled at iteration {it} of {iters}; checkpoint kept')
        sys.exit(0)
    time.sleep(step)
    rec.metric(it + 1, 'loss_G_GAN', 1.0 / (it + 1))
    rec.flush(it + 1, rate=(it + 1) / (time.monotonic() - t0))
(out / 'latest_net_G.pth').write_bytes(b'weights')
(out / 'ckpt.pt').write_bytes(b'checkpoint')
rec.finish('done', {'iteration': iters})
print('trained', iters, 'iterations')
"""


def fake_train_gan(window, tmp_path):
    import sys

    script = tmp_path / "fake_train_gan.py"
    script.write_text(FAKE_TRAIN_GAN)
    window.generation.train_command = [sys.executable, str(script)]
    return window.generation


def gan_run_status(window) -> list[str]:
    with window.state.workspace.session() as s:
        return [r.status for r in s.scalars(select(m.TrainingRun).where(m.TrainingRun.kind == "gan"))]


def test_train_tiny_gan_asks_iterations_with_their_time_and_follows_the_run_through_its_job_row(
        qtbot, loaded_window, tmp_path, monkeypatch):
    monkeypatch.setattr(core_calls, "gan_seconds_per_iteration", lambda device="auto", steps=2: 6.0)
    monkeypatch.setenv("FAKE_GAN_STEP_S", "0.05")
    g = fake_train_gan(loaded_window, tmp_path)
    seen: list[tuple[int, int]] = []
    loaded_window.state.jobProgress.connect(lambda e: seen.append((e.done, e.total)))
    qtbot.mouseClick(g.train_button, Qt.MouseButton.LeftButton)
    dlg = g.confirm_box
    assert g.train_process is None and dlg.isVisible()  # asks first
    qtbot.waitUntil(lambda: "about 6.00 s per iteration" in dlg.estimate.text(), timeout=10_000)
    assert "2000 iterations take about 3:20:00" in dlg.estimate.text()  # the default, and what it costs here
    dlg.iters.setValue(40)
    assert "40 iterations take about 4:00" in dlg.estimate.text()
    qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
    assert not g.train_button.isEnabled()
    qtbot.waitUntil(lambda: any(d > 0 for d, _ in seen), timeout=20_000)  # progress from the job row
    assert {t for _, t in seen if t} == {40}
    qtbot.waitUntil(lambda: (loaded_window.job_list.eta_text("Train GAN (tiny)") or "—") != "—", timeout=10_000)
    qtbot.waitUntil(lambda: g.train_process is None, timeout=30_000)
    assert g.checkpoint.text().endswith("runs/gan-tiny/latest_net_G.pth")
    assert g.renderer.currentText() == "pix2pixhd" and g.train_button.isEnabled()
    assert gan_run_status(loaded_window) == ["done"]
    assert "train-gan: trained 40 iterations" in loaded_window.log_view.toPlainText()


def test_a_second_gan_goes_to_a_new_folder_instead_of_being_refused(qtbot, loaded_window, tmp_path):
    g = fake_train_gan(loaded_window, tmp_path)
    first = g.gan_out_dir()
    first.mkdir(parents=True)
    (first / "ckpt.pt").write_bytes(b"x")
    assert g.gan_out_dir().name == "gan-tiny-2"


def test_train_tiny_gan_failure_is_shown(qtbot, loaded_window):
    import sys

    g = loaded_window.generation
    g.train_command = [sys.executable, "-c", "import sys; print('error: no GPU'); sys.exit(2)"]
    assert g.start_gan_training()  # what Yes in the confirmation starts
    qtbot.waitUntil(lambda: g.train_process is None, timeout=20_000)
    assert "train-gan exited with code 2" in g.error_label.text()


def test_a_gated_job_ends_with_what_the_gate_did(qtbot, gen_window, monkeypatch):
    from segbalance.core.jobs.generate import GenerateResult

    def gated(workspace, ds, plan_path, renderer, *, min_quality=None, progress=None, **_kw):
        assert min_quality == pytest.approx(0.3)
        return GenerateResult(job_id=7, total=50, done=50, new=50, rejected=50)

    monkeypatch.setattr(core_calls, "run_generation", gated)
    g = gen_window.generation
    g.use_quality.setChecked(True)
    with qtbot.waitSignal(g.jobFinished, timeout=20_000):
        g.start()
    assert "50 of 50 new pairs rejected by the quality gate at 0.30" in g.rate_label.text()
    qtbot.waitUntil(lambda: "job #7: 50 of 50 new pairs rejected" in gen_window.log_view.toPlainText(), timeout=2000)


def test_a_generator_trained_on_another_label_set_is_refused_in_one_line(qtbot, gen_window, monkeypatch, tmp_path):
    from segbalance.core.render.registry import check_generator_fits
    from tests.test_generator_fit import CAMVID_LIKE, fake_train_gan_checkpoint

    ckpt = fake_train_gan_checkpoint(tmp_path / "gan" / "ckpt.pt", CAMVID_LIKE)

    def run(workspace, ds, plan_path, renderer, *, checkpoint=None, **_kw):
        check_generator_fits(ds, checkpoint)  # what the engine's generate does before it renders
        raise AssertionError("rendered with a mismatched generator")

    monkeypatch.setattr(core_calls, "run_generation", run)
    g = gen_window.generation
    assert "procedural" not in [g.renderer.itemText(i) for i in range(g.renderer.count())]  # not the sample data
    g.renderer.setCurrentText("pix2pixhd")
    g.checkpoint.setText(str(ckpt))
    with qtbot.waitSignal(g.jobFinished, timeout=20_000) as done:
        g.start()
    assert done.args == ["failed"]
    assert g.error_label.text().startswith("Refused: ") and "trained on label set 'camvid'" in g.error_label.text()
    assert "Start resumes" not in g.error_label.text()
    assert pair_count(gen_window) == 0
