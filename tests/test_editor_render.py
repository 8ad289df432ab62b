"""Live rendering with a real (tiny) pix2pixHD checkpoint trained by `segbalance train-gan`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.labels import LabelClass, LabelSet
from segbalance.core.io import read_png
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from segbalance.desktop_app.editor import LabelEditor
from segbalance.desktop_app.editor.render_pane import RenderPane

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_gan(tmp_path_factory):
    """(dataset, checkpoint): 8 procedural 64x32 maps and a 2-iteration tiny-preset pix2pixHD."""
    from segbalance.core.datasets.sample import make_sample_dataset

    base = tmp_path_factory.mktemp("gan")
    ds = make_sample_dataset(base / "ds", n_train=8, n_val=2, size=(64, 32), seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "segbalance.core.cli", "train-gan", str(ds), "--workspace", str(base / "ws"), "--out",
         str(base / "ck"), "--iters", "2", "--size", "64x32", "--threads", "1", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-800:]
    return Path(ds), base / "ck" / "ckpt.pt"


def _click(widget, x, y):
    p = QPointF(x + 0.5, y + 0.5)
    for kind, buttons in ((QEvent.Type.MouseButtonPress, Qt.MouseButton.LeftButton),
                          (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):
        QApplication.sendEvent(widget, QMouseEvent(kind, p, widget.mapToGlobal(p), Qt.MouseButton.LeftButton,
                                                   buttons, Qt.KeyboardModifier.NoModifier))


def test_live_render_appears_after_a_stroke_with_a_tiny_checkpoint(tiny_gan, tmp_path, qtbot):
    import torch

    torch.set_num_threads(1)
    root, ckpt = tiny_gan
    ds = open_dataset(root)
    ws = Workspace(tmp_path / "ws")
    ed = LabelEditor(ws, ds.label_set)
    qtbot.addWidget(ed)
    ed.show()
    ed.open_sample(ds, ds.samples("train")[0])
    ed.canvas.set_view(4.0, (0, 0))
    pane = ed.render_pane
    pane.load_checkpoint(ckpt, device="cpu")
    qtbot.waitUntil(lambda: pane.renderer is not None or "Cannot" in pane.message, timeout=60000)
    assert pane.renderer is not None, pane.message
    qtbot.waitUntil(pane.is_current, timeout=30000)  # the opened map is rendered once loaded
    first = pane.renders_done

    ed.set_class(ds.label_set.class_named("car").id)
    ed.size_spin.setValue(9)
    ed.activateWindow()
    ed.canvas.setFocus()  # a click that only gives the canvas focus paints nothing (#41): this one has it
    qtbot.waitUntil(ed.canvas.hasFocus, timeout=5000)
    _click(ed.canvas, 4 * 20, 4 * 16)  # a dab at map pixel (20, 16)
    assert ed.edit.label[16, 20] == ds.label_set.class_named("car").id
    qtbot.waitUntil(lambda: pane.renders_done > first and pane.is_current(), timeout=30000)
    img = pane.last_image
    assert img.shape == (*ed.edit.label.shape, 3) and img.dtype == np.uint8
    assert pane.last_revision == ed.edit.revision
    assert pane.time_label.text().startswith("rendered in")
    assert pane.add_btn.isEnabled()

    pid = ed.add_to_workspace()
    with ws.session() as s:
        pair = s.get(m.GeneratedPair, pid)
    assert pair.strategy == "manual" and pair.checkpoint_sha256 == pane.checkpoint_sha256 is not None
    assert np.array_equal(read_png(ws.abs(pair.image_path), color=True), img)
    ed.close()
    ws.close()


def test_checkpoint_for_another_label_set_is_refused_with_the_reason(tiny_gan, qtbot):
    _root, ckpt = tiny_gan
    wide = LabelSet(name="wide", classes=tuple(LabelClass(id=i, name=f"c{i}", train_id=i, color=(i, i, i))
                                               for i in range(41)))
    pane = RenderPane(wide)
    qtbot.addWidget(pane)
    pane.load_checkpoint(ckpt, device="cpu")
    qtbot.waitUntil(lambda: "Cannot render" in pane.message, timeout=60000)
    assert "does not match label set 'wide'" in pane.message and "35 label channels" in pane.message
    assert pane.renderer is None and not pane.add_btn.isEnabled()


def test_a_wrong_checkpoint_is_said_once_and_the_working_renderer_stays(tiny_gan, tmp_path, qtbot):
    root, ckpt = tiny_gan
    ds = open_dataset(root)
    pane = RenderPane(ds.label_set)
    qtbot.addWidget(pane)
    pane.load_checkpoint(ckpt, device="cpu")
    qtbot.waitUntil(lambda: pane.renderer is not None or "Cannot" in pane.message, timeout=60000)
    working = pane.renderer
    assert working is not None, pane.message
    bad = tmp_path / "not_a_generator.pt"
    import torch

    torch.save({f"layer{i}.weight": torch.zeros(2) for i in range(40)}, bad)  # a state dict of something else
    pane.load_checkpoint(bad, device="cpu")
    qtbot.waitUntil(lambda: "Not loaded" in pane.message, timeout=60000)
    assert pane.renderer is working  # still rendering with the one that worked
    assert "still rendering with ckpt.pt" in pane.message
    shown = pane.message + "\n" + pane.view.text()
    assert shown.count("layer0.weight") <= 1  # the reason once, not the key list twice
