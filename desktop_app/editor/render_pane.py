"""Live rendering pane: what the loaded pix2pixHD checkpoint makes of the label map being painted.

Renders run on the thread pool; requests are debounced, the latest one wins and a result that a newer
request has overtaken is dropped, so the pane never shows an older map after a newer one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from segbalance.core.datasets.labels import LabelSet
from segbalance.desktop_app.widgets.elided_label import ElidedLabel
from segbalance.desktop_app.workers import start_worker

DEBOUNCE_MS = 150


class Renderer(Protocol):
    """What the pane needs of a renderer (core.render.pix2pixhd.load_renderer returns one)."""

    label_nc: int

    def render(self, label: np.ndarray, instance: np.ndarray | None = None) -> np.ndarray: ...


def renderer_mismatch(renderer: object, label_set: LabelSet) -> str | None:
    """Why `renderer` cannot render this label set's maps (None when it can)."""
    nc = getattr(renderer, "label_nc", None)
    if not isinstance(nc, int) or not callable(getattr(renderer, "render", None)):
        return "not a renderer (needs .label_nc and .render(label, instance))"
    need = label_set.label_nc
    if nc < need:
        return (
            f"checkpoint does not match label set {label_set.name!r}: it takes {nc} label channels "
            f"(ids 0..{nc - 1}) but the label set uses ids up to {need - 1}"
        )
    return None


def load_checkpoint_renderer(path: str, device: str = "auto") -> object:
    """The real pix2pixHD renderer (imported lazily: torch is heavy)."""
    from segbalance.core.render.pix2pixhd import load_renderer

    return load_renderer(path, device=device)


def _render(renderer: Renderer, label: np.ndarray, instance: np.ndarray | None, seq: int, rev: int) -> tuple:
    t0 = time.perf_counter()
    img = renderer.render(label, instance)
    return seq, rev, np.ascontiguousarray(img[..., :3], dtype=np.uint8), time.perf_counter() - t0


