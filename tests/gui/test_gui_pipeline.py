"""The whole loop through the real engine: plan in the editor, generate with copypaste, review, export."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer


@pytest.mark.timeout(240)
def test_plan_generate_copypaste_review_and_export(qtbot, make_window, workspace_path, sample_dataset, tmp_path):
    from tests.gui.conftest import wait_for_stats

    w = make_window(workspace_path)
    w.add_dataset(sample_dataset)
    wait_for_stats(qtbot, w)
    b, g = w.balance, w.generation
    b.set_target("car", min(0.5, 2 * b.current_shares()["car"]))
    b.budget.setValue(4)
    with qtbot.waitSignal(b.planned, timeout=60_000) as planned:
        b.start_plan()
    n = len(planned.args[0].recipes)
    assert n > 0 and g.start_button.isEnabled()
    g.renderer.setCurrentText("copypaste")

    gaps: list[int] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: gaps.append(clock.restart()))
    clock.start()
    timer.start()
    with qtbot.waitSignal(g.jobFinished, timeout=120_000) as done:
        qtbot.mouseClick(g.start_button, Qt.MouseButton.LeftButton)
    timer.stop()
    assert done.args == ["done"], g.error_label.text()
    assert g.progress.value() == g.progress.maximum() == n and g.progress.text().endswith("(100%)")
    assert max(gaps[1:]) <= 100, f"UI thread stalled for {max(gaps[1:])} ms during generation"
    gal = w.gallery
    assert gal.model.rowCount() == n
    assert all(it.renderer == "copypaste" and it.status == "pending" for it in gal.model.items)
    w.tabs.setCurrentWidget(gal)
    gal.view.setFocus()
    qtbot.keyClick(gal.view, Qt.Key.Key_R)  # reject the first pair
    rejected = gal.model.items[0].id
    out = tmp_path / "export"
    worker = w.export_to(out, ("pending", "accepted"))  # the CLI default; the dialog starts at accepted
    qtbot.waitUntil(lambda: worker.done.is_set() and not w.state.running_jobs(), timeout=60_000)
    assert not w.errors, w.errors
    import json

    from segbalance.core.datasets import open_dataset

    exported = open_dataset(out)
    assert len(exported.samples("train")) == len(open_dataset(sample_dataset).samples("train")) + n - 1
    pair_ids = {e["pair_id"] for e in json.loads((out / "manifest.json").read_text())["pairs"]}
    assert rejected not in pair_ids and len(pair_ids) == n - 1


def test_quality_gate_without_a_segmentation_model_says_so(qtbot, make_window, workspace_path, sample_dataset):
    from tests.gui.conftest import wait_for_stats

    w = make_window(workspace_path)
    w.add_dataset(sample_dataset)
    wait_for_stats(qtbot, w)
    b, g = w.balance, w.generation
    b.set_target("car", min(0.5, 2 * b.current_shares()["car"]))
    b.budget.setValue(2)
    with qtbot.waitSignal(b.planned, timeout=60_000):
        b.start_plan()
    assert [g.renderer.itemText(i) for i in range(g.renderer.count())][0] == "copypaste"
    g.use_quality.setChecked(True)
    with qtbot.waitSignal(g.jobFinished, timeout=60_000) as done:
        g.start()
    assert done.args == ["failed"]
    assert "no segmentation model yet" in g.error_label.text()
    assert w.gallery.model.rowCount() == 0 and w.isVisible()
