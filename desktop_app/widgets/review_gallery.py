"""Review gallery: the generated pairs of the workspace, judged in a large zoomable view and accepted or
rejected one by one or in bulk.

Every decision goes through the engine's review rule (core.jobs.pairs.review_pairs, the CLI's), written at once, so
nothing is lost if the app stops and a failed pair can no more be accepted here than on the command line.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtCore import Signal as _Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.datasets.labels import CITYSCAPES, LabelSet
from segbalance.core.errors import SegbalanceError
from segbalance.core.io import read_label_png, read_png
from segbalance.core.jobs import pairs as pair_service
from segbalance.core.jobs.pairs import ACCEPTED, PAIR_STATUSES, PENDING, REJECTED, PairRecord
from segbalance.core.workspace import Workspace
from segbalance.desktop_app.widgets.pair_view import PairView
from segbalance.desktop_app.widgets.thumbnails import ThumbnailLoader, file_key, placeholder

# background per pair status, in core's order (pending, accepted, rejected, failed); unknown words stay white
STATUS_COLORS = dict(zip(PAIR_STATUSES, ("#fff8e1", "#e8f5e9", "#ffebee", "#eeeeee"), strict=False))
ALL = "All"
PairIdRole = Qt.ItemDataRole.UserRole + 1
PAIR_THUMB = QSize(176, 44)  # image + label side by side at the default thumbnail width
THUMB_WIDTHS = (120, 480)  # the thumbnail-size slider's range
REVIEW_KEYS = dict(zip((Qt.Key.Key_A, Qt.Key.Key_R, Qt.Key.Key_U), pair_service.REVIEW_STATUSES, strict=True))


def load_pairs(ws: Workspace) -> list[PairRecord]:
    return pair_service.pair_records(ws)


def set_status(ws: Workspace, ids: list[int], status: str) -> int:
    """Record a review decision through the engine's rule (the CLI's): failed or unknown pairs raise."""
    return pair_service.review_pairs(ws, ids, status)


def pair_preview(item: PairRecord, label_set: LabelSet) -> np.ndarray:
    """Image and colored label map side by side."""
    label = read_label_png(item.label_path)
    color = label_set.colorize(label if label.dtype == np.uint8 else label.astype(np.uint8))
    try:
        img = read_png(item.image_path, color=True)
    except Exception:  # noqa: BLE001 - a pair whose image is missing still shows its label
        img = np.zeros_like(color)
    if img.shape != color.shape:
        img = np.zeros_like(color)
    return np.concatenate([img, color], axis=1)


class PairListModel(QAbstractListModel):
    def __init__(self, loader: ThumbnailLoader, parent=None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.items: list[PairRecord] = []
        self.label_set: LabelSet = CITYSCAPES
        self.thumb = QSize(PAIR_THUMB)
        self._row_of_key: dict[str, int] = {}
        loader.ready.connect(self._ready)

    def set_thumb_width(self, width: int) -> None:
        """Thumbnails `width` px wide (image and label side by side, so a quarter as high)."""
        self.beginResetModel()
        self.thumb = QSize(width, max(16, width // 4))
        for it in self.items:
            it.key = None
        self._row_of_key = {}
        self.endResetModel()

    def set_items(self, items: list[PairRecord]) -> None:
        self.beginResetModel()
        self.items = items
        self._row_of_key = {}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        it = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return it.caption()
        if role == Qt.ItemDataRole.DecorationRole:
            tw, th = self.thumb.width(), self.thumb.height()
            if it.key is None:
                it.key = f"pair{tw}|" + file_key(it.image_path, it.label_path)
                self._row_of_key[it.key] = index.row()
            img = self.loader.get(it.key)
            if img is None:
                ls = self.label_set
                self.loader.request(it.key, lambda: pair_preview(it, ls), (tw, th))
            return img if img is not None else placeholder(tw, th)
        if role == Qt.ItemDataRole.BackgroundRole:
            return QBrush(QColor(STATUS_COLORS.get(it.status, "#ffffff")))
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"classes added: {', '.join(it.classes_added) or '-'}\nfrom: {', '.join(it.source_samples)}"
        if role == PairIdRole:
            return it.id
        return None

    def _ready(self, key: str) -> None:
        row = self._row_of_key.get(key)
        if row is not None and row < len(self.items):
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    def item(self, pair_id: int) -> PairRecord | None:
        return next((it for it in self.items if it.id == pair_id), None)


class PairFilter(QSortFilterProxyModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.status: str | None = None
        self.strategy: str | None = None
        self.class_name: str | None = None

    def set_filters(self, status: str | None, strategy: str | None, class_name: str | None) -> None:
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self.status, self.strategy, self.class_name = status, strategy, class_name
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.status, self.strategy, self.class_name = status, strategy, class_name
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        it = self.sourceModel().items[row]
        return (
            (self.status is None or it.status == self.status)
            and (self.strategy is None or it.strategy == self.strategy)
            and (self.class_name is None or self.class_name in it.classes_added)
        )


class ReviewGallery(QWidget):
    """Pairs with accept/reject (buttons, A/R keys, bulk over the selection or everything shown)."""

    decided = _Signal(list, str)  # pair ids, status
    refused = _Signal(str)  # the engine's one-line reason a decision was not recorded
    sourceRequested = _Signal(str)  # a source sample id clicked in the large view
    pairActivated = _Signal(object)  # PairRecord (double click: look at it in the viewer)
    exportRequested = _Signal()

    def __init__(self, loader: ThumbnailLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace: Workspace | None = None
        self.last_refusal: str | None = None
        self.loader = loader or ThumbnailLoader(parent=self)
        self.model = PairListModel(self.loader, self)
        self.proxy = PairFilter(self)
        self.proxy.setSourceModel(self.model)

        self.status_box, self.strategy_box, self.class_box = QComboBox(), QComboBox(), QComboBox()
        self.status_box.addItems([ALL, *PAIR_STATUSES])
        self.status_box.setToolTip("Filter by review status")
        self.strategy_box.setToolTip("Filter by recombination strategy")
        self.class_box.setToolTip("Filter by class added")
        self.count_label = QLabel("No pairs")
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Export the dataset plus the pairs of the statuses you choose (Ctrl+E)")
        self.export_button.clicked.connect(self.exportRequested)

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.thumb_size = QSlider(Qt.Orientation.Horizontal)
        self.thumb_size.setRange(*THUMB_WIDTHS)
        self.thumb_size.setValue(PAIR_THUMB.width())
        self.thumb_size.setFixedWidth(120)
        self.thumb_size.setToolTip("Thumbnail size")
        self.thumb_size.valueChanged.connect(self.set_thumb_width)
        self._apply_grid()
        self.view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.view.setModel(self.proxy)
        self.view.selectionModel().currentChanged.connect(lambda cur, _prev: self._show_detail(cur))
        self.view.doubleClicked.connect(lambda idx: self.pairActivated.emit(self.model.item(idx.data(PairIdRole))))

        self.pair_view = PairView()
        self.pair_view.sourceClicked.connect(self.sourceRequested)
        self.pair_view.canvas.installEventFilter(self)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.accept_button = QPushButton("Accept (A)")
        self.accept_button.setObjectName("accept_button")
        self.reject_button = QPushButton("Reject (R)")
        self.reject_button.setObjectName("reject_button")
        self.pending_button = QPushButton("Undo (U)")
        self.accept_all = QPushButton("Accept all shown")
        self.reject_all = QPushButton("Reject all shown")
        self.accept_button.clicked.connect(lambda: self.decide_selected(ACCEPTED))
        self.reject_button.clicked.connect(lambda: self.decide_selected(REJECTED))
        self.pending_button.clicked.connect(lambda: self.decide_selected(PENDING))
        self.accept_all.clicked.connect(lambda: self.decide_shown(ACCEPTED))
        self.reject_all.clicked.connect(lambda: self.decide_shown(REJECTED))
        for b in (self.accept_button, self.reject_button, self.pending_button, self.accept_all, self.reject_all):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keep focus on the list so A/R keep working
        self.view.installEventFilter(self)

        filters = QHBoxLayout()
        for w in (QLabel("Status"), self.status_box, QLabel("Strategy"), self.strategy_box, QLabel("Class"),
                  self.class_box):
            filters.addWidget(w)
        filters.addStretch(1)
        filters.addWidget(QLabel("Size"))
        filters.addWidget(self.thumb_size)
        filters.addWidget(refresh)
        filters.addWidget(self.export_button)
        self.count_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons = QGridLayout()
        for i, b in enumerate((self.accept_button, self.reject_button, self.pending_button)):
            buttons.addWidget(b, 0, i)
        buttons.addWidget(self.accept_all, 1, 0, 1, 2)
        buttons.addWidget(self.reject_all, 1, 2)
        side = QWidget()
        side_lay = QVBoxLayout(side)
        side_lay.addWidget(self.count_label)
        side_lay.addWidget(self.pair_view, 4)
        side_lay.addWidget(self.detail)
        side_lay.addLayout(buttons)
        split = QSplitter()
        split.addWidget(self.view)
        split.addWidget(side)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([380, 580])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(filters)
        lay.addWidget(split, 1)
        for box in (self.status_box, self.strategy_box, self.class_box):
            box.currentIndexChanged.connect(self._filters_changed)
        self._update_buttons()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj in (self.view, self.pair_view.canvas) and event.type() == QEvent.Type.KeyPress \
                and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            status = REVIEW_KEYS.get(event.key())
            if status is not None:
                self.decide_selected(status)
                return True
            if self.pair_view.handle_key(event.key()):
                return True
        return super().eventFilter(obj, event)

    # -- data -----------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        self.workspace = ws
        self.refresh()

    def set_thumb_width(self, width: int) -> None:
        self.model.set_thumb_width(width)
        self._apply_grid()

    def _apply_grid(self) -> None:
        t = self.model.thumb
        self.view.setIconSize(t)
        self.view.setGridSize(QSize(t.width() + 14, t.height() + 32))

    def set_label_set(self, label_set: LabelSet | None) -> None:
        self.model.label_set = label_set or CITYSCAPES

    def refresh(self) -> None:
        """Reload the pairs from the DB, keeping filters and the current pair."""
        current = self.current_id()
        items = load_pairs(self.workspace) if self.workspace is not None else []
        self.model.set_items(items)
        self._fill_box(self.strategy_box, sorted({it.strategy for it in items}))
        self._fill_box(self.class_box, sorted({c for it in items for c in it.classes_added}))
        self._filters_changed()
        if current is not None:
            self.select(current)

    def _fill_box(self, box: QComboBox, values: list[str]) -> None:
        keep = box.currentText()
        box.blockSignals(True)
        box.clear()
        box.addItems([ALL, *values])
        box.setCurrentIndex(max(0, box.findText(keep)))
        box.blockSignals(False)

    def _filters_changed(self) -> None:
        def val(box: QComboBox) -> str | None:
            return box.currentText() if box.currentIndex() > 0 else None

        self.proxy.set_filters(val(self.status_box), val(self.strategy_box), val(self.class_box))
        n, total = self.proxy.rowCount(), self.model.rowCount()
        counts = {s: sum(it.status == s for it in self.model.items) for s in PAIR_STATUSES}
        summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        self.count_label.setText(f"{n} of {total} pairs shown ({summary})" if total else "No pairs yet")
        if not self.view.currentIndex().isValid() and n:
            self.view.setCurrentIndex(self.proxy.index(0, 0))
        self._update_buttons()

    # -- selection ------------------------------------------------------------------
    def current_id(self) -> int | None:
        idx = self.view.currentIndex()
        return idx.data(PairIdRole) if idx.isValid() else None

    def selected_ids(self) -> list[int]:
        ids = [i.data(PairIdRole) for i in self.view.selectionModel().selectedIndexes()]
        if not ids and self.current_id() is not None:
            ids = [self.current_id()]
        return ids

    def shown_ids(self) -> list[int]:
        return [self.proxy.index(r, 0).data(PairIdRole) for r in range(self.proxy.rowCount())]

    def select(self, pair_id: int) -> bool:
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            if idx.data(PairIdRole) == pair_id:
                self.view.setCurrentIndex(idx)
                return True
        return False

    # -- decisions --------------------------------------------------------------------
    def decide(self, ids: list[int], status: str) -> bool:
        """Record a decision through the engine; a refusal (failed pair) is said through `refused`."""
        if self.workspace is None or not ids:
            return False
        try:
            set_status(self.workspace, ids, status)
        except SegbalanceError as exc:
            self.last_refusal = str(exc)
            self.refused.emit(self.last_refusal)
            return False
        self.last_refusal = None
        row = self.view.currentIndex().row()
        for it in self.model.items:
            if it.id in ids:
                it.status = status
        self.model.dataChanged.emit(self.model.index(0), self.model.index(max(0, self.model.rowCount() - 1)))
        self._filters_changed()
        self.decided.emit(ids, status)
        # after a single decision, move on to the next pair so a reviewer can keep pressing A/R
        n = self.proxy.rowCount()
        if len(ids) == 1 and n:
            nxt = row + 1 if self.proxy.status is None else row
            self.view.setCurrentIndex(self.proxy.index(min(max(0, nxt), n - 1), 0))
        return True

    def decide_selected(self, status: str) -> None:
        self.decide(self.selected_ids(), status)

    def decide_shown(self, status: str) -> None:
        self.decide(self.shown_ids(), status)

    def _update_buttons(self) -> None:
        has = self.proxy.rowCount() > 0
        for b in (self.accept_button, self.reject_button, self.pending_button, self.accept_all, self.reject_all):
            b.setEnabled(has)

    def _show_detail(self, index: QModelIndex) -> None:
        it = self.model.item(index.data(PairIdRole)) if index.isValid() else None
        self.pair_view.show_pair(it, self.model.label_set)
        if it is None:
            self.detail.clear()
            return
        q = (f"{it.quality:.3f} (label-to-image agreement of the segmentation model)" if it.quality is not None
             else "not scored (no segmentation checkpoint when it was generated)")
        self.detail.setText(
            f"<b>Pair #{it.id}</b> · job {it.job_id} · {it.strategy} · {it.renderer} · <b>{it.status}</b><br>"
            f"Classes added: {', '.join(it.classes_added) or '-'}<br>"
            f"Quality: {q}"
        )