class RenderPane(QWidget):
    """Shows the latest rendering of the painted map, its render time, and offers "Add as pair" (a manual pair)."""

    rendered = Signal(object, float)  # RGB image, seconds
    addRequested = Signal()
    rendererChanged = Signal()
    checkpointLoaded = Signal(str)  # path of a checkpoint now in use (the app remembers it per workspace)

    def __init__(self, label_set: LabelSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label_set = label_set
        self.renderer: Renderer | None = None
        self.renderer_name = ""
        self.checkpoint_sha256: str | None = None
        self.start_dir = ""  # where the checkpoint dialog opens (the editor sets the workspace's runs/)
        self.last_image: np.ndarray | None = None
        self.last_revision: int | None = None
        self.last_seconds: float | None = None
        self.renders_done = 0
        self.stale_dropped = 0
        self._pending: tuple | None = None
        self._running = False
        self._seq = 0
        self._requested_rev: int | None = None

        self.title = ElidedLabel("No checkpoint loaded", preferred_width=360)  # the full reason in its tooltip
        self.title.setWordWrap(True)
        self.view = QLabel("Load a pix2pixHD checkpoint to see the label map rendered live.")
        self.view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.view.setMinimumSize(160, 120)
        self.view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.view.setStyleSheet("background:#202020;color:#bbb")
        self.view.setWordWrap(True)
        self.time_label = QLabel("")
        self.load_btn = QPushButton("Checkpoint…")
        self.load_btn.setToolTip("Load a pix2pixHD checkpoint to render the map live")
        self.add_btn = QPushButton("Add as pair")
        self.add_btn.setEnabled(False)
        self.add_btn.setToolTip("Store the painted label map and this rendering as a generated pair (strategy manual)")
        row = QHBoxLayout()
        row.addWidget(self.load_btn)
        row.addWidget(self.time_label, 1)
        row.addWidget(self.add_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        lay.addLayout(row)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._kick)
        self.load_btn.clicked.connect(self._choose_checkpoint)
        self.add_btn.clicked.connect(self.addRequested)

    # -- renderer ------------------------------------------------------------------------------
    def set_renderer(self, renderer: Renderer | None, name: str = "", checkpoint_sha256: str | None = None) -> bool:
        """Use `renderer`; a mismatching one is refused and the pane says why. Returns whether it is in use."""
        if renderer is not None:
            why = renderer_mismatch(renderer, self.label_set)
            if why is not None:
                self._refuse(f"{name}: {why}" if name else why)
                return False
        self.renderer = renderer
        self.renderer_name = name or type(renderer).__name__
        self.checkpoint_sha256 = checkpoint_sha256 or getattr(renderer, "checkpoint_sha256", None)
        self.last_image = None
        self.last_revision = None
        self.title.setText(f"Renderer: {self.renderer_name} ({renderer.label_nc} label channels)" if renderer else "")
        self.title.setStyleSheet("")
        self.title.setToolTip("")
        if renderer is not None:  # the body agrees with the header at once, not after the first edit
            self._qimg = None
            self.view.setPixmap(QPixmap())
            self.view.setText("Rendering the open map…" if self._last_request is not None
                              else "Ready: open a label map (Ctrl+L) and it renders here as you paint.")
            if self._last_request is not None:
                self.request(*self._last_request)
        self._update_add()
        self.rendererChanged.emit()
        return True

    def _refuse(self, why: str) -> None:
        """Say once why a checkpoint was not taken; a renderer that was working stays in use."""
        self.title.setStyleSheet("color:#c0392b")
        self.title.setToolTip(why)
        if self.renderer is not None:
            self.title.setText(f"Not loaded: {why} — still rendering with {self.renderer_name}")
            return
        self.title.setText(f"Cannot render: {why}")
        self.view.setPixmap(QPixmap())
        self.view.setText("Load a pix2pixHD checkpoint that matches this label set to see the map rendered live.")
        self._update_add()
        self.rendererChanged.emit()

    @property
    def message(self) -> str:
        return self.title.text()

    def load_checkpoint(self, path: str | Path, device: str = "auto") -> None:
        """Load a checkpoint off the UI thread; errors (unreadable file, wrong label set) end up in the pane."""
        name = Path(path).name
        self.title.setText(f"Loading {name}…")
        self.title.setStyleSheet("")

        self.checkpoint_path = str(path)
        start_worker(load_checkpoint_renderer, str(path), device, on_result=self._checkpoint_ready,
                     on_error=self._refuse)  # methods: never called once the pane is gone

    def _checkpoint_ready(self, renderer: object) -> None:
        path = self.checkpoint_path
        if self.set_renderer(renderer, Path(path).name if path else ""):  # type: ignore[arg-type]
            self.checkpointLoaded.emit(str(path))
            if self._requested_rev is not None and self._last_request is not None:
                self.request(*self._last_request)

    def follow_checkpoint(self, path: str) -> None:
        """Use the generator chosen elsewhere in the app (the Generate panel), unless it is the one loaded."""
        if path and path != getattr(self, "checkpoint_path", None) and Path(path).is_file():
            self.load_checkpoint(path)

    def _choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "pix2pixHD checkpoint", self.start_dir,
                                              "Checkpoints (*.pth *.pt);;All (*)")
        if path:
            self.load_checkpoint(path)

    # -- requests ------------------------------------------------------------------------------
    _last_request: tuple | None = None

    def request(self, label: np.ndarray, instance: np.ndarray | None, revision: int) -> None:
        """Ask for a render of this map state (copied now); debounced, latest wins."""
        self._requested_rev = revision
        self._last_request = (label, instance, revision)
        self._update_add()
        if self.renderer is None:
            return
        inst = None if instance is None else instance.copy()
        self._pending = (label.copy(), inst, revision)
        self._timer.start()

    def _kick(self) -> None:
        if self._running or self._pending is None or self.renderer is None:
            return
        label, inst, rev = self._pending
        self._pending = None
        self._seq += 1
        self._running = True
        start_worker(_render, self.renderer, label, inst, self._seq, rev, on_result=self._done, on_error=self._failed)

    def _done(self, result: tuple) -> None:
        self._running = False
        seq, rev, img, secs = result
        if self._pending is not None:  # overtaken by a newer request: drop, render the newer one
            self.stale_dropped += 1
            self._kick()
            return
        self.renders_done += 1
        self.last_image, self.last_revision, self.last_seconds = img, rev, secs
        h, w = img.shape[:2]
        self._qimg = QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self._show_pixmap()
        self.time_label.setText(f"rendered in {secs * 1000:.0f} ms")
        self._update_add()
        self.rendered.emit(img, secs)

    def _failed(self, msg: str) -> None:
        self._running = False
        self.time_label.setText("")
        self.view.setText(f"Render failed: {msg}")
        self._kick()

    def _show_pixmap(self) -> None:
        if getattr(self, "_qimg", None) is None:
            return
        pm = QPixmap.fromImage(self._qimg).scaled(
            self.view.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.view.setPixmap(pm)

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        self._show_pixmap()

    def is_current(self) -> bool:
        """The shown rendering is of the latest map state."""
        return self.last_image is not None and self.last_revision == self._requested_rev and self._pending is None

    def _update_add(self) -> None:
        self.add_btn.setEnabled(self.renderer is not None and self.is_current())
