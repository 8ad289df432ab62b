"""Review safe at speed (issue 41, items 1, 2, 6, 7): one undo stack of decisions, bulk decisions that ask
with the count, Review reopened at the first pending pair, who decided each pair, filter by job, sort by
quality, and a preview that holds still."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import update

from segbalance.core.cli import main
from segbalance.core.jobs.decisions import gate_summary
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from tests.gui.test_gui_review import add_pairs, confirm_bulk, statuses


def _gallery(qtbot, make_window, workspace_path, n: int = 5):
    ids = add_pairs(workspace_path, n)
    w = make_window(workspace_path)
    w.tabs.setCurrentWidget(w.gallery)
    g = w.gallery
    g.view.setFocus()
    return w, g, ids


def test_undo_after_r_takes_back_the_pair_just_rejected_not_the_one_selected_now(qtbot, make_window,
                                                                                workspace_path):
    w, g, ids = _gallery(qtbot, make_window, workspace_path)
    g.select(ids[1])
    qtbot.keyClick(g.view, Qt.Key.Key_R)  # rejects #2, moves on to #3
    assert g.current_id() == ids[2]
    qtbot.keyClick(g.view, Qt.Key.Key_U)
    assert statuses(workspace_path)[ids[1]] == "pending"  # the pair decided last, back to what it was
    assert statuses(workspace_path)[ids[2]] == "pending"  # the selected one untouched
    assert g.current_id() == ids[1]  # and shown again
    assert "pending" in g.detail.text()
    qtbot.keyClick(g.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert statuses(workspace_path)[ids[1]] == "rejected"  # redo
    g.view.setFocus()
    qtbot.keyClick(g.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert statuses(workspace_path)[ids[1]] == "pending"  # Ctrl+Z is the same undo
    qtbot.keyClick(g.view, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert statuses(workspace_path)[ids[1]] == "rejected"


def test_a_bulk_reject_asks_with_the_count_and_one_undo_restores_every_status(qtbot, make_window, workspace_path):
    w, g, ids = _gallery(qtbot, make_window, workspace_path)
    qtbot.keyClick(g.view, Qt.Key.Key_A)  # #1 accepted by hand first
    qtbot.mouseClick(g.reject_all, Qt.MouseButton.LeftButton)  # Status = All: every pair shown
    assert set(statuses(workspace_path).values()) == {"pending", "accepted"}  # nothing before the answer
    text = confirm_bulk(g)
    assert "Reject all 5 shown pairs?" in text and "1 of them is accepted now" in text
    assert set(statuses(workspace_path).values()) == {"rejected"}
    g.select(ids[3])
    assert "rejected" in g.detail.text()  # the detail pane follows the bulk decision
    qtbot.keyClick(g.view, Qt.Key.Key_U)  # one undo takes back the whole bulk decision
    assert [statuses(workspace_path)[i] for i in ids] == ["accepted"] + ["pending"] * 4
    qtbot.keyClick(g.view, Qt.Key.Key_U)  # then the accept before it
    assert set(statuses(workspace_path).values()) == {"pending"}
    qtbot.keyClick(g.view, Qt.Key.Key_U)  # nothing more to undo: nothing changes, nothing breaks
    assert set(statuses(workspace_path).values()) == {"pending"}


def test_answering_no_to_the_bulk_confirmation_changes_nothing(qtbot, make_window, workspace_path):
    w, g, ids = _gallery(qtbot, make_window, workspace_path)
    g.strategy_box.setCurrentText("multi")
    qtbot.mouseClick(g.accept_all, Qt.MouseButton.LeftButton)
    assert "Accept all 2 shown pairs?" in confirm_bulk(g, "no")
    assert set(statuses(workspace_path).values()) == {"pending"}
    assert not g.undo_button.isEnabled()


def test_review_reopens_at_the_first_pending_pair_with_its_buttons_enabled(qtbot, make_window, workspace_path):
    w, g, ids = _gallery(qtbot, make_window, workspace_path)
    for _ in range(2):
        qtbot.keyClick(g.view, Qt.Key.Key_A)
    w.close()
    w2 = make_window(workspace_path)
    w2.tabs.setCurrentWidget(w2.gallery)
    g2 = w2.gallery
    assert g2.current_id() == ids[2]  # the first pair still to judge
    assert g2.count_label.text() == "5 of 5 pairs shown (3 pending, 2 accepted)"
    assert g2.accept_button.isEnabled() and g2.reject_button.isEnabled() and g2.reject_all.isEnabled()
    g2.view.setFocus()
    qtbot.keyClick(g2.view, Qt.Key.Key_R)
    assert statuses(workspace_path)[ids[2]] == "rejected"


def test_who_decided_gate_person_or_cli_and_the_quality_note(qtbot, make_window, workspace_path):
    ids = add_pairs(workspace_path)  # qualities 0.5 .. 0.9
    with Workspace(workspace_path, create=False) as ws, ws.session() as s, s.begin():
        s.execute(update(m.Job).values(params={"renderer": "copypaste", "min_quality": 0.6,
                                               "quality_checkpoint": str(ws.path / "runs" / "seg1" / "ckpt.pt")}))
        s.execute(update(m.GeneratedPair).where(m.GeneratedPair.id == ids[0]).values(status="rejected"))
    assert main(["review", "--workspace", str(workspace_path), "--reject", str(ids[4])]) == 0
    w = make_window(workspace_path)
    g = w.gallery
    g.select(ids[0])
    assert "decided by the quality gate at 0.60 (seg1): score 0.50 is below it" in g.detail.text()
    g.select(ids[4])
    assert "decided by a person, with segbalance review" in g.detail.text()
    g.select(ids[1])
    assert "decided by nobody yet" in g.detail.text()
    g.view.setFocus()
    g.select(ids[0])
    qtbot.keyClick(g.view, Qt.Key.Key_A)  # a person overrides the gate
    g.select(ids[0])
    assert "accepted</b> — decided by you, in the app" in g.detail.text()
    qtbot.keyClick(g.view, Qt.Key.Key_U)
    assert "decided by the quality gate at 0.60" in g.detail.text()  # undo gives the gate its word back


def test_unscored_pairs_say_the_gate_was_off_and_the_gated_job_summary():
    assert gate_summary(50, 50, 0.3).startswith("50 of 50 new pairs rejected by the quality gate at 0.30")
    assert gate_summary(50, 3, 0.3) == "3 of 50 new pairs rejected by the quality gate at 0.30"
    assert gate_summary(50, 0, None) is None


def test_filter_by_job_and_sort_by_quality(qtbot, make_window, workspace_path):
    first = add_pairs(workspace_path, 3)
    second = add_pairs(workspace_path, 2)
    w = make_window(workspace_path)
    g = w.gallery
    g.job_box.setCurrentIndex(2)  # the second job
    assert g.shown_ids() == second
    g.job_box.setCurrentIndex(0)
    g.sort_box.setCurrentText("Quality, highest first")  # 0.5, 0.6, 0.7 then 0.5, 0.6
    assert g.shown_ids() == [first[2], first[1], second[1], first[0], second[0]]
    g.sort_box.setCurrentText("Quality, lowest first")
    assert g.shown_ids()[:2] == [first[0], second[0]]


def test_hold_space_flips_to_the_label_in_place_and_side_by_side_keeps_both(qtbot, make_window, workspace_path):
    w, g, ids = _gallery(qtbot, make_window, workspace_path)
    pv = g.pair_view
    qtbot.waitUntil(lambda: not pv.shown_pixmap().isNull(), timeout=5000)
    zoom = pv.canvas.zoom()
    image = pv.shown_pixmap().toImage()
    qtbot.keyPress(g.view, Qt.Key.Key_Space)
    assert pv.shown_pixmap().toImage() != image and pv.canvas.zoom() == zoom  # same place, same zoom
    qtbot.keyRelease(g.view, Qt.Key.Key_Space)
    assert pv.shown_pixmap().toImage() == image
    qtbot.keyClick(g.view, Qt.Key.Key_4)
    assert pv.mode == "side" and pv.shown_pixmap().width() == 2 * 64  # image | label map
    fitted = pv.canvas.zoom()
    qtbot.keyClick(g.view, Qt.Key.Key_Plus, Qt.KeyboardModifier.ShiftModifier)  # "+" is Shift+= on US keyboards
    assert pv.canvas.zoom() > fitted * 1.1


def test_many_sources_do_not_shrink_the_preview(qtbot, make_window, workspace_path):
    ids = add_pairs(workspace_path)
    with Workspace(workspace_path, create=False) as ws, ws.session() as s, s.begin():
        s.execute(update(m.GeneratedPair).where(m.GeneratedPair.id == ids[1])
                  .values(source_samples=[f"aachen_{i:06d}_000019" for i in range(40)]))
    w = make_window(workspace_path)
    w.resize(1366, 768)
    w.tabs.setCurrentWidget(w.gallery)
    g = w.gallery
    qtbot.waitUntil(lambda: not g.pair_view.shown_pixmap().isNull(), timeout=5000)
    h0 = g.pair_view.canvas.height()
    g.select(ids[1])
    qtbot.wait(50)
    assert g.pair_view.canvas.height() == h0
    assert "and 36 more" in g.pair_view.sources.text()
