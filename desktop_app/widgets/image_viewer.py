"""Sample viewer: image with its label overlay, zoom/pan/fit, per-class toggles, class under the cursor."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.io import read_label_png, read_png
from segbalance.core.jobs.pairs import REVIEW_STATUSES
from segbalance.desktop_app.widgets.thumbnails import rgb_to_qimage, rgba_to_qimage
from segbalance.desktop_app.workers import Worker, create_worker

ZOOM_STEP = 1.25


def color_icon(rgb: tuple[int, int, int], size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


def overlay_rgba(label: np.ndarray, label_set: LabelSet, hidden: set[int]) -> np.ndarray:
    """Label colors as RGBA, transparent where a class is hidden (a 256-entry lookup, no per-pixel Python)."""
    lut = np.zeros((256, 4), np.uint8)
    lut[:, :3] = label_set.palette
    lut[:, 3] = 255
    for cid in hidden:
        lut[cid, 3] = 0
    return lut[label]


class ImageCanvas(QGraphicsView):
    """Wheel zooms under the mouse, drag pans; reports the image pixel under the cursor."""

    hovered = Signal(int, int)  # x, y in image pixels (-1, -1 outside)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.image_item = QGraphicsPixmapItem()
        self.overlay_item = QGraphicsPixmapItem()
        self.scene().addItem(self.image_item)
        self.scene().addItem(self.overlay_item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setBackgroundBrush(QColor(40, 40, 40))
        self.setMouseTracking(True)
        self.auto_fit = True

    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        self.auto_fit = False
        z = self.zoom() * factor
        if 0.02 <= z <= 64:
            self.scale(factor, factor)

    def fit(self) -> None:
        self.auto_fit = True
        r = self.image_item.boundingRect()
        if not r.isEmpty():
            self.setSceneRect(r)
            self.fitInView(r, Qt.AspectRatioMode.KeepAspectRatio)

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(ZOOM_STEP**steps)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.auto_fit:
            self.fit()

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        p: QPointF = self.mapToScene(event.position().toPoint())
        r: QRectF = self.image_item.boundingRect()
        if r.contains(p):
            self.hovered.emit(int(p.x()), int(p.y()))
        else:
            self.hovered.emit(-1, -1)


class ImageViewer(QWidget):
    """Shows one sample; loading runs on a worker so big frames never stall the UI."""

    nextRequested = Signal()
    prevRequested = Signal()
    reviewRequested = Signal(int, str)  # pair id, status: A/R/U or the buttons while a generated pair is shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.label_set: LabelSet | None = None
        self.ref: SampleRef | None = None
        self.label: np.ndarray | None = None
        self.hidden: set[int] = set()
        self._loader: Worker | None = None
        self._request = 0
        self.pair_id: int | None = None  # set while a generated pair (not a dataset sample) is shown

        self.canvas = ImageCanvas()
        self.canvas.hovered.connect(self._hovered)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setFixedWidth(110)
        self.opacity.setToolTip("Label overlay opacity")
        self.opacity.valueChanged.connect(lambda v: self.canvas.overlay_item.setOpacity(v / 100))
        self.show_overlay = QCheckBox("Labels")
        self.show_overlay.setChecked(True)
        self.show_overlay.toggled.connect(self.canvas.overlay_item.setVisible)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Fit to window (F)")
        self.fit_button.clicked.connect(self.canvas.fit)
        prev_b, next_b = QPushButton("◀"), QPushButton("▶")
        prev_b.setToolTip("Previous sample (PgUp)")
        next_b.setToolTip("Next sample (PgDown)")
        prev_b.clicked.connect(self.prevRequested)
        next_b.clicked.connect(self.nextRequested)
        self.title = QLabel("No sample")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # long ids elide
        self.cursor_label = QLabel(" ")

        self.class_list = QListWidget()
        self.class_list.setToolTip("Classes in this sample; uncheck to hide from the overlay")
        self.class_list.itemChanged.connect(self._class_toggled)
        self.class_list.setMaximumWidth(180)

        top = QHBoxLayout()
        top.addWidget(prev_b)
        top.addWidget(next_b)
        top.addWidget(self.title, 1)
        top.addWidget(self.show_overlay)
        top.addWidget(self.opacity)
        top.addWidget(self.fit_button)
        self.review_buttons: dict[str, QPushButton] = {}
        for status, text in zip(REVIEW_STATUSES, ("Accept (A)", "Reject (R)", "Undo (U)"), strict=True):
            b = QPushButton(text)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda _c=False, s=status: self.review(s))
            b.setVisible(False)
            top.addWidget(b)
            self.review_buttons[status] = b
        split = QSplitter()
        split.addWidget(self.canvas)
        split.addWidget(self.class_list)
        split.setStretchFactor(0, 1)
        split.setCollapsible(0, False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addWidget(self.cursor_label)
        self.canvas.overlay_item.setOpacity(0.5)

    # -- loading --------------------------------------------------------------------
    def show_sample(self, ds: Dataset | None, ref: SampleRef | None) -> Worker | None:
        self.dataset, self.ref = ds, ref
        self.set_pair(None)
        self.label_set = ds.label_set if ds is not None else None
        self._request += 1
        if ds is None or ref is None:
            self._show(None, None, None)
            return None

        def load() -> tuple[np.ndarray | None, np.ndarray]:
            img = ds.load_image(ref) if ref.image_path is not None else None
            return img, ds.load_label(ref, check=False)

        return self._load(ref, load)

    def show_files(self, ref: SampleRef, label_set: LabelSet) -> Worker:
        """Show an image + label map that belong to no dataset (a generated pair)."""
        self.dataset, self.ref, self.label_set = None, ref, label_set
        self._request += 1

        def load() -> tuple[np.ndarray | None, np.ndarray]:
            img = read_png(ref.image_path, color=True) if ref.image_path is not None else None
            return img, read_label_png(ref.label_path)

        return self._load(ref, load)

    def set_pair(self, pair_id: int | None) -> None:
        """Mark what is shown as generated pair `pair_id` (review keys and buttons on), or as a sample (None)."""
        self.pair_id = pair_id
        for b in self.review_buttons.values():
            b.setVisible(pair_id is not None)

    def review(self, status: str) -> bool:
        if self.pair_id is None:
            return False
        self.reviewRequested.emit(self.pair_id, status)
        return True

    def _load(self, ref: SampleRef, load) -> Worker:
        req = self._request
        w = create_worker(load)
        w.returned.connect(lambda res: req == self._request and self._show(ref, *res))
        w.errored.connect(lambda exc: req == self._request and self.title.setText(f"{ref.id}: cannot load ({exc})"))
        self._loader = w.start()
        return w

    def _show(self, ref: SampleRef | None, img: np.ndarray | None, label: np.ndarray | None) -> None:
        self.label = label
        if ref is None or label is None:
            self.title.setText("No sample")
            self.canvas.image_item.setPixmap(QPixmap())
            self.canvas.overlay_item.setPixmap(QPixmap())
            self.class_list.clear()
            return
        h, w = label.shape
        self.title.setText(f"{ref.id}  ·  {ref.split}  ·  {w}×{h}")
        base = img if img is not None else np.zeros((h, w, 3), np.uint8)
        self.canvas.image_item.setPixmap(QPixmap.fromImage(rgb_to_qimage(base)))
        self._fill_classes(label)
        self._update_overlay()
        if self.canvas.auto_fit:
            self.canvas.fit()

    def _fill_classes(self, label: np.ndarray) -> None:
        assert self.label_set is not None
        ls = self.label_set
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
        self.class_list.blockSignals(True)
        self.class_list.clear()
        by_id = ls.by_id
        for cid in present:
            c = by_id.get(int(cid))
            it = QListWidgetItem(color_icon(c.color) if c else QIcon(), c.name if c else f"id {cid}")
            it.setData(Qt.ItemDataRole.UserRole, int(cid))
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Unchecked if int(cid) in self.hidden else Qt.CheckState.Checked)
            self.class_list.addItem(it)
        self.class_list.blockSignals(False)

    def _class_toggled(self, item: QListWidgetItem) -> None:
        cid = item.data(Qt.ItemDataRole.UserRole)
        if item.checkState() == Qt.CheckState.Checked:
            self.hidden.discard(cid)
        else:
            self.hidden.add(cid)
        self._update_overlay()

    def set_class_visible(self, class_id: int, visible: bool) -> None:
        for i in range(self.class_list.count()):
            it = self.class_list.item(i)
            if it.data(Qt.ItemDataRole.UserRole) == class_id:
                it.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
                return
        (self.hidden.discard if visible else self.hidden.add)(class_id)
        self._update_overlay()

    def _update_overlay(self) -> None:
        if self.label is None or self.label_set is None:
            return
        rgba = overlay_rgba(self.label, self.label_set, self.hidden)
        self.canvas.overlay_item.setPixmap(QPixmap.fromImage(rgba_to_qimage(rgba)))

    # -- cursor ---------------------------------------------------------------------
    def class_at(self, x: int, y: int) -> str | None:
        if self.label is None or self.label_set is None:
            return None
        if not (0 <= y < self.label.shape[0] and 0 <= x < self.label.shape[1]):
            return None
        cid = int(self.label[y, x])
        c = self.label_set.by_id.get(cid)
        return c.name if c else f"id {cid}"

    def _hovered(self, x: int, y: int) -> None:
        name = self.class_at(x, y)
        self.cursor_label.setText(f"({x}, {y})  {name}" if name else " ")

    def keyPressEvent(self, event) -> None:
        review = dict(zip((Qt.Key.Key_A, Qt.Key.Key_R, Qt.Key.Key_U), REVIEW_STATUSES, strict=True)).get(event.key())
        if review is not None and self.review(review):
            return
        if event.key() == Qt.Key.Key_F:
            self.canvas.fit()
        elif event.key() in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.canvas.zoom_by(ZOOM_STEP)
        elif event.key() == Qt.Key.Key_Minus:
            self.canvas.zoom_by(1 / ZOOM_STEP)
        else:
            super().keyPressEvent(event)
