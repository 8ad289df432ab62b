"""Layer picker: choose a class, browse its layers from the dataset's layer bank as thumbnails, and hand one
to the editor to place (manual recombination). The bank is built/loaded off the UI thread."""

from __future__ import annotations

import threading
from functools import partial

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.catalog import dataset_paths
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import SegbalanceError
from segbalance.core.workspace import Workspace
from segbalance.desktop_app.workers import start_worker

THUMB = 72
MAX_SHOWN = 150  # largest layers of a class first; enough to choose from, cheap to draw

_BANKS: dict[str, object] = {}  # dataset root -> LayerBank, for the session


def layer_thumbnail(mask: np.ndarray, color: tuple[int, int, int], size: int = THUMB) -> np.ndarray:
    """RGBA thumbnail of a layer mask: the class color on transparent, aspect kept, nearest neighbour."""
    h, w = mask.shape
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = cv2.resize(mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    out = np.zeros((size, size, 4), np.uint8)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw][small] = (*color, 255)
    return out


def _load_bank(ws: Workspace, root: str):
    from segbalance.core.recombine.layers import build_layer_bank

    # Register this Qt pool thread with `threading`: the bank builder forks worker processes only when it
    # sees a single thread, and forking beside Qt's threads deadlocks the children; seen, it spawns instead.
    threading.current_thread()
    if root not in _BANKS:
        _BANKS[root] = build_layer_bank(open_dataset(root), ws)
    return _BANKS[root]


def _thumbs(bank, rows: np.ndarray, color: tuple[int, int, int]) -> list[tuple[int, np.ndarray]]:
    return [(int(r), layer_thumbnail(bank.mask(int(r)), color)) for r in rows]


class LayerPicker(QWidget):
    """Emits `layerChosen(mask, class_id)` when the user places a layer."""

    layerChosen = Signal(object, int)
    bankLoaded = Signal()
    thumbsShown = Signal()

    def __init__(
        self, workspace: Workspace, label_set: LabelSet, dataset_root: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        if parent is not None:
            self.setWindowFlag(Qt.WindowType.Tool)
        self.setWindowTitle("Paste a layer from the layer bank")
        self.workspace, self.label_set = workspace, label_set
        self.bank = None
        self.dataset_box = QComboBox()
        self.class_box = QComboBox()
        self.status = QLabel("")
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.place_btn = QPushButton("Place on the map")
        self.place_btn.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(QLabel("Dataset"))
        top.addWidget(self.dataset_box, 1)
        top.addWidget(QLabel("Class"))
        top.addWidget(self.class_box)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.list, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.place_btn)
        lay.addLayout(bottom)
        self.resize(560, 420)

        roots = dataset_paths(workspace)
        if dataset_root and str(dataset_root) not in roots:
            roots.insert(0, str(dataset_root))
        for r in roots:
            self.dataset_box.addItem(r)
        if dataset_root:
            self.dataset_box.setCurrentText(str(dataset_root))
        self.dataset_box.currentTextChanged.connect(self.load_bank)
        self.class_box.currentIndexChanged.connect(self._show_class)
        self.list.itemSelectionChanged.connect(lambda: self.place_btn.setEnabled(bool(self.list.selectedItems())))
        self.list.itemDoubleClicked.connect(lambda _it: self.place())
        self.place_btn.clicked.connect(self.place)
        if self.dataset_box.count():
            self.load_bank(self.dataset_box.currentText())
        else:
            self.status.setText("No dataset in this workspace: open a dataset sample first")

    def load_bank(self, root: str) -> None:
        if not root:
            return
        self.status.setText("Loading the layer bank (built once per dataset)…")
        self.class_box.clear()
        self.list.clear()
        start_worker(_load_bank, self.workspace, root, on_result=self._bank_ready, on_error=self._failed)

    def _failed(self, msg: str) -> None:
        self.status.setText(f"Layer bank unavailable: {msg}")

    def _bank_ready(self, bank) -> None:
        self.bank = bank
        counts = bank.layer_counts()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        for cid in sorted(counts, key=lambda c: (-counts[c], c)):
            c = self.label_set.by_id.get(cid)
            self.class_box.addItem(f"{c.name if c else cid} ({counts[cid]} layers)", cid)
        self.class_box.blockSignals(False)
        self.status.setText(f"{len(bank)} layers in {len(bank.samples)} maps")
        self.bankLoaded.emit()
        self._show_class()

    def select_class(self, class_id: int) -> None:
        i = self.class_box.findData(class_id)
        if i >= 0:
            self.class_box.setCurrentIndex(i)

    def _show_class(self, *_args) -> None:
        self.list.clear()
        cid = self.class_box.currentData()
        if self.bank is None or cid is None:
            return
        rows = self.bank.rows_of_class(int(cid))
        areas = self.bank.cols["area"][rows]
        rows = rows[np.argsort(-areas, kind="stable")][:MAX_SHOWN]
        color = tuple(int(v) for v in self.label_set.palette[int(cid)])
        start_worker(_thumbs, self.bank, rows, color, on_result=partial(self._fill, int(cid)),
                     on_error=self._failed)

    def _fill(self, cid: int, thumbs: list[tuple[int, np.ndarray]]) -> None:
        if self.class_box.currentData() != cid:
            return  # the user moved on to another class meanwhile
        self.list.clear()
        cols = self.bank.cols
        for r, rgba in thumbs:
            img = QImage(rgba.data, THUMB, THUMB, 4 * THUMB, QImage.Format.Format_RGBA8888).copy()
            sample = self.bank.samples[int(cols["sample_idx"][r])]["name"]
            item = QListWidgetItem(QIcon(QPixmap.fromImage(img)), f"{int(cols['w'][r])}x{int(cols['h'][r])}")
            item.setToolTip(f"{sample}, {int(cols['area'][r])} px")
            item.setData(Qt.ItemDataRole.UserRole, r)
            self.list.addItem(item)
        self.thumbsShown.emit()

    def place(self) -> None:
        items = self.list.selectedItems()
        if not items or self.bank is None:
            return
        r = int(items[0].data(Qt.ItemDataRole.UserRole))
        try:
            mask = self.bank.mask(r)
        except (SegbalanceError, OSError) as exc:
            self._failed(str(exc))
            return
        self.layerChosen.emit(np.asarray(mask, dtype=bool), int(self.bank.cols["class_id"][r]))
