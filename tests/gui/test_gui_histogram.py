"""Class histogram user stories: one bar per class equal to the stats, modes, hover numbers, click-to-filter."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import TINY_H, TINY_W


def test_one_bar_per_class_with_heights_equal_to_the_stats(qtbot, loaded_window):
    h, stats = loaded_window.histogram, loaded_window.state.stats
    ls = stats.label_set
    assert h.bar_names() == [c.name for c in ls.train_classes]
    assert len(h.bars.opts["width"]) == ls.num_train_classes == 19
    expected = stats.train_pixels() / stats.train_pixels().sum()
    assert np.allclose(h.bar_values(), expected)
    assert np.allclose(h.bars.opts["width"], expected)  # drawn lengths are the shares (linear axis)
    # hand-checked numbers of the tiny dataset: car is 8x20 px in 4 of 8 images
    car = h.bar_names().index("car")
    assert np.isclose(h.bar_values()[car], 4 * 8 * 20 / (8 * TINY_W * TINY_H))
    # colors are the class colors
    brush = h.bars.opts["brushes"][car]
    assert brush.color().getRgb()[:3] == ls.class_named("car").color
    h.mode.setCurrentText("Image frequency")
    assert np.isclose(h.bar_values()[car], 0.5) and np.isclose(h.bar_values()[h.bar_names().index("road")], 1.0)


def test_sort_log_and_split(qtbot, loaded_window):
    h = loaded_window.histogram
    h.sort.setCurrentText("By frequency")
    vals = h.bar_values()
    assert list(vals) == sorted(vals, reverse=True) and h.bar_names()[0] == "road"
    h.log.setChecked(True)
    widths = np.asarray(h.bars.opts["width"])
    x0 = np.asarray(h.bars.opts["x0"])
    nz = vals > 0
    assert np.allclose((x0 + widths)[nz], np.log10(vals[nz]))
    loaded_window.browser.set_split_filter("val")  # histogram follows the browser's split
    assert "split: val" in h.title.text() and h.n_images == 2


def test_hover_shows_exact_numbers_and_click_filters_the_browser(qtbot, loaded_window):
    h, b = loaded_window.histogram, loaded_window.browser
    loaded_window.resize(1400, 900)
    qtbot.wait(50)
    pos = h.bar_scene_pos("car")
    i = h.row_at_scene(pos)
    assert h.bar_names()[i] == "car"
    h._mouse_moved(pos)
    assert h.info.text().startswith("car:") and "640 px" in h.info.text() and "in 4/8 images" in h.info.text()
    # a real click on the bar, through the plot's viewport
    view_pt = h.plot.mapFromScene(pos)
    qtbot.mouseClick(h.plot.viewport(), Qt.MouseButton.LeftButton, pos=view_pt)
    qtbot.waitUntil(lambda: b.class_box.currentText() == "car", timeout=3000)
    assert b.visible_count() == 4


def test_target_and_predicted_overlays(qtbot, loaded_window):
    h = loaded_window.histogram
    loaded_window.state.set_target({"car": 0.2, "person": 0.05})
    xs, _ys = h.target_marks.getData()
    assert sorted(np.round(xs, 6)) == [0.05, 0.2]
    assert h.predicted_values() is None and not h.pred_bars.isVisible()
    h.set_predicted({"car": 0.15, "person": 0.04, "road": 0.3})
    pred = h.predicted_values()
    names = h.bar_names()
    assert np.isclose(pred[names.index("car")], 0.15) and h.pred_bars.isVisible()
    assert "predicted 15.000%" in h.info_for(names.index("car"))


def test_the_selected_bar_is_highlighted_and_a_second_click_clears_the_filter(qtbot, loaded_window):
    h, b = loaded_window.histogram, loaded_window.browser
    loaded_window.resize(1400, 900)
    qtbot.wait(50)

    def click(name):
        qtbot.mouseClick(h.plot.viewport(), Qt.MouseButton.LeftButton, pos=h.plot.mapFromScene(h.bar_scene_pos(name)))

    click("car")
    qtbot.waitUntil(lambda: b.class_box.currentText() == "car", timeout=3000)
    i = h.bar_names().index("car")
    assert h.selected == "car" and h.bars.opts["pens"][i].width() == 3  # the filtered bar stands out
    assert "filter: car" in h.legend.text()
    click("car")  # again: the filter goes
    qtbot.waitUntil(lambda: b.class_box.currentIndex() == 0, timeout=3000)
    assert h.selected is None and b.visible_count() == 8
    assert all(p.width() == 1 for p in h.bars.opts["pens"])


def test_predicted_bars_sit_beside_the_current_ones(qtbot, loaded_window):
    h = loaded_window.histogram
    h.set_predicted({"car": 0.15})
    i = h.bar_names().index("car")
    cur_y = h.bars.opts["y"][i]
    pred_y = h.pred_bars.opts["y"][0]
    assert pred_y - cur_y == pytest.approx(h.bars.opts["height"])  # one row, two separate bars
    assert "lower dark bar: predicted" in h.legend.text()
