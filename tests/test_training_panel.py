"""Training panel: a real subprocess writes run rows; the panel shows them live, stops runs, explains failures."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from segbalance.core.datasets import open_dataset
from segbalance.core.runs.queries import SegRunRequest
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from segbalance.desktop_app.training import TrainingPanel
from tests.test_editor_revisions import make_cityscapes

pytestmark = pytest.mark.gui

# A stand-in for `segbalance train-seg` until it lands: a real process writing TrainingRun/MetricPoint rows
# into the workspace DB the way train-seg does, saving a checkpoint and exiting 130 on SIGTERM.
FAKE_TRAIN = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path
    from segbalance.core.workspace import Workspace
    from segbalance.db import models as m
    from segbalance.db.base import utcnow

    ws_path, out, dataset, iters, sleep, fail = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \\
        float(sys.argv[5]), sys.argv[6] == "fail"
    if fail:
        print("loading dataset", file=sys.stderr, flush=True)
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: CUDA out of memory (simulated)", file=sys.stderr, flush=True)
        sys.exit(1)
    ws = Workspace(ws_path)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with ws.session() as s, s.begin():
        run = m.TrainingRun(kind="seg", name=out.name, out_dir=str(out), config={"dataset": dataset},
                            status="running", pid=os.getpid())
        s.add(run)
        s.flush()
        run_id = run.id
    state = {"it": 0, "stop": False}

    def stop():
        (out / "checkpoint.pt").write_text(json.dumps({"iter_num": state["it"]}))
        with ws.session() as s, s.begin():
            r = s.get(m.TrainingRun, run_id)
            r.status, r.finished_at = "cancelled", utcnow()
        print(f"stopped at iteration {state['it']}; checkpoint kept", file=sys.stderr, flush=True)
        sys.exit(130)

    # like train-seg: the signal only asks; the loop stops at the next iteration boundary (a handler writing to
    # the DB could land inside the loop's own write transaction and fail on the locked database)
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
    for it in range(1, iters + 1):
        if state["stop"]:
            stop()
        state["it"] = it
        with ws.session() as s, s.begin():
            s.add(m.MetricPoint(run_id=run_id, iteration=it, name="loss", value=2.0 / it))
            s.add(m.MetricPoint(run_id=run_id, iteration=it, name="lr", value=0.01 * (1 - it / iters) ** 0.9))
            if it % 2 == 0:
                s.add(m.MetricPoint(run_id=run_id, iteration=it, name="val_miou", value=0.1 * it / iters,
                                    extra={"per_class": {"road": 0.9, "car": 0.05 * it / iters, "sky": None}}))
        print(json.dumps({"event": "train", "iteration": it}), flush=True)
        time.sleep(sleep)
    with ws.session() as s, s.begin():
        r = s.get(m.TrainingRun, run_id)
        r.status, r.finished_at = "done", utcnow()
        r.result = {"miou": 0.1, "per_class": {"road": 0.9, "car": 0.05, "sky": None}}
    """
)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("SEGBALANCE_GUI_SETTINGS", str(tmp_path / "settings" / "gui.ini"))


@pytest.fixture
def env(tmp_path, qtbot):
    root = make_cityscapes(tmp_path / "ds", n=2)
    ds = open_dataset(root)
    ws = Workspace(tmp_path / "ws")
    ws.register_dataset(ds)
    # cached class statistics: car is rare (0.5% of the pixels), road and sky are not
    with ws.session() as s, s.begin():
        for sample in s.query(m.Sample).all():
            s.add(m.SampleStats(sample_id=sample.id, label_size=1, label_mtime_ns=1, height=32, width=48,
                                counts={"7": 4500, "26": 25, "23": 475}))
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    panel = TrainingPanel(ws, poll_ms=100)
    qtbot.addWidget(panel)
    panel.resize(1200, 700)
    panel.show()
    yield panel, ws, script, root
    if panel.process.running:
        panel.process.proc.kill()
        panel.process.wait(5000)
    panel.close()
    ws.close()


def _use_fake(panel, script, root, iters, sleep, mode="ok"):
    req = panel.request()
    panel.command_override = (sys.executable, [str(script), req.workspace, req.out_dir, str(root), str(iters),
                                               str(sleep), mode])
    return req


def test_panel_shows_metric_points_as_the_subprocess_writes_them(env, qtbot):
    panel, ws, script, root = env
    _use_fake(panel, script, root, iters=8, sleep=0.2)
    assert panel.start_run()
    qtbot.waitUntil(lambda: panel.curves.point_count("loss") >= 2, timeout=20000)
    seen_while_running = panel.curves.point_count("loss")
    assert panel.process.running  # the curve filled while the run was still going
    qtbot.waitUntil(lambda: not panel.process.running, timeout=30000)
    panel.poll()
    assert panel.curves.point_count("loss") == 8 > seen_while_running
    assert panel.curves.point_count("val_miou") == 4 and panel.curves.point_count("lr") == 8
    names = [panel.curves.table.item(r, 0).text() for r in range(panel.curves.table.rowCount())]
    assert names == ["road", "car", "sky"]
    assert panel.curves.table.item(1, 1).text() == "5.0"  # car IoU (%) at the last validation
    assert "car" in panel.curves.highlighted_rows() and "road" not in panel.curves.highlighted_rows()
    statuses = [panel.runs_table.item(r, 2).text() for r in range(panel.runs_table.rowCount())]
    assert statuses == ["done"]
    assert panel.error_box.isHidden()


