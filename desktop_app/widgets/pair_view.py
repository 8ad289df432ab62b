"""The large pair view of the review tab: one generated pair at full size, zoomable, as image, label map, the
label over the image, or image and label map side by side, with the source samples it was cut from as links
(click opens one in the viewer). Holding Space (while the gallery has focus) flips to the label map and back
in place, at the same zoom, so a reviewer compares the two without the view moving.

Loading runs on a worker; the canvas fits itself on every resize, so the first preview is never cropped.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from segbalance.core.datasets.labels import LabelSet
from segbalance.core.io import read_label_png, read_png
from segbalance.core.jobs.pairs import PairRecord
from segbalance.desktop_app.widgets.image_viewer import ZOOM_STEP, ImageCanvas, overlay_rgba
from segbalance.desktop_app.widgets.thumbnails import rgb_to_qimage, rgba_to_qimage
from segbalance.desktop_app.workers import Worker, create_worker, error_text

MODES = ("image", "label", "overlay", "side")
MODE_TEXT = {"image": "Image", "label": "Label", "overlay": "Overlay", "side": "Side by side"}  # keys 1-4
MAX_SOURCE_LINKS = 4  # more would wrap and squeeze the preview


def load_pair_arrays(item: PairRecord) -> tuple[np.ndarray | None, np.ndarray]:
    """The pair's label map and its image (None when the image file is missing: the label still shows)."""
    label = read_label_png(item.label_path)
    label = label if label.dtype == np.uint8 else label.astype(np.uint8)
    try:
        img = read_png(item.image_path, color=True)
    except Exception:  # noqa: BLE001 - a pair whose image is gone still shows its label
        img = None
    if img is not None and img.shape[:2] != label.shape:
        img = None
    return img, label


class PairView(QWidget):
    """Big, zoomable view of one pair; `sourceClicked(sample_id)` when a source link is clicked."""

    sourceClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item: PairRecord | None = None
        self.label_set: LabelSet | None = None
        self.image: np.ndarray | None = None
        self.label: np.ndarray | None = None
        self.mode = "overlay"
        self.worker: Worker | None = None
        self._request = 0

        self.canvas = ImageCanvas()
        self.canvas.setMinimumSize(240, 120)
        self.mode_buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        bar = QHBoxLayout()
        for mode, key in zip(MODES, ("1", "2", "3", "4"), strict=True):
            b = QToolButton()  # tool buttons: as wide as their text, so the bar fits a narrow column
            b.setText(MODE_TEXT[mode])
            b.setCheckable(True)
            b.setToolTip(f"Show the {mode} ({key})")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda _c=False, m=mode: self.set_mode(m))
            group.addButton(b)
            bar.addWidget(b)
            self.mode_buttons[mode] = b
        self.mode_buttons[self.mode].setChecked(True)
        bar.addStretch(1)
        for text, tip, slot in (("−", "Zoom out (-)", lambda: self.canvas.zoom_by(1 / ZOOM_STEP)),
                                ("+", "Zoom in (+)", lambda: self.canvas.zoom_by(ZOOM_STEP)),
                                ("Fit", "Fit to the view (F)", self.canvas.fit)):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(slot)
            bar.addWidget(b)
        self.message = QLabel("Select a pair")
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.flickered = False
        self.sources = QLabel()
        self.sources.setWordWrap(False)  # one line whatever the number of sources: the preview keeps its size
        self.sources.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.sources.setTextFormat(Qt.TextFormat.RichText)
        self.sources.linkActivated.connect(lambda href: self.sourceClicked.emit(href.removeprefix("sample:")))
        self.sources.setToolTip("The dataset samples this pair was recombined from; click one to open it")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.message)
        lay.addWidget(self.sources)

    # -- showing ---------------------------------------------------------------------------
    def show_pair(self, item: PairRecord | None, label_set: LabelSet) -> Worker | None:
        self.item, self.label_set = item, label_set
        self._request += 1
        if item is None:
            self.image = self.label = None
            self.canvas.image_item.setPixmap(QPixmap())
            self.canvas.overlay_item.setPixmap(QPixmap())
            self.message.setText("Select a pair")
            self.sources.clear()
            return None
        shown = item.source_samples[:MAX_SOURCE_LINKS]
        links = ", ".join(f'<a href="sample:{html.escape(s)}">{html.escape(s)}</a>' for s in shown)
        more = len(item.source_samples) - len(shown)
        self.sources.setText(f"Sources: {links or '-'}" + (f" and {more} more" if more > 0 else ""))
        self.sources.setToolTip("Recombined from: " + ", ".join(item.source_samples)
                                + "\nClick one to open it in the viewer")
        req = self._request
        w = create_worker(load_pair_arrays, item)
        w.returned.connect(lambda res: req == self._request and self._loaded(*res))
        w.errored.connect(lambda exc: req == self._request
                          and self.message.setText(f"cannot show pair #{item.id}: {error_text(exc)}"))
        self.worker = w.start()
        return w

    def _loaded(self, img: np.ndarray | None, label: np.ndarray) -> None:
        self.image, self.label = img, label
        h, w = label.shape
        self.message.setText(f"Pair #{self.item.id} · {w}×{h}" + ("" if img is not None else " · image missing"))
        self._paint()
        self.canvas.fit()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.mode_buttons[mode].setChecked(True)
        self._paint()

    def flicker(self, on: bool) -> None:
        """While on, show the label map in place of what the mode shows (hold-to-flicker)."""
        if on != self.flickered:
            self.flickered = on
            self._paint()

    def _paint(self) -> None:
        if self.label is None or self.label_set is None:
            return
        color = self.label_set.colorize(self.label)
        base = self.image if self.image is not None else np.zeros_like(color)
        if self.mode == "side":
            shown = np.concatenate([color, color] if self.flickered else [base, color], axis=1)
        else:
            shown = color if self.mode == "label" or self.flickered else base
        size_changed = self.canvas.image_item.pixmap().width() != shown.shape[1]
        self.canvas.image_item.setPixmap(QPixmap.fromImage(rgb_to_qimage(np.ascontiguousarray(shown))))
        if size_changed and not self.canvas.image_item.pixmap().isNull():
            self.canvas.fit()
        if self.mode == "overlay" and not self.flickered:
            self.canvas.overlay_item.setPixmap(QPixmap.fromImage(rgba_to_qimage(
                overlay_rgba(self.label, self.label_set, set()))))
            self.canvas.overlay_item.setOpacity(0.5)
        else:
            self.canvas.overlay_item.setPixmap(QPixmap())

    def shown_pixmap(self) -> QPixmap:
        return self.canvas.image_item.pixmap()

    def handle_key(self, key: int) -> bool:
        """View keys (1/2/3 modes, +/- zoom, F fit); True when used."""
        modes = {Qt.Key.Key_1: "image", Qt.Key.Key_2: "label", Qt.Key.Key_3: "overlay", Qt.Key.Key_4: "side"}
        if key in modes:
            self.set_mode(modes[key])
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.canvas.zoom_by(ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.canvas.zoom_by(1 / ZOOM_STEP)
        elif key == Qt.Key.Key_F:
            self.canvas.fit()
        else:
            return False
        return True
