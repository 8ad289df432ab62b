"""A layout that holds and the habits users bring (issue 18): the window never widens itself for long text,
the editor's Save stays visible at 1366x768, Ctrl+Y redoes, tool keys work window-wide, a blank editor says
how to open a map, and status tips carry no stray mnemonic ampersands."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import wait_for_stats


def _editor(qtbot, w, tiny_dataset):
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    host = w.tabs.widget(2)
    qtbot.waitUntil(lambda: host.inner is not None and w.browser.current_ref() is not None, timeout=10_000)
    return host.inner


def test_the_main_window_keeps_its_width_after_a_long_status_message(qtbot, make_window, workspace_path):
    w = make_window(workspace_path)
    for size in ((1366, 768), (1920, 1080)):
        w.resize(*size)
        QApplication.processEvents()
        width = w.width()
        assert width == size[0]
        w.status.set_jobs(["Generate (copypaste) on " + "a-very-long-dataset-name/" * 20])
        w.status.showMessage("Export: " + "x" * 600)
        w.show_error("Generate", "pix2pixhd needs a generator checkpoint; " + "y" * 600)
        w.state.message.emit("Saved revision 12 of " + "z" * 600)
        QApplication.processEvents()
        assert w.width() == width and w.minimumSizeHint().width() <= size[0]
        assert "…" not in w.status.job_label.text() and w.status.job_label.toolTip()  # the full text stays readable
        w.status.set_jobs([])


def test_editor_save_stays_visible_at_1366_and_a_blank_editor_says_ctrl_l(qtbot, make_window, workspace_path,
                                                                         tiny_dataset):
    w = make_window(workspace_path)
    w.resize(1366, 768)
    ed = _editor(qtbot, w, tiny_dataset)
    w.tabs.setCurrentIndex(2)
    QApplication.processEvents()
    assert "Ctrl+L" in ed.status.text()  # blank editor: how to open a map
    for action in (ed.save_action, ed.export_action, ed.paste_action, ed.fit_action):
        button = ed.actions_toolbar.widgetForAction(action)
        assert button is not None and button.isVisible(), action.text()
    assert w.width() == 1366


def test_ctrl_y_redoes_and_tool_keys_work_with_focus_anywhere_in_the_window(qtbot, make_window, workspace_path,
                                                                           tiny_dataset):
    w = make_window(workspace_path)
    ed = _editor(qtbot, w, tiny_dataset)
    assert w.edit_current_sample()
    w.tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: ed.edit is not None, timeout=5000)
    lines: list[str] = []
    w.state.message.connect(lines.append)
    before = ed.edit.label.copy()
    ed.edit.fill_rect(26, (2, 2), (12, 10))  # a car rectangle, recorded for undo like a drawn one
    after = ed.edit.label.copy()
    assert (after != before).any()
    w.dataset_box.setFocus()  # focus outside the editor
    QApplication.processEvents()
    qtbot.keyClick(w.dataset_box, Qt.Key.Key_E)  # eraser, though the editor has no focus
    assert ed.canvas.tool == "eraser"
    qtbot.keyClick(w.dataset_box, Qt.Key.Key_B)
    assert ed.canvas.tool == "brush"
    qtbot.keyClick(w.dataset_box, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (ed.edit.label == before).all()
    qtbot.keyClick(w.dataset_box, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)  # redo, as in labelme
    assert (ed.edit.label == after).all()
    assert "Ctrl+Y" in [k.toString() for k in ed.redo_action.shortcuts()]
    qtbot.keyClick(w.dataset_box, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert any(line.startswith("Saved revision 1 of tiny_") for line in lines)  # said in the status bar
    assert "Saved revision 1" in w.log_view.toPlainText()


def test_status_tips_have_no_stray_ampersand(qtbot, make_window):
    w = make_window()
    assert w.actions.about.statusTip() == "About segbalance"
    assert all("&" not in a.statusTip() for a in vars(w.actions).values())


def test_every_tab_fits_a_1366x768_screen(qtbot, make_window, workspace_path, tiny_dataset):
    w = make_window(workspace_path)
    _editor(qtbot, w, tiny_dataset)  # dataset open: every tab holds its real panel
    w.resize(1366, 768)
    for i in range(w.tabs.count()):
        w.tabs.setCurrentIndex(i)
        QApplication.processEvents()
        assert w.size().toTuple() == (1366, 768), w.tabs.tabText(i)
    hint = w.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 768


def test_palette_class_names_are_not_cut_and_the_histogram_scrolls_rather_than_overlaps(qtbot, make_window,
                                                                                       workspace_path, tiny_dataset):
    w = make_window(workspace_path)
    ed = _editor(qtbot, w, tiny_dataset)
    w.resize(1366, 768)
    w.tabs.setCurrentIndex(2)
    QApplication.processEvents()
    lst = ed.palette.list
    fm = lst.fontMetrics()
    longest = max(fm.horizontalAdvance(lst.item(i).text()) for i in range(lst.count()))
    assert lst.viewport().width() >= longest + 30  # checkbox and swatch beside the full name
    h = w.histogram
    rows = len(h.bar_names())
    assert h.plot.height() >= 15 * rows  # one readable row per class, scrolled when the dock is short
