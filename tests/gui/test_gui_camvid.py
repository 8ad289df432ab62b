"""Real CamVid frames in the app: the browser lists SegNet's splits, the histogram shows CamVid's 11 classes."""

from __future__ import annotations

import numpy as np

from tests.gui.conftest import wait_for_stats


def test_camvid_folder_opens_in_the_browser_and_histogram(qtbot, window, camvid_sample, tmp_path):
    window.add_dataset(camvid_sample)
    wait_for_stats(qtbot, window, timeout=60_000)
    b, h, stats = window.browser, window.histogram, window.state.stats
    assert b.visible_count() == 28 and b.count_label.text() == "28 samples"
    b.set_split_filter("test")
    assert b.visible_count() == 6
    b.set_split_filter(None)
    b.set_class_filter("bicyclist")
    assert 0 < b.visible_count() < 28
    b.set_class_filter(None)
    ls = stats.label_set
    assert ls.name == "camvid"
    names = h.bar_names()
    assert names == [c.name for c in ls.train_classes] and "unlabelled" not in names and len(names) == 11
    expected = stats.train_pixels() / stats.train_pixels().sum()
    assert np.allclose(h.bar_values(), expected)
    bicyclist = names.index("bicyclist")
    assert h.bars.opts["brushes"][bicyclist].color().getRgb()[:3] == (0, 128, 192)  # SegNet's palette
    # a look at it, for the person reviewing the change
    window.resize(1366, 768)
    qtbot.wait(50)
    assert window.grab().save(str(tmp_path / "camvid.png"))
