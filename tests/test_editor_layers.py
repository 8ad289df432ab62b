"""Manual recombination in the editor: pick a class, browse its layers from the layer bank, place one."""

from __future__ import annotations

import numpy as np
import pytest

from segbalance.core.datasets import open_dataset
from segbalance.core.workspace import Workspace
from segbalance.desktop_app.editor import LabelEditor

pytestmark = pytest.mark.gui


def test_pick_a_layer_from_the_bank_and_drop_it(sample_dataset, tmp_path, qtbot):
    from PySide6.QtCore import Qt

    ds = open_dataset(sample_dataset)
    ws = Workspace(tmp_path / "ws")
    ed = LabelEditor(ws, ds.label_set)
    qtbot.addWidget(ed)
    ed.show()
    ref = ds.samples("train")[0]
    ed.open_sample(ds, ref)
    before = ed.edit.label.copy()

    ed.open_layer_picker()
    picker = ed.picker
    qtbot.addWidget(picker)
    qtbot.waitUntil(lambda: picker.bank is not None, timeout=60000)
    car = ds.label_set.class_named("car").id
    picker.select_class(car)
    assert picker.class_box.currentData() == car
    qtbot.waitUntil(lambda: picker.list.count() > 0 and picker.class_box.currentData() == car, timeout=20000)
    assert picker.list.count() > 0
    icon = picker.list.item(0).icon()
    assert not icon.isNull()
    picker.list.setCurrentRow(0)
    row = int(picker.list.item(0).data(Qt.ItemDataRole.UserRole))
    mask = picker.bank.mask(row)
    picker.place()
    assert ed.canvas.tool == "paste" and ed.canvas.paste_class == car
    x, y = ed.canvas.paste_pos
    ed.canvas.setFocus()
    qtbot.keyClick(ed.canvas, Qt.Key.Key_Return)

    h, w = before.shape
    expected = before.copy()
    mh, mw = mask.shape
    ys, xs = np.nonzero(mask)
    keep = (ys + y >= 0) & (ys + y < h) & (xs + x >= 0) & (xs + x < w)
    expected[ys[keep] + y, xs[keep] + x] = car
    assert np.array_equal(ed.edit.label, expected)
    # the pasted car is one new instance
    ids = np.unique(ed.edit.instance[ys[keep] + y, xs[keep] + x])
    assert ids.size == 1 and ids[0] // 1000 == car
    ed.close()
    picker.close()
    ws.close()
