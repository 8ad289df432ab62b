"""Dataset browser: a virtualised thumbnail grid of samples, filtered by split, class and name."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.datasets.stats import DatasetStats
from segbalance.desktop_app.widgets.thumbnails import THUMB_H, THUMB_W, ThumbnailLoader, file_key, placeholder

ALL = "All"
ANY_CLASS = "Any class"
RefRole = Qt.ItemDataRole.UserRole + 1
SplitRole = Qt.ItemDataRole.UserRole + 2


@dataclass
class SampleItem:
    ref: SampleRef
    classes: frozenset[str] | None = None  # train classes present (None until stats are known)
    key: str | None = None  # thumbnail cache key, computed when first shown


def sample_thumbnail(ds: Dataset, ref: SampleRef) -> np.ndarray:
    """The image with its label map blended in at 35%, what a curator scans a grid for."""
    img = ds.load_image(ref) if ref.image_path is not None else None
    color = ds.label_set.colorize(ds.load_label(ref, check=False))
    if img is None or img.shape[:2] != color.shape[:2]:
        return color
    return (img.astype(np.uint16) * 65 // 100 + color.astype(np.uint16) * 35 // 100).astype(np.uint8)


class SampleListModel(QAbstractListModel):
    """All samples of a dataset; thumbnails are asked for only when the view paints an item."""

    def __init__(self, loader: ThumbnailLoader, parent=None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.dataset: Dataset | None = None
        self.items: list[SampleItem] = []
        self._row_of_key: dict[str, int] = {}
        loader.ready.connect(self._thumbnail_ready)

    def set_dataset(self, ds: Dataset | None) -> None:
        self.beginResetModel()
        self.dataset = ds
        self.items = [SampleItem(r) for r in ds.samples()] if ds is not None else []
        self._row_of_key = {}
        self.loader.clear_queue()
        self.endResetModel()

    def set_stats(self, stats: DatasetStats | None) -> None:
        """Record which train classes each sample holds, for the 'contains class' filter."""
        if stats is None or self.dataset is None:
            for it in self.items:
                it.classes = None
        else:
            ls = stats.label_set
            name_of = {c.id: c.name for c in ls.classes if not c.ignore_in_eval}
            lut = ls.id_to_train_lut
            train_name = {t.train_id: t.name for t in ls.train_classes}
            by_id = {s.id: s for s in stats.samples}
            for it in self.items:
                sc = by_id.get(it.ref.id)
                if sc is None:
                    it.classes = frozenset()
                    continue
                ids = np.flatnonzero(sc.counts)
                it.classes = frozenset(train_name[int(lut[i])] for i in ids if int(i) in name_of and lut[i] != 255)
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1), [Qt.ItemDataRole.ToolTipRole])

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        it = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return it.ref.id
        if role == Qt.ItemDataRole.DecorationRole:
            if it.key is None:
                it.key = file_key(it.ref.image_path, it.ref.label_path)
                self._row_of_key[it.key] = index.row()
            img = self.loader.get(it.key)
            if img is None and self.dataset is not None:
                ds, ref = self.dataset, it.ref
                self.loader.request(it.key, lambda: sample_thumbnail(ds, ref))
            return img if img is not None else placeholder()
        if role == Qt.ItemDataRole.ToolTipRole:
            cls = ", ".join(sorted(it.classes)) if it.classes else "classes not measured yet"
            return f"{it.ref.id} ({it.ref.split})\n{cls}"
        if role == RefRole:
            return it.ref
        if role == SplitRole:
            return it.ref.split
        return None

    def _thumbnail_ready(self, key: str) -> None:
        row = self._row_of_key.get(key)
        if row is not None and row < len(self.items):
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])


class SampleFilter(QSortFilterProxyModel):
    """Split, 'contains class' and name-substring filters on the sample list."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.split: str | None = None
        self.class_name: str | None = None
        self.text = ""

    def set_filters(self, split: str | None, class_name: str | None, text: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter() is deprecated there
            self.beginFilterChange()
            self.split, self.class_name, self.text = split, class_name, text.strip().lower()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.split, self.class_name, self.text = split, class_name, text.strip().lower()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        it = self.sourceModel().items[row]
        if self.split is not None and it.ref.split != self.split:
            return False
        if self.class_name is not None and (it.classes is None or self.class_name not in it.classes):
            return False
        return not self.text or self.text in it.ref.id.lower()


class DatasetBrowser(QWidget):
    """Thumbnail grid with filters; emits the sample the user picks."""

    sampleSelected = Signal(object)  # SampleRef
    splitChanged = Signal(object)  # str | None

    def __init__(self, loader: ThumbnailLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader or ThumbnailLoader(parent=self)
        self.model = SampleListModel(self.loader, self)
        self.proxy = SampleFilter(self)
        self.proxy.setSourceModel(self.model)

        self.split_box = QComboBox()
        self.split_box.setToolTip("Show one split")
        self.class_box = QComboBox()
        self.class_box.setToolTip("Show only samples containing this class (from the class statistics)")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by name…")
        self.search.setClearButtonEnabled(True)
        self.count_label = QLabel()

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)  # the view never measures all rows: stays fast at 3000+
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(200)
        self.view.setIconSize(QSize(THUMB_W, THUMB_H))
        self.view.setGridSize(QSize(THUMB_W + 12, THUMB_H + 30))
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setMinimumWidth(THUMB_W + 12 + self.view.verticalScrollBar().sizeHint().width() + 8)
        self.view.setModel(self.proxy)
        self.view.selectionModel().currentChanged.connect(self._current_changed)

        row1 = QHBoxLayout()
        row1.addWidget(self.split_box)
        row1.addWidget(self.class_box, 1)
        row2 = QHBoxLayout()
        row2.addWidget(self.search, 1)
        row2.addWidget(self.count_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(self.view, 1)

        self.split_box.currentIndexChanged.connect(self._filters_changed)
        self.class_box.currentIndexChanged.connect(self._filters_changed)
        self.search.textChanged.connect(self._filters_changed)
        self._fill_boxes(None)

    # -- inputs ---------------------------------------------------------------------
    def set_dataset(self, ds: Dataset | None) -> None:
        self.model.set_dataset(ds)
        self._fill_boxes(ds)
        self._filters_changed()
        if self.proxy.rowCount():
            self.view.setCurrentIndex(self.proxy.index(0, 0))

    def set_stats(self, stats: DatasetStats | None) -> None:
        self.model.set_stats(stats)
        self.class_box.setEnabled(stats is not None)
        self._filters_changed()

    def set_class_filter(self, class_name: str | None) -> None:
        """Show only samples containing a class (the histogram's bar click lands here)."""
        i = self.class_box.findText(class_name) if class_name else 0
        self.class_box.setCurrentIndex(max(0, i))

    def set_split_filter(self, split: str | None) -> None:
        i = self.split_box.findText(split) if split else 0
        self.split_box.setCurrentIndex(max(0, i))

    # -- outputs --------------------------------------------------------------------
    def visible_count(self) -> int:
        return self.proxy.rowCount()

    def visible_ids(self) -> list[str]:
        return [self.proxy.index(r, 0).data(RefRole).id for r in range(self.proxy.rowCount())]

    def current_ref(self) -> SampleRef | None:
        idx = self.view.currentIndex()
        return idx.data(RefRole) if idx.isValid() else None

    def step(self, delta: int) -> None:
        """Move to the next (+1) or previous (-1) visible sample."""
        n = self.proxy.rowCount()
        if not n:
            return
        row = self.view.currentIndex().row()
        row = 0 if row < 0 else min(n - 1, max(0, row + delta))
        idx = self.proxy.index(row, 0)
        self.view.setCurrentIndex(idx)
        self.view.scrollTo(idx)

    # -- internals ------------------------------------------------------------------
    def _fill_boxes(self, ds: Dataset | None) -> None:
        for box, first, names in (
            (self.split_box, ALL, ds.splits() if ds is not None else []),
            (self.class_box, ANY_CLASS, [c.name for c in ds.label_set.train_classes] if ds is not None else []),
        ):
            box.blockSignals(True)
            box.clear()
            box.addItem(first)
            box.addItems(names)
            box.blockSignals(False)
        self.class_box.setEnabled(False)

    def _filters_changed(self) -> None:
        split = self.split_box.currentText() if self.split_box.currentIndex() > 0 else None
        cls = self.class_box.currentText() if self.class_box.currentIndex() > 0 else None
        old_split = self.proxy.split
        self.proxy.set_filters(split, cls, self.search.text())
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        self.count_label.setText(f"{shown} / {total}" if shown != total else f"{total} samples")
        if split != old_split:
            self.splitChanged.emit(split)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.sampleSelected.emit(current.data(RefRole))