def test_stop_ends_the_subprocess_and_keeps_its_checkpoint(env, qtbot):
    panel, ws, script, root = env
    req = _use_fake(panel, script, root, iters=10_000, sleep=0.05)
    assert panel.start_run()
    qtbot.waitUntil(lambda: panel.curves.point_count("loss") >= 3, timeout=20000)
    pid = panel.process.pid()
    assert pid
    with qtbot.waitSignal(panel.runFinished, timeout=20000) as blocker:
        panel.stop_run()
    assert blocker.args == [130, True]
    assert not panel.process.running
    assert (Path(req.out_dir) / "checkpoint.pt").exists()
    with ws.session() as s:
        assert [r.status for r in s.query(m.TrainingRun).all()] == ["cancelled"]
    assert "stopped" in panel.run_state.text()
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_failing_subprocess_shows_its_last_lines(env, qtbot):
    panel, _ws, script, root = env
    _use_fake(panel, script, root, iters=1, sleep=0, mode="fail")
    with qtbot.waitSignal(panel.runFinished, timeout=20000):
        assert panel.start_run()
    assert panel.error_box.isVisible()
    text = panel.error_box.toPlainText()
    assert "exited with code 1" in text and "CUDA out of memory (simulated)" in text
    assert panel.start_btn.isEnabled()


def test_compare_two_runs_shows_per_class_deltas(env, qtbot):
    panel, ws, _script, root = env
    with ws.session() as s, s.begin():
        for name, car in (("baseline", 0.10), ("balanced", 0.25)):
            s.add(m.TrainingRun(kind="seg", name=name, out_dir=f"/x/{name}", status="done",
                                config={"dataset": str(root)},
                                result={"miou": 0.5, "per_class": {"road": 0.9, "car": car}}))
    panel.refresh_runs()
    panel.runs_table.selectAll()
    assert panel.compare_btn.isEnabled()
    panel.compare_selected()
    t = panel.compare.table
    rows = {t.item(r, 0).text(): t.item(r, 3).text() for r in range(t.rowCount())}
    assert rows == {"road": "+0.0", "car (rare)": "+15.0"}
    assert "mean ΔIoU +7.50" in panel.compare.title.text()


def test_train_seg_command_line():
    req = SegRunRequest(dataset="/d", workspace="/w", out_dir="/w/runs/seg/a", name="a", use_pairs=True,
                        pair_statuses=("accepted", "pending"), sampler="rare-class", backbone="resnet18", iters=50,
                        device="cpu")
    prog, args = req.command()
    assert prog == sys.executable and args[:4] == ["-m", "segbalance.core.cli", "train-seg", "/d"]
    joined = " ".join(args)
    assert "--extra pairs --extra-status accepted,pending" in joined
    assert "--sampler rare-class" in joined and "--backbone resnet18" in joined and "--iters 50" in joined


def test_noisy_pixel_filter_from_the_form_and_its_ignored_share_in_the_table(env):
    """The filter needs generated pairs: its box follows the pairs box, the request carries the factor, and a
    run that filtered shows each class's ignored share beside its IoU (the column hides otherwise)."""
    from segbalance.core.runs.queries import Series

    panel, _ws, _script, root = env
    assert not panel.noisy_check.isEnabled()
    panel.pairs_check.setChecked(True)
    assert panel.noisy_check.isEnabled() and not panel.noisy_spin.isEnabled()
    assert panel.request().noisy_factor == 0.0
    panel.noisy_check.setChecked(True)
    panel.noisy_spin.setValue(1.5)
    req = panel.request()
    assert req.noisy_factor == 1.5 and "--extra pairs --extra-status accepted --noisy-filter 1.5" in " ".join(
        req.cli_args())
    panel.pairs_check.setChecked(False)  # no pairs: nothing to filter, whatever the box says
    assert panel.request().noisy_factor == 0.0 and "--noisy-filter" not in panel.request().cli_args()
    curves = panel.curves
    curves.update_from(Series(run_id=1, per_class={"road": 0.9, "car": 0.05}))
    assert curves.table.isColumnHidden(3)
    curves.update_from(Series(run_id=1, per_class={"road": 0.9, "car": 0.05},
                              ignored_per_class={"road": 0.012, "car": 0.375}))
    assert not curves.table.isColumnHidden(3)
    assert curves.table.horizontalHeaderItem(3).text() == "ignored (%)"
    assert [curves.table.item(r, 3).text() for r in range(2)] == ["1.2", "37.5"]


