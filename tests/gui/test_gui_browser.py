"""Dataset browser and viewer user stories: counts, filters, lazy thumbnails, keys, overlay, cursor."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import TINY_H, TINY_W


def test_browser_lists_every_sample_and_filters_narrow_it(qtbot, loaded_window):
    b = loaded_window.browser
    assert b.visible_count() == 8 and b.count_label.text() == "8 samples"
    b.set_split_filter("val")
    assert b.visible_count() == 2 and all(i in ("tiny_000006_000019", "tiny_000007_000019") for i in b.visible_ids())
    b.set_split_filter(None)
    b.set_class_filter("car")  # cars are in even samples only
    assert b.visible_ids() == [f"tiny_{k:06d}_000019" for k in (0, 2, 4, 6)]
    assert b.count_label.text() == "4 / 8"
    b.set_class_filter("person")
    assert b.visible_ids() == ["tiny_000001_000019"]
    b.set_class_filter(None)
    qtbot.keyClicks(b.search, "00003")
    assert b.visible_ids() == ["tiny_000003_000019"]


def test_thumbnails_render_off_thread_and_are_cached(qtbot, loaded_window):
    b = loaded_window.browser
    loader = b.loader
    qtbot.waitUntil(lambda: all(loader.get(it.key) is not None for it in b.model.items if it.key), timeout=10_000)
    keys = [it.key for it in b.model.items if it.key]
    assert keys, "the view asked for the thumbnails of the items it shows"
    img = loader.get(keys[0])
    assert img.width() <= 160 and img.height() <= 80 and not img.isNull()
    rendered = loader.rendered
    cache_files = list((loaded_window.state.workspace.path / "cache" / "thumbnails").rglob("*.jpg"))
    assert len(cache_files) == rendered
    b.view.viewport().update()  # repaint asks again: served from memory, nothing re-rendered
    qtbot.wait(50)
    assert loader.rendered == rendered


def test_selecting_a_sample_shows_it_and_keys_move_through_the_list(qtbot, loaded_window):
    w, v = loaded_window, loaded_window.viewer
    qtbot.waitUntil(lambda: v.label is not None, timeout=5000)
    assert v.ref.id == "tiny_000000_000019" and "tiny_000000_000019" in v.title.text()
    w.activateWindow()
    w.actions.next_sample.trigger()
    qtbot.waitUntil(lambda: v.ref.id == "tiny_000001_000019" and v.label is not None, timeout=5000)
    qtbot.waitUntil(lambda: v.title.text().startswith("tiny_000001_000019"), timeout=5000)
    w.actions.prev_sample.trigger()
    qtbot.waitUntil(lambda: v.ref.id == "tiny_000000_000019", timeout=5000)
    assert "PgDown" in w.actions.next_sample.shortcut().toString()


def test_viewer_overlay_opacity_toggles_zoom_and_class_under_cursor(qtbot, loaded_window):
    v = loaded_window.viewer
    qtbot.waitUntil(lambda: v.label is not None and v.ref.id == "tiny_000000_000019", timeout=5000)
    names = [v.class_list.item(i).text() for i in range(v.class_list.count())]
    assert set(names) == {"road", "sidewalk", "building", "sky", "car"}
    # class under the cursor, in image pixels
    assert v.class_at(0, 0) == "sky" and v.class_at(15, 24) == "car" and v.class_at(TINY_W - 1, TINY_H - 1) == "road"
    v._hovered(15, 24)
    assert "car" in v.cursor_label.text()
    # hiding a class makes its pixels transparent in the overlay
    car = next(v.class_list.item(i) for i in range(v.class_list.count()) if v.class_list.item(i).text() == "car")
    car.setCheckState(Qt.CheckState.Unchecked)
    img = v.canvas.overlay_item.pixmap().toImage()
    assert img.pixelColor(15, 24).alpha() == 0 and img.pixelColor(0, 0).alpha() == 255
    car.setCheckState(Qt.CheckState.Checked)
    assert v.canvas.overlay_item.pixmap().toImage().pixelColor(15, 24).alpha() == 255
    v.opacity.setValue(20)
    assert abs(v.canvas.overlay_item.opacity() - 0.2) < 1e-6
    # the mouse wheel zooms (one notch = x1.25), dragging pans, fit brings the whole image back into view
    z0 = v.canvas.zoom()
    vp = v.canvas.viewport()
    centre = QPointF(vp.width() / 2, vp.height() / 2)
    wheel = QWheelEvent(centre, vp.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert np.isclose(v.canvas.zoom(), z0 * 1.25**2)
    assert v.canvas.dragMode() == v.canvas.DragMode.ScrollHandDrag
    v.canvas.zoom_by(2.0)
    assert np.isclose(v.canvas.zoom(), 2 * 1.25**2 * z0)
    v.canvas.fit()
    vis = v.canvas.mapToScene(v.canvas.viewport().rect()).boundingRect()
    assert vis.contains(v.canvas.image_item.boundingRect().adjusted(1, 1, -1, -1))
