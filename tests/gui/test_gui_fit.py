"""Every tab usable at 1366x768 and 1920x1080 (issue 41, items 4-6): every control of each tab is on screen
without scrolling sideways (a form may scroll up and down), the tab's main actions are enabled, the first
window fits the screen it opens on, the wheel scrolls a form instead of changing the combo box under it, and
a GAN run is shown with its own view."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, QSize, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QScrollArea,
    QSlider,
    QToolBar,
    QToolButton,
    QWidget,
)

from segbalance.desktop_app.main_window import first_window_size
from tests.gui.conftest import wait_for_stats
from tests.gui.test_gui_review import add_pairs

CONTROLS = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QSlider)


def _in_scroll_area(w: QWidget, top: QWidget) -> bool:
    p = w.parentWidget()
    while p is not None and p is not top:
        if isinstance(p, QScrollArea):
            return True
        p = p.parentWidget()
    return False


def cut_off(window, tab: QWidget) -> list[str]:
    """Controls of the tab not wholly on screen: cut sideways anywhere, or cut up/down outside a scroll area."""
    out = []
    for c in tab.findChildren(QWidget):
        if not isinstance(c, CONTROLS) or not c.isVisibleTo(tab) or isinstance(c.parentWidget(), CONTROLS):
            continue
        r = QRect(c.mapTo(window, QPoint(0, 0)), c.size())
        x0, x1, y0, y1 = r.left(), r.right(), r.top(), r.bottom()  # clipped per axis by every ancestor
        p = c.parentWidget()
        while p is not None:
            a = QRect(p.mapTo(window, QPoint(0, 0)), p.size()) if p is not window else window.rect()
            x0, x1, y0, y1 = max(x0, a.left()), min(x1, a.right()), max(y0, a.top()), min(y1, a.bottom())
            if p is window:
                break
            p = p.parentWidget()
        sideways = x1 - x0 + 1 < c.width()
        vertical = y1 - y0 + 1 < c.height() and not _in_scroll_area(c, tab)
        r = QRect(x0, y0, max(0, x1 - x0 + 1), max(0, y1 - y0 + 1))
        if sideways or vertical:
            out.append(f"{type(c).__name__} {c.objectName() or getattr(c, 'text', lambda: '')()!r} "
                       f"shows {r.width()}x{r.height()} of {c.width()}x{c.height()}")
    return out


def overflowing_toolbars(tab: QWidget) -> list[str]:
    """Toolbars whose last items hide behind the overflow button (hidden controls pass cut_off's test)."""
    out = []
    for tb in tab.findChildren(QToolBar):
        ext = tb.findChild(QToolButton, "qt_toolbar_ext_button")
        if tb.isVisibleTo(tab) and ext is not None and ext.isVisibleTo(tab):
            out.append(f"toolbar {[a.text() for a in tb.actions()]} overflows")
    return out


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_every_control_of_each_tab_is_on_screen_and_its_main_actions_enabled(qtbot, make_window, workspace_path,
                                                                             tiny_dataset, size):
    add_pairs(workspace_path)
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    w.resize(*size)
    QApplication.processEvents()
    assert w.size() == QSize(*size) and w.minimumSizeHint().width() <= size[0]
    for i in range(w.tabs.count()):
        w.tabs.setCurrentIndex(i)
        qtbot.wait(50)
        tab = w.tabs.currentWidget()
        assert cut_off(w, tab) == [], w.tabs.tabText(i)
        assert overflowing_toolbars(tab) == [], w.tabs.tabText(i)
    g = w.gallery
    assert all(b.isEnabled() for b in (g.accept_button, g.reject_button, g.accept_all, g.reject_all))
    training = w.tabs.widget(w._tab_with("start_run")).inner
    assert training.dataset_box.currentText() == str(tiny_dataset)  # never an empty dataset field
    assert training.start_btn.isEnabled() and training.start_btn.isVisible()
    assert w.generation.train_button.isVisible() and w.balance.isVisible()


def test_the_first_window_fits_the_screen_it_opens_on(make_window, workspace_path):
    assert first_window_size(QSize(1366, 740)) == QSize(1366, 740)  # a laptop: its whole available area
    assert first_window_size(QSize(2560, 1400)) == QSize(1400, 900)
    w = make_window(workspace_path)
    avail = w.screen().availableGeometry().size()  # the offscreen test screen is smaller than the window's minimum
    want = first_window_size(avail).expandedTo(w.minimumSizeHint())
    assert w.size() == want


def test_the_wheel_scrolls_the_training_form_and_leaves_an_unfocused_combo_alone(qtbot, make_window,
                                                                                 workspace_path, tiny_dataset):
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    w.resize(1366, 768)
    w.tabs.setCurrentIndex(w._tab_with("start_run"))
    QApplication.processEvents()
    panel = w.tabs.currentWidget().inner
    bar = panel.form_scroll.verticalScrollBar()
    assert bar.maximum() > 0  # the form is taller than its column at 1366x768
    box = panel.backbone_box
    before, scrolled = box.currentText(), bar.value()
    pos = QPointF(box.width() / 2, box.height() / 2)
    ev = QWheelEvent(pos, box.mapToGlobal(pos), QPoint(0, 0), QPoint(0, -120), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(box, ev)
    assert box.currentText() == before  # the backbone did not change under the wheel
    assert bar.value() > scrolled  # the form scrolled instead


def test_preset_targets_and_the_training_form_come_back_after_relaunch(qtbot, make_window, workspace_path,
                                                                      tiny_dataset):
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    panel = w.tabs.widget(w._tab_with("start_run")).inner
    panel.iters_spin.setValue(321)
    panel.backbone_box.setCurrentText("resnet34")
    panel.command_override = ("true", [])
    assert panel.start_run()
    qtbot.waitUntil(lambda: not panel.process.running, timeout=10_000)
    w.close()
    w2 = make_window(workspace_path)
    wait_for_stats(qtbot, w2)
    p2 = w2.tabs.widget(w2._tab_with("start_run")).inner
    assert p2.iters_spin.value() == 321 and p2.backbone_box.currentText() == "resnet34"
    assert p2.dataset_box.currentText() == str(tiny_dataset)
