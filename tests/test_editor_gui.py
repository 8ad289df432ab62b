"""The label-map editor widget as a user drives it: mouse strokes, keys, live render, save, add pair."""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.editing.revisions import load_working
from segbalance.core.io import read_label_png, read_png
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from segbalance.desktop_app.editor import LabelEditor
from tests.test_editor_revisions import make_cityscapes

pytestmark = pytest.mark.gui
CAR, ROAD, SKY, PERSON = 26, 7, 23, 24


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("SEGBALANCE_GUI_SETTINGS", str(tmp_path / "settings" / "gui.ini"))


@pytest.fixture
def setup(tmp_path, qtbot):
    root = make_cityscapes(tmp_path / "ds", n=2, size=(96, 64))
    ds = open_dataset(root)
    ws = Workspace(tmp_path / "ws")
    ed = LabelEditor(ws, CITYSCAPES)
    qtbot.addWidget(ed)
    ed.resize(900, 500)
    ed.show()
    qtbot.waitExposed(ed)
    ref = ds.samples("train")[0]
    ed.open_sample(ds, ref)
    ed.canvas.set_view(1.0, (0, 0))  # widget pixel == map pixel
    yield ed, ws, ds, ref
    ed.close()
    ws.close()


def mouse(widget, kind, x, y, button=Qt.MouseButton.LeftButton):
    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    p = QPointF(x + 0.5, y + 0.5)
    buttons = Qt.MouseButton.NoButton if kind == "release" else button
    ev = QMouseEvent(types[kind], p, widget.mapToGlobal(p), Qt.MouseButton.NoButton if kind == "move" else button,
                     buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(widget, points):
    mouse(widget, "press", *points[0])
    for p in points[1:]:
        mouse(widget, "move", *p)
    mouse(widget, "release", *points[-1])


def test_brush_stroke_changes_exactly_the_expected_pixels_and_autosaves(setup, qtbot):
    ed, ws, _ds, _ref = setup
    before = ed.edit.label.copy()
    ed.set_class(CAR)
    ed.shape_box.setCurrentText("square")
    ed.size_spin.setValue(5)
    drag(ed.canvas, [(20, 40), (30, 40), (45, 40)])
    expected = before.copy()
    expected[38:43, 18:48] = CAR
    assert np.array_equal(ed.edit.label, expected)
    assert len(ed.edit.undo_stack) == 1
    assert ed.flush_autosave()
    saved = load_working(ws, ed.source)
    assert saved is not None and np.array_equal(saved[0], expected)  # autosaved after the stroke


def test_keys_size_hotkeys_undo_redo(setup, qtbot):
    ed, _ws, _ds, _ref = setup
    ed.canvas.setFocus()
    qtbot.keyClick(ed.canvas, Qt.Key.Key_3)
    assert ed.canvas.class_id == CITYSCAPES.class_named("building").id
    size = ed.canvas.brush_size
    qtbot.keyClick(ed.canvas, Qt.Key.Key_BracketRight)
    assert ed.canvas.brush_size > size and ed.size_spin.value() == ed.canvas.brush_size
    qtbot.keyClick(ed.canvas, Qt.Key.Key_BracketLeft)
    assert ed.canvas.brush_size == size
    before = ed.edit.label.copy()
    drag(ed.canvas, [(10, 30), (60, 50)])
    after = ed.edit.label.copy()
    assert not np.array_equal(before, after)
    qtbot.keyClick(ed.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ed.edit.label.tobytes() == before.tobytes()
    ed.redo_action.trigger()
    assert ed.edit.label.tobytes() == after.tobytes()
    qtbot.keyClick(ed.canvas, Qt.Key.Key_E)  # eraser
    assert ed.canvas.tool == "eraser"
    drag(ed.canvas, [(5, 5)])
    assert ed.edit.label[5, 5] == CITYSCAPES.ignore_id


def test_a_click_that_focuses_the_canvas_paints_nothing(setup, qtbot):
    """#41 item 11: clicking the canvas to give it the keys leaves no dot and no undo step; a drag that
    starts with that click paints from where it began, and a click on the focused canvas paints a dot."""
    ed, _ws, _ds, _ref = setup
    ed.activateWindow()
    ed.size_spin.setFocus()
    qtbot.waitUntil(lambda: ed.size_spin.hasFocus(), timeout=2000)
    before = ed.edit.label.copy()
    drag(ed.canvas, [(20, 20)])
    assert ed.canvas.hasFocus()
    assert np.array_equal(ed.edit.label, before) and not ed.edit.undo_stack
    drag(ed.canvas, [(20, 20)])  # focused now: a dot
    assert not np.array_equal(ed.edit.label, before) and len(ed.edit.undo_stack) == 1
    ed.edit.undo()
    ed.size_spin.setFocus()
    qtbot.waitUntil(lambda: ed.size_spin.hasFocus(), timeout=2000)
    ed.set_class(CAR)
    ed.shape_box.setCurrentText("square")
    ed.size_spin.setValue(3)
    drag(ed.canvas, [(20, 40), (30, 40)])  # press unfocused, then drag
    assert (ed.edit.label[39:42, 19:32] == CAR).all() and len(ed.edit.undo_stack) == 1


def test_flood_fill_and_polygon_by_mouse(setup, qtbot):
    ed, _ws, _ds, _ref = setup
    before = ed.edit.label.copy()
    ed.set_class(PERSON)
    ed.set_tool("fill")
    drag(ed.canvas, [(50, 5)])  # the sky band
    expected = before.copy()
    expected[before == SKY] = PERSON
    assert np.array_equal(ed.edit.label, expected)

    ed.set_class(CAR)
    ed.set_tool("polygon")
    for p in [(30, 30), (60, 30), (60, 50), (30, 50)]:
        mouse(ed.canvas, "press", *p)
        mouse(ed.canvas, "release", *p)
    ed.canvas.setFocus()
    qtbot.keyClick(ed.canvas, Qt.Key.Key_Return)
    expected[30:51, 30:61] = CAR
    assert np.array_equal(ed.edit.label, expected)
    assert len(ed.edit.undo_stack) == 2


def test_only_over_constraint_and_status_shows_class_under_cursor(setup, qtbot):
    ed, _ws, _ds, _ref = setup
    before = ed.edit.label.copy()
    ed.only_over_box.setCurrentIndex(ed.only_over_box.findData(ROAD))
    ed.set_class(CAR)
    ed.set_tool("rect")
    drag(ed.canvas, [(0, 0), (95, 63)])
    assert np.array_equal(ed.edit.label == CAR, before == ROAD)
    mouse(ed.canvas, "move", 10, 3, Qt.MouseButton.NoButton)
    assert "sky" in ed.status.text() and "(10, 3)" in ed.status.text()


def test_hidden_class_is_transparent_in_overlay(setup):
    ed, _ws, _ds, _ref = setup
    item = ed.palette.list.item([c.id for c in ed.palette.classes].index(SKY))
    item.setCheckState(Qt.CheckState.Unchecked)
    assert ed.canvas._overlay_buf[0, 0, 3] == 0 and ed.canvas._overlay_buf[-1, 0, 3] == 255


def test_save_revision_leaves_original_untouched(setup):
    ed, ws, ds, ref = setup
    digest = hashlib.sha256(ref.label_path.read_bytes()).hexdigest()
    ed.set_class(CAR)
    drag(ed.canvas, [(20, 40), (50, 40)])
    rid = ed.save_revision()
    assert rid is not None
    with ws.session() as s:
        rev = s.get(m.Revision, rid)
    assert hashlib.sha256(ref.label_path.read_bytes()).hexdigest() == digest
    assert np.array_equal(read_label_png(ws.abs(rev.label_path)), ed.edit.label)
    assert rev.label_path.endswith("_gtFine_labelIds.png")


class FakeRenderer:
    """Colors the label map with the label set palette, slowly, and records what it was asked."""

    label_nc = 35

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.calls = 0
        self.threads: set[str] = set()

    def render(self, label, instance=None):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return CITYSCAPES.palette[label]


def test_live_render_appears_after_a_stroke_and_latest_wins(setup, qtbot):
    ed, ws, _ds, _ref = setup
    fake = FakeRenderer()
    assert ed.render_pane.set_renderer(fake, "fake")
    ed._request_render()
    qtbot.waitUntil(lambda: ed.render_pane.last_image is not None, timeout=5000)
    ed.set_class(CAR)
    for i in range(5):  # quick strokes: debounced, only the last state must be shown
        drag(ed.canvas, [(10 + 10 * i, 40)])
    qtbot.waitUntil(lambda: ed.render_pane.is_current(), timeout=5000)
    assert np.array_equal(ed.render_pane.last_image, CITYSCAPES.palette[ed.edit.label])
    assert fake.calls < 1 + 5  # debounce merged strokes
    assert threading.main_thread().name not in fake.threads
    assert "ms" in ed.render_pane.time_label.text()

    pid = ed.add_to_workspace()
    assert pid is not None
    with ws.session() as s:
        pair = s.get(m.GeneratedPair, pid)
        job = s.get(m.Job, pair.job_id)
    assert pair.strategy == "manual" and job.kind == "manual"
    assert np.array_equal(read_label_png(ws.abs(pair.label_path)), ed.edit.label)
    assert np.array_equal(read_png(ws.abs(pair.image_path), color=True), CITYSCAPES.palette[ed.edit.label])
    assert CAR in pair.classes_added


def test_checkpoint_not_matching_label_set_is_explained(setup):
    ed, _ws, _ds, _ref = setup
    bad = FakeRenderer()
    bad.label_nc = 12
    assert not ed.render_pane.set_renderer(bad, "tiny.pth")
    assert "does not match" in ed.render_pane.message and "12" in ed.render_pane.message
    assert not ed.render_pane.add_btn.isEnabled()


def test_unreadable_checkpoint_is_explained(setup, qtbot, tmp_path):
    ed, _ws, _ds, _ref = setup
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    ed.render_pane.load_checkpoint(junk)
    qtbot.waitUntil(lambda: "Cannot render" in ed.render_pane.message, timeout=20000)


def test_paste_layer_move_scale_then_drop(setup, qtbot):
    ed, _ws, _ds, _ref = setup
    before = ed.edit.label.copy()
    mask = np.zeros((6, 4), bool)
    mask[1:5, 1:3] = True  # a 4x2 region inside a 6x4 crop
    ed.start_paste(mask, PERSON)
    assert ed.canvas.tool == "paste" and "Enter drops" in ed.status.text()
    x0, y0 = ed.canvas.paste_pos
    drag(ed.canvas, [(x0 + 1, y0 + 1), (x0 + 6, y0 + 11), (x0 + 11, y0 + 21)])  # move by (+10, +20)
    assert ed.canvas.paste_pos == (x0 + 10, y0 + 20)
    assert (ed.edit.label == before).all()  # nothing written before the drop
    qtbot.keyClick(ed.canvas, Qt.Key.Key_Plus)
    ed.canvas.set_paste_scale(2.0)
    qtbot.keyClick(ed.canvas, Qt.Key.Key_Return)
    expected = before.copy()
    expected[y0 + 20 + 2 : y0 + 20 + 10, x0 + 10 + 2 : x0 + 10 + 6] = PERSON
    assert np.array_equal(ed.edit.label, expected)
    assert np.unique(ed.edit.instance[ed.edit.label == PERSON]).tolist() == [PERSON * 1000]
    ed.canvas.undo()
    assert np.array_equal(ed.edit.label, before)


def test_edit_a_generated_pair_as_a_revision(setup, qtbot):
    ed, ws, _ds, _ref = setup
    from segbalance.core.jobs.manual import add_manual_pair

    lab = np.full((32, 48), ROAD, np.uint8)
    pid = add_manual_pair(ws, lab, CITYSCAPES.palette[lab])
    ed.open_pair(pid)
    ed.canvas.set_view(1.0, (0, 0))
    ed.set_class(CAR)
    ed.set_tool("rect")
    drag(ed.canvas, [(2, 2), (5, 5)])
    rid = ed.save_revision()
    with ws.session() as s:
        rev = s.get(m.Revision, rid)
        pair = s.get(m.GeneratedPair, pid)
    assert rev.pair_id == pid and rev.changed_pixels == 16
    assert (read_label_png(ws.abs(pair.label_path)) == ROAD).all()  # the pair's own file is untouched


def test_long_sessions_survive_this_pyside_builds_refcount_leak(tmp_path):
    """200k void Qt calls (a long editing session) must not abort the interpreter ("deallocating None")."""
    import os
    import subprocess
    import sys

    code = (
        "import desktop_app\n"
        "from PySide6.QtWidgets import QApplication, QWidget\n"
        "app = QApplication([]); w = QWidget()\n"
        "for _ in range(200_000): w.update()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-500:]


def test_render_overtaken_by_a_newer_request_is_dropped(qtbot):
    from segbalance.desktop_app.editor.render_pane import RenderPane

    pane = RenderPane(CITYSCAPES)
    qtbot.addWidget(pane)
    slow = FakeRenderer(delay=0.4)
    pane.set_renderer(slow, "slow")
    a = np.full((16, 16), ROAD, np.uint8)
    b = np.full((16, 16), CAR, np.uint8)
    pane.request(a, None, 1)
    qtbot.waitUntil(lambda: pane._running, timeout=3000)  # A is rendering
    pane.request(b, None, 2)  # B arrives meanwhile
    qtbot.waitUntil(lambda: pane.renders_done == 1 and not pane._running, timeout=5000)
    assert pane.stale_dropped == 1 and slow.calls == 2
    assert pane.last_revision == 2 and (pane.last_image == CITYSCAPES.palette[CAR]).all()
    assert pane.is_current()
