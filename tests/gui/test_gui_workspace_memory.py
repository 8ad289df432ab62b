"""State kept with the workspace (issue 18): targets, the last plan and the chosen checkpoint come back when
the workspace is opened again, and a workspace moved with its dataset inside still opens that dataset."""

from __future__ import annotations

import json
import shutil

from segbalance.core.datasets import catalog
from segbalance.core.workspace import Workspace
from tests.gui.conftest import make_tiny_cityscapes, wait_for_stats


def test_targets_plan_and_checkpoint_are_restored_after_reopening_the_workspace(qtbot, make_window,
                                                                               workspace_path, sample_dataset):
    w = make_window(workspace_path)
    w.add_dataset(sample_dataset)
    wait_for_stats(qtbot, w)
    b = w.balance
    car = min(0.5, 2 * b.current_shares()["car"])
    b.set_target("car", car, lock=True)
    b.budget.setValue(3)
    with qtbot.waitSignal(b.planned, timeout=60_000) as planned:
        b.start_plan()
    n = len(planned.args[0].recipes)
    plan_path = w.state.plan_path
    ckpt = workspace_path / "runs" / "mine" / "latest_net_G.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    w.generation.checkpoint.setText(str(ckpt))
    w.close()

    w2 = make_window(workspace_path)  # the next launch
    wait_for_stats(qtbot, w2)
    qtbot.waitUntil(lambda: w2.state.plan is not None, timeout=10_000)
    assert abs(w2.balance.targets()["car"] - car) < 1e-4 and "car" in w2.balance.locked()
    assert w2.state.plan_path == plan_path and len(w2.state.plan.recipes) == n
    assert w2.generation.start_button.isEnabled()  # the restored plan can be generated at once
    assert f"{n} recipes" in w2.generation.plan_label.text()
    assert w2.generation.checkpoint.text() == str(ckpt)
    saved = json.loads((workspace_path / "gui_state.json").read_text())
    assert saved["checkpoints"]["gan"] == "runs/mine/latest_net_G.pth"  # relative: moves with the workspace


def test_the_workspace_own_gan_checkpoint_is_offered_first(qtbot, make_window, workspace_path):
    ckpt = workspace_path / "runs" / "gan-tiny" / "latest_net_G.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    w = make_window(workspace_path)
    assert w.generation.checkpoint.text() == str(ckpt)
    assert w.generation.checkpoint_start_dir() == str(ckpt.parent)  # the file dialog opens there


def test_a_moved_workspace_still_opens_its_dataset(qtbot, make_window, tmp_path):
    ws_path = tmp_path / "ws"
    Workspace(ws_path).close()
    make_tiny_cityscapes(ws_path / "data" / "tiny")
    w = make_window(ws_path)
    w.add_dataset(ws_path / "data" / "tiny")
    wait_for_stats(qtbot, w)
    w.close()
    moved = tmp_path / "elsewhere" / "ws-copy"
    moved.parent.mkdir()
    shutil.move(str(ws_path), str(moved))

    w2 = make_window(moved)
    qtbot.waitUntil(lambda: w2.state.dataset is not None, timeout=10_000)
    assert w2.state.dataset.root == (moved / "data" / "tiny").resolve()
    assert len(w2.state.dataset.samples()) == 8 and not w2.errors
    with Workspace(moved, create=False) as ws:
        assert [d.stored for d in catalog.datasets(ws)] == ["data/tiny"]


def test_the_label_editors_checkpoint_comes_back_with_the_workspace(qtbot, make_window, tmp_path):
    import os
    import subprocess
    import sys

    from segbalance.core.datasets.sample import make_sample_dataset

    ws_path = tmp_path / "ws"
    data = make_sample_dataset(ws_path / "data" / "sample", n_train=4, n_val=1, size=(64, 32), seed=0)
    ckpt_dir = ws_path / "runs" / "gan-tiny"
    r = subprocess.run([sys.executable, "-m", "segbalance.core.cli", "train-gan", str(data), "--workspace",
                        str(ws_path), "--out", str(ckpt_dir), "--iters", "1", "--size", "64x32", "--threads", "1",
                        "--device", "cpu", "--quiet"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-800:]
    w = make_window(ws_path)
    w.add_dataset(data)
    wait_for_stats(qtbot, w)
    host = w.tabs.widget(2)
    qtbot.waitUntil(lambda: host.inner is not None, timeout=10_000)
    with qtbot.waitSignal(host.inner.render_pane.checkpointLoaded, timeout=60_000):
        host.inner.render_pane.load_checkpoint(ckpt_dir / "ckpt.pt")
    w.close()

    w2 = make_window(ws_path)  # the next launch: the editor loads the same generator by itself
    host2 = w2.tabs.widget(2)
    qtbot.waitUntil(lambda: host2.inner is not None, timeout=20_000)
    qtbot.waitUntil(lambda: host2.inner.render_pane.renderer is not None, timeout=60_000)
    saved = json.loads((ws_path / "gui_state.json").read_text())
    assert saved["checkpoints"]["gan"] == "runs/gan-tiny/ckpt.pt"  # one generator for the editor and Generate
    assert w2.generation.checkpoint.text().endswith("runs/gan-tiny/ckpt.pt")


def test_a_gui_state_of_the_wrong_type_is_ignored_with_a_warning(qtbot, make_window, workspace_path, tiny_dataset):
    """Issue 40 item 6: gui_state.json is a convenience file: a wrong type or a JSON bomb never stops the app
    from opening the workspace; the Log says it was ignored, and the next save writes a good one."""
    bad = {"wrong-type": json.dumps({"datasets": [], "checkpoints": "x"}),
           "deep": "[" * 100_000 + "]" * 100_000,
           "targets-not-numbers": json.dumps({"datasets": {"d": {"targets": {"car": "lots"}}}})}
    for name, text in bad.items():
        (workspace_path / "gui_state.json").write_text(text)
        w = make_window(workspace_path)
        assert w.state.workspace is not None, name
        assert not w.errors, (name, w.errors)
        log = w.log_view.toPlainText()
        assert "gui_state.json: ignored" in log and "starting afresh" in log, (name, log)
        w.add_dataset(tiny_dataset)
        wait_for_stats(qtbot, w)
        saved = json.loads((workspace_path / "gui_state.json").read_text())
        assert isinstance(saved["dataset"], str), name
        w.close()
