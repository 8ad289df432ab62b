"""Review gallery: the generated pairs of the workspace, judged in a large zoomable view and accepted or
rejected one by one or in bulk.

Every decision goes through the engine's review rule (core.jobs.decisions, which the CLI's `review` also uses),
written at once, so nothing is lost if the app stops and a failed pair can no more be accepted here than on the
command line. Decisions form one undo stack (U, Ctrl+Z; redo Ctrl+Shift+Z, Ctrl+Y): undo takes back the last
decision made, bulk ones included, whichever pair is selected now. Bulk decisions ask first, with the count.
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
    QTimer,
)
from PySide6.QtCore import Signal as _Signal
from PySide6.QtGui import QBrush, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QMessageBox,
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
from segbalance.core.jobs import decisions
from segbalance.core.jobs import pairs as pair_service
from segbalance.core.jobs.pairs import ACCEPTED, PAIR_STATUSES, PENDING, REJECTED, PairRecord
from segbalance.core.workspace import Workspace
from segbalance.desktop_app.widgets.pair_view import PairView
from segbalance.desktop_app.widgets.thumbnails import ThumbnailLoader, file_key, placeholder
from segbalance.desktop_app.workers import Worker, create_worker

# background per pair status, in core's order (pending, accepted, rejected, failed); unknown words stay white
STATUS_COLORS = dict(zip(PAIR_STATUSES, ("#fff8e1", "#e8f5e9", "#ffebee", "#eeeeee"), strict=False))
ALL = "All"
PairIdRole = Qt.ItemDataRole.UserRole + 1
PAIR_THUMB = QSize(176, 44)  # image + label side by side at the default thumbnail width
THUMB_WIDTHS = (120, 480)  # the thumbnail-size slider's range
REVIEW_KEYS = {Qt.Key.Key_A: ACCEPTED, Qt.Key.Key_R: REJECTED}  # U is undo, not "set pending"
SORTS = ("Oldest first", "Quality, lowest first", "Quality, highest first")
UNDO_KEYS = ("Ctrl+Z",)
REDO_KEYS = ("Ctrl+Shift+Z", "Ctrl+Y")


def load_pairs(ws: Workspace) -> list[PairRecord]:
    return pair_service.pair_records(ws)


def _read_pairs(ws: Workspace) -> tuple[list[PairRecord], dict]:
    """The pairs and what the review pane says of each (who decided, the quality note), in one read."""
    return load_pairs(ws), decisions.pair_notes(ws)


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
        """Thumbnails `width` px wide (image and label side by side, so a quarter as high); the rows stay, so
        the current pair and the selection stay too."""
        self.thumb = QSize(width, max(16, width // 4))
        for it in self.items:
            it.key = None
        self._row_of_key = {}
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1), [Qt.ItemDataRole.DecorationRole])

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
        self.job_id: int | None = None
        self.sort_by = SORTS[0]

    def set_job(self, job_id: int | None) -> None:
        self.job_id = job_id
        self.invalidate()

    def set_sort(self, sort_by: str) -> None:
        """Order by pair id, or by quality (unscored pairs last either way)."""
        self.sort_by = sort_by
        self.invalidate()
        self.sort(0, Qt.SortOrder.AscendingOrder)

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:
        items = self.sourceModel().items
        a, b = items[left.row()], items[right.row()]
        if self.sort_by == SORTS[0]:
            return a.id < b.id
        sign = 1 if self.sort_by == SORTS[1] else -1

        def key(it):
            return (it.quality is None, sign * (it.quality or 0.0), it.id)
        return key(a) < key(b)

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
            and (self.job_id is None or it.job_id == self.job_id)
        )


class ReviewGallery(QWidget):
    """Pairs with accept/reject (buttons, A/R keys, bulk over the selection or everything shown) and one undo
    stack of decisions."""

    decided = _Signal(list, str)  # pair ids, status (an undo or redo emits the statuses it restored, too)
    refused = _Signal(str)  # the engine's one-line reason a decision was not recorded
    sourceRequested = _Signal(str)  # a source sample id clicked in the large view
    pairActivated = _Signal(object)  # PairRecord (double click: look at it in the viewer)
    exportRequested = _Signal()
    message = _Signal(str)  # a short line for the status bar ("Nothing to undo")

    def __init__(self, loader: ThumbnailLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace: Workspace | None = None
        self.history: decisions.DecisionHistory | None = None
        self.notes: dict[int, decisions.PairNote] = {}
        self.last_refusal: str | None = None
        self.confirm_box: QMessageBox | None = None
        self._reader: Worker | None = None
        self.loader = loader or ThumbnailLoader(parent=self)
        self.model = PairListModel(self.loader, self)
        self.proxy = PairFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.sort(0, Qt.SortOrder.AscendingOrder)

        self.status_box, self.strategy_box, self.class_box = QComboBox(), QComboBox(), QComboBox()
        self.job_box, self.sort_box = QComboBox(), QComboBox()
        self.status_box.addItems([ALL, *PAIR_STATUSES])
        self.status_box.setToolTip("Filter by review status")
        self.strategy_box.setToolTip("Filter by recombination strategy")
        self.class_box.setToolTip("Filter by class added")
        self.job_box.setToolTip("Filter by the generation job that made the pair")
        self.sort_box.addItems(SORTS)
        self.sort_box.setToolTip("Order of the pairs: by id, or by quality score (unscored pairs last)")
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
        self.view.setMinimumWidth(150)
        self.thumb_size = QSlider(Qt.Orientation.Horizontal)
        self.thumb_size.setRange(*THUMB_WIDTHS)
        self.thumb_size.setValue(PAIR_THUMB.width())
        self.thumb_size.setFixedWidth(100)
        self.thumb_size.setToolTip("Thumbnail size (at most the width of the list column)")
        self.thumb_size.valueChanged.connect(self.set_thumb_width)
        self._refit = QTimer(self, singleShot=True, interval=150)
        self._refit.timeout.connect(lambda: self.set_thumb_width(self.thumb_size.value()))
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
        self.detail.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.accept_button = QPushButton("Accept (A)")
        self.accept_button.setObjectName("accept_button")
        self.reject_button = QPushButton("Reject (R)")
        self.reject_button.setObjectName("reject_button")
        self.undo_button = QPushButton("Undo (U)")
        self.undo_button.setToolTip("Take back the last decision, bulk ones included (U, Ctrl+Z)")
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip("Make the decision you undid again (Ctrl+Shift+Z, Ctrl+Y)")
        self.pending_button = self.undo_button  # the third review button: it undoes, it does not guess
        self.accept_all = QPushButton("Accept all shown…")
        self.reject_all = QPushButton("Reject all shown…")
        self.accept_button.clicked.connect(lambda: self.decide_selected(ACCEPTED))
        self.reject_button.clicked.connect(lambda: self.decide_selected(REJECTED))
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.accept_all.clicked.connect(lambda: self.decide_shown(ACCEPTED))
        self.reject_all.clicked.connect(lambda: self.decide_shown(REJECTED))
        for b in (self.accept_button, self.reject_button, self.undo_button, self.redo_button, self.accept_all,
                  self.reject_all):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keep focus on the list so A/R keep working
        self.view.installEventFilter(self)
        # undo/redo anywhere in the window while the Review tab is shown (hidden widgets' shortcuts stay quiet)
        self.shortcuts: list[QShortcut] = []
        for keys, slot in ((UNDO_KEYS, self.undo), (REDO_KEYS, self.redo)):
            for k in keys:
                sc = QShortcut(QKeySequence(k), self, context=Qt.ShortcutContext.WindowShortcut)
                sc.activated.connect(slot)
                self.shortcuts.append(sc)

        filters = QGridLayout()
        row0 = ((QLabel("Status"), self.status_box), (QLabel("Job"), self.job_box), (QLabel("Sort"), self.sort_box))
        row1 = ((QLabel("Strategy"), self.strategy_box), (QLabel("Class"), self.class_box))
        for r, row in enumerate((row0, row1)):
            for c, (label, box) in enumerate(row):
                box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                box.setMinimumContentsLength(6)
                filters.addWidget(label, r, 2 * c)
                filters.addWidget(box, r, 2 * c + 1)
        tools = QHBoxLayout()
        tools.addWidget(QLabel("Size"))
        tools.addWidget(self.thumb_size)
        tools.addWidget(refresh)
        tools.addWidget(self.export_button)
        filters.addLayout(tools, 1, 4, 1, 2)
        filters.setColumnStretch(6, 1)
        self.count_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons = QGridLayout()
        for i, b in enumerate((self.accept_button, self.reject_button, self.undo_button, self.redo_button)):
            buttons.addWidget(b, 0, i)
        buttons.addWidget(self.accept_all, 1, 0, 1, 2)
        buttons.addWidget(self.reject_all, 1, 2, 1, 2)
        side = QWidget()
        side_lay = QVBoxLayout(side)
        side_lay.setContentsMargins(0, 0, 0, 0)
        side_lay.addWidget(self.count_label)
        side_lay.addWidget(self.pair_view, 1)
        side_lay.addWidget(self.detail)
        side_lay.addLayout(buttons)
        split = QSplitter()
        split.setChildrenCollapsible(False)
        split.addWidget(self.view)
        split.addWidget(side)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([300, 580])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(filters)
        lay.addWidget(split, 1)
        for box in (self.status_box, self.strategy_box, self.class_box, self.job_box):
            box.currentIndexChanged.connect(self._filters_changed)
        self.sort_box.currentTextChanged.connect(self._sort_changed)
        self._update_buttons()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.view and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._refit.start()  # the column changed width: re-fit the thumbnails once it settles
        if obj in (self.view, self.pair_view.canvas) and event.type() in (QEvent.Type.KeyPress,
                                                                          QEvent.Type.KeyRelease):
            if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():  # hold to see the label map
                self.pair_view.flicker(event.type() == QEvent.Type.KeyPress)
                return True
            if event.type() == QEvent.Type.KeyRelease:
                return super().eventFilter(obj, event)
            mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            pressed = QKeySequence(event.keyCombination())
            for keys, slot in ((UNDO_KEYS, self.undo), (REDO_KEYS, self.redo)):
                if any(pressed.matches(QKeySequence(k)) == QKeySequence.SequenceMatch.ExactMatch for k in keys):
                    slot()
                    return True
            if not mods:
                status = REVIEW_KEYS.get(event.key())
                if status is not None:
                    self.decide_selected(status)
                    return True
                if event.key() == Qt.Key.Key_U:
                    self.undo()
                    return True
            if mods in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier) \
                    and self.pair_view.handle_key(event.key()):
                return True  # Shift is how "+" is typed on most layouts
        return super().eventFilter(obj, event)

    # -- data -----------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        self.workspace = ws
        self.history = decisions.DecisionHistory(ws) if ws is not None else None
        self.view.setCurrentIndex(QModelIndex())
        self.refresh()

    def set_thumb_width(self, width: int) -> None:
        """Thumbnails `width` px wide, or as wide as the list column when that is narrower (#41 item 6: a
        large size in a narrow column spilled past its edge)."""
        fit = max(THUMB_WIDTHS[0], self.view.viewport().width() - 24) if self.view.isVisible() else width
        width = min(width, fit)
        if width != self.model.thumb.width():
            self.model.set_thumb_width(width)
        self._apply_grid()

    def _apply_grid(self) -> None:
        t = self.model.thumb
        self.view.setIconSize(t)
        self.view.setGridSize(QSize(t.width() + 14, t.height() + 32))
        # the column grows with large thumbnails, up to what a 1366-px window leaves it beside the large view
        self.view.setMinimumWidth(min(t.width() + 40, 300))

    def set_label_set(self, label_set: LabelSet | None) -> None:
        self.model.label_set = label_set or CITYSCAPES

    def refresh(self) -> None:
        """Reload the pairs from the DB, keeping filters and the current pair (the first pending one when none
        is current, e.g. after a relaunch)."""
        ws = self.workspace
        self._show_items(*(_read_pairs(ws) if ws is not None else ([], {})))

    def refresh_async(self) -> Worker | None:
        """refresh() with the DB read on a worker (while a job writes pairs); skipped while one is reading."""
        ws = self.workspace
        if ws is None or (self._reader is not None and not self._reader.done.is_set()):
            return None
        w = create_worker(_read_pairs, ws)
        w.returned.connect(lambda res: self.workspace is ws and self._show_items(*res))
        self._reader = w.start()
        return w

    def _show_items(self, items: list[PairRecord], notes: dict) -> None:
        current = self.current_id()
        self.notes = notes
        self.model.set_items(items)
        self._fill_box(self.strategy_box, sorted({it.strategy for it in items}))
        self._fill_box(self.class_box, sorted({c for it in items for c in it.classes_added}))
        self._fill_box(self.job_box, [f"#{j}" for j in sorted({it.job_id for it in items})])
        self._filters_changed()
        if current is None or not self.select(current):
            self.select_first_pending()

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

        job = val(self.job_box)
        self.proxy.job_id = int(job[1:]) if job else None
        self.proxy.set_filters(val(self.status_box), val(self.strategy_box), val(self.class_box))
        self._update_count()
        if not self.view.currentIndex().isValid() and self.proxy.rowCount():
            self.select_first_pending()
        self._update_buttons()

    def _sort_changed(self, sort_by: str) -> None:
        current = self.current_id()
        self.proxy.set_sort(sort_by)
        if current is not None:
            self.select(current)

    def _update_count(self) -> None:
        n, total = self.proxy.rowCount(), self.model.rowCount()
        counts = {s: sum(it.status == s for it in self.model.items) for s in PAIR_STATUSES}
        summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        self.count_label.setText(f"{n} of {total} pairs shown ({summary})" if total else "No pairs yet")

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

    def select_first_pending(self) -> bool:
        """Make the first pending pair shown current (the first pair when none is pending)."""
        shown = self.shown_ids()
        pending = [i for i in shown if (it := self.model.item(i)) is not None and it.status == PENDING]
        target = pending[0] if pending else (shown[0] if shown else None)
        return target is not None and self.select(target)

    # -- decisions --------------------------------------------------------------------
    def decide(self, ids: list[int], status: str) -> bool:
        """Record a decision through the engine (one step of the undo stack); a refusal (failed pair) is said
        through `refused`. A single decision moves on to the next pair so a reviewer can keep pressing A/R."""
        if self.history is None or not ids:
            return False
        row = self.view.currentIndex().row()
        try:
            d = self.history.decide(ids, status)
        except SegbalanceError as exc:
            self.last_refusal = str(exc)
            self.refused.emit(self.last_refusal)
            return False
        self.last_refusal = None
        self._apply({i: status for i in d.ids})
        self.decided.emit(d.ids, status)
        n = self.proxy.rowCount()
        if len(ids) == 1 and n:
            nxt = row + 1 if self.proxy.status is None else row
            self.view.setCurrentIndex(self.proxy.index(min(max(0, nxt), n - 1), 0))
        return True

    def undo(self) -> decisions.Decision | None:
        """Take back the last decision (whichever pair is selected) and show its first pair again."""
        return self._step(self.history.undo if self.history is not None else None, undo=True)

    def redo(self) -> decisions.Decision | None:
        return self._step(self.history.redo if self.history is not None else None, undo=False)

    def _step(self, fn, *, undo: bool) -> decisions.Decision | None:
        if fn is None:
            return None
        try:
            d = fn()
        except SegbalanceError as exc:
            self.last_refusal = str(exc)
            self.refused.emit(self.last_refusal)
            return None
        if d is None:
            self.message.emit("Nothing to " + ("undo" if undo else "redo"))
            return None
        restored = dict(d.before) if undo else {i: d.status for i in d.ids}
        self._apply(restored)
        for i, st in restored.items():
            self.decided.emit([i], st)
        if not self.select(d.ids[0]):  # filtered out now (e.g. Status = pending): show it anyway
            self.status_box.setCurrentIndex(0)
            self.select(d.ids[0])
        return d

    def _apply(self, statuses: dict[int, str]) -> None:
        """Show new statuses: thumbnails, counts, the detail pane and who decided."""
        for it in self.model.items:
            if it.id in statuses:
                it.status = statuses[it.id]
        if self.workspace is not None:
            self.notes = decisions.pair_notes(self.workspace)
        if self.model.rowCount():
            self.model.dataChanged.emit(self.model.index(0), self.model.index(self.model.rowCount() - 1))
        self._filters_changed()
        self._show_detail(self.view.currentIndex())

    def decide_selected(self, status: str) -> None:
        ids = self.selected_ids()
        self.confirm_bulk(ids, status, "selected") if len(ids) > 1 else self.decide(ids, status)

    def decide_shown(self, status: str) -> None:
        self.confirm_bulk(self.shown_ids(), status, "shown")

    def confirm_bulk(self, ids: list[int], status: str, which: str) -> QMessageBox | None:
        """Ask before deciding on many pairs at once, with the count and what it overrides (non-blocking)."""
        if not ids:
            return None
        verb = {ACCEPTED: "Accept", REJECTED: "Reject"}[status]
        items = [self.model.item(i) for i in ids]
        differ = {}
        for it in items:
            if it is not None and it.status not in (PENDING, status):
                differ[it.status] = differ.get(it.status, 0) + 1
        extra = "".join(f"\n{n} of them {'is' if n == 1 else 'are'} {st} now and will be {status}."
                        for st, n in differ.items())
        box = QMessageBox(QMessageBox.Icon.Question, f"{verb} {len(ids)} pairs",
                          f"{verb} all {len(ids)} {which} pairs?{extra}\nUndo (U or Ctrl+Z) takes it back.",
                          QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("bulk_confirm")
        ok = box.addButton(f"{verb} {len(ids)}", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        ok.clicked.connect(lambda: self.decide(ids, status))
        self.confirm_box = box
        box.open()
        return box

    def _update_buttons(self) -> None:
        has = self.proxy.rowCount() > 0
        for b in (self.accept_button, self.reject_button, self.accept_all, self.reject_all):
            b.setEnabled(has)
        self.undo_button.setEnabled(bool(self.history and self.history.done))
        self.redo_button.setEnabled(bool(self.history and self.history.undone))

    def _show_detail(self, index: QModelIndex | QPersistentModelIndex) -> None:
        it = self.model.item(index.data(PairIdRole)) if index.isValid() else None
        if it is not self.pair_view.item:
            self.pair_view.show_pair(it, self.model.label_set)
        if it is None:
            self.detail.clear()
            return
        note = self.notes.get(it.id)
        q = note.quality if note is not None else (f"{it.quality:.3f}" if it.quality is not None else "not scored")
        who = note.decided_by if note is not None else "-"
        self.detail.setText(
            f"<b>Pair #{it.id}</b> · job {it.job_id} · {it.strategy} · {it.renderer} · <b>{it.status}</b>"
            f" — decided by {who}<br>"
            f"Classes added: {', '.join(it.classes_added) or '-'}<br>"
            f"Quality: {q}"
        )
