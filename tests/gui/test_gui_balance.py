"""Target-balance editor user stories: targets feed the histogram, presets respect locks, Plan runs in the
background and the predicted overlay shows its effect."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDoubleSpinBox


@pytest.fixture
def plan_window(qtbot, make_window, workspace_path, sample_dataset):
    from tests.gui.conftest import wait_for_stats

    w = make_window(workspace_path)
    w.add_dataset(sample_dataset)
    wait_for_stats(qtbot, w)
    return w


def test_table_lists_train_classes_with_current_shares(plan_window):
    b, st = plan_window.balance, plan_window.state.train_stats()
    assert b.class_names() == [c.name for c in st.label_set.train_classes]
    shares = b.current_shares()
    expected = st.train_pixels() / st.train_pixels().sum()
    assert np.allclose([shares[n] for n in b.class_names()], expected)
    assert st.split == "train"


def test_editing_a_target_shows_it_on_the_histogram(qtbot, plan_window):
    b, h = plan_window.balance, plan_window.histogram
    item = b.target_item("wall")  # the user double-clicks the cell and types 2.5 %
    b.table.editItem(item)
    editor = b.table.findChild(QDoubleSpinBox)
    editor.setValue(2.5)
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # Qt commits the edit on the next turn of the event loop
    qtbot.waitUntil(lambda: plan_window.state.target is not None, timeout=3000)
    assert plan_window.state.target == {"wall": pytest.approx(0.025)}
    xs, ys = h.target_marks.getData()
    assert list(np.round(xs, 6)) == [0.025] and h.bar_names()[int(ys[0])] == "wall"


def test_presets_fill_unlocked_targets_only(plan_window):
    b = plan_window.balance
    b.set_target("wall", 0.004, lock=True)
    b.preset_box.setCurrentText("raise-rare")
    b.preset_param.setValue(1.0)  # 1 %
    b.apply_selected_preset()
    t = b.targets()
    shares = b.current_shares()
    assert t["wall"] == pytest.approx(0.004)  # locked: untouched
    rare = {c for c, s in shares.items() if s < 0.01 and c != "wall"}
    assert rare and all(t[c] == pytest.approx(0.01) for c in rare)
    assert all(c in rare or c == "wall" for c in t)
    b.clear_targets()
    assert b.targets() == {"wall": pytest.approx(0.004)}


def test_plan_updates_the_predicted_overlay_and_summary(qtbot, plan_window):
    b, h, s = plan_window.balance, plan_window.histogram, plan_window.state
    b.clear_targets()
    car = b.current_shares()["car"]
    b.set_target("car", min(0.5, car * 2))
    b.budget.setValue(6)
    with qtbot.waitSignal(b.planned, timeout=60_000) as sig:
        qtbot.mouseClick(b.plan_button, Qt.MouseButton.LeftButton)
    plan = sig.args[0]
    assert s.plan is plan and 0 < len(plan.recipes) <= 6
    names = h.bar_names()
    pred = h.predicted_values()
    assert pred[names.index("car")] == pytest.approx(plan.after["car"])
    assert plan.after["car"] > plan.before["car"]
    assert h.pred_bars.isVisible()
    assert f"{len(plan.recipes)} recipes" in b.summary.text() and "by strategy" in b.summary.text()
    assert s.plan_path is not None and s.plan_path.exists()  # saved in the workspace for generate/CLI
    assert str(s.plan_path) in plan_window.generation.plan_label.text()