def test_bad_form_input_is_refused_with_a_reason(env):
    panel, _ws, _script, root = env
    panel.dataset_box.setCurrentText(str(root / "nope"))
    assert not panel.start_run() and "dataset folder not found" in panel.run_state.text()
    panel.dataset_box.setCurrentText(str(root))
    panel.crop_edit.setText("256by512")
    assert not panel.start_run() and "bad crop" in panel.run_state.text()
    assert not panel.process.running


def test_a_short_real_train_seg_run_streams_into_the_panel(tmp_path, qtbot):
    """The real `segbalance train-seg` subprocess (resnet18, 4 iterations on 64x32 maps)."""
    from segbalance.core.datasets.sample import make_sample_dataset

    root = make_sample_dataset(tmp_path / "ds", n_train=6, n_val=2, size=(64, 32), seed=1)
    ws = Workspace(tmp_path / "ws")
    panel = TrainingPanel(ws, poll_ms=100)
    qtbot.addWidget(panel)
    panel.show()
    panel.dataset_box.setCurrentText(str(root))
    panel.backbone_box.setCurrentText("resnet18")
    panel.iters_spin.setValue(4)
    panel.batch_spin.setValue(2)
    panel.crop_edit.setText("32x64")
    panel.eval_spin.setValue(2)
    panel.device_box.setCurrentText("cpu")
    panel.name_edit.setText("tiny real run")
    panel.extra_args = ["--log-interval", "1", "--workers", "0", "--threads", "1"]
    with qtbot.waitSignal(panel.runFinished, timeout=120000) as done:
        assert panel.start_run()
    assert done.args[0] == 0, "\n".join(panel.process.stderr_lines)
    panel.poll()
    assert panel.curves.point_count("loss") == 4 and panel.curves.point_count("val_miou") == 2
    table = panel.curves.table
    names = {table.item(r, 0).text() for r in range(table.rowCount())}
    assert {"road", "car", "bicycle"} <= names
    assert [panel.runs_table.item(0, c).text() for c in (1, 2)] == ["tiny real run", "done"]
    assert (Path(panel.request().out_dir).parent / "tiny_real_run" / "checkpoint.pt").exists()
    panel.close()
    ws.close()


def test_gan_runs_are_listed_beside_segmentation_runs_with_the_same_status_words(env, qtbot):
    """A GAN run (train-gan) sits in the same run list as a segmentation run, in the same words."""
    from segbalance.core.runs.records import STATUSES

    panel, ws, _script, _root = env
    with ws.session() as s, s.begin():
        s.add(m.TrainingRun(kind="seg", name="seg-a", out_dir="/x/a", config={}, status="cancelled"))
        s.add(m.TrainingRun(kind="gan", name="gan-b", out_dir="/x/b", config={}, status="done"))
    panel.refresh_runs()
    table = panel.runs_table
    rows = {table.item(i, 1).text(): table.item(i, 2).text() for i in range(table.rowCount())}
    assert rows == {"seg-a": "cancelled", "gan-b (gan)": "done"}
    assert set(rows.values()) <= set(STATUSES)
    table.selectAll()  # comparing needs two segmentation runs: a GAN run is refused with a reason
    panel.compare_selected()
    assert "two segmentation runs" in panel.run_state.text()


def test_a_gan_run_has_its_own_view_with_its_losses_and_sample_renders(tmp_path, qtbot):
    """A real (2-iteration) train-gan run: the Live tab shows the generator's and discriminator's losses, not
    the segmentation charts, and renders a few label maps with the run's checkpoint."""
    from segbalance.core.datasets.sample import make_sample_dataset
    from segbalance.core.render.gan_train import make_config, train_gan

    root = make_sample_dataset(tmp_path / "ds", n_train=4, n_val=2, size=(64, 32), seed=1)
    ws = Workspace(tmp_path / "ws")
    arch = dict(ngf=8, n_downsample_global=2, n_blocks_global=2, ndf=8, num_D=2)
    train_gan(root, ws, ws.path / "runs" / "gan", make_config("tiny", arch=arch, size=(64, 32), iters=2,
                                                              log_every=1, device="cpu"))
    panel = TrainingPanel(ws, poll_ms=100)
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    panel.refresh_runs()
    panel.select_run(1)
    assert panel.live.currentWidget() is panel.gan_view
    assert panel.gan_view.point_count("loss_G_GAN") == 2 and panel.gan_view.point_count("loss_D_fake") == 2
    assert panel.gan_view.render_samples() is not None
    qtbot.waitUntil(lambda: "rendering" not in panel.gan_view.samples_note.text(), timeout=60_000)
    assert len(panel.gan_view.images) == 2, panel.gan_view.samples_note.text()  # the two val maps
    assert panel.gan_view.images[0].shape == (64, 64, 3)
    panel.close()
    ws.close()
