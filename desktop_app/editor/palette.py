"""Class palette: the label set's classes with their colors, a search box, visibility checkboxes and
hotkey numbers for the first ten."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from segbalance.core.datasets.labels import LabelSet

HOTKEYS = "1234567890"


def color_icon(rgb: tuple[int, int, int], size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


class ClassPalette(QWidget):
    """Pick the class to paint; untick a class to hide it in the overlay."""

    classSelected = Signal(int)
    visibilityChanged = Signal(object)  # set of hidden class ids

    def __init__(self, label_set: LabelSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label_set = label_set
        self.search = QLineEdit(placeholderText="Search classes…")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.search)
        lay.addWidget(self.list)
        # trained classes first (by train id), so the number keys reach road, sidewalk, building, ...;
        # void classes after them, by id
        first = [c for c in label_set.train_classes if 0 <= c.id <= 255]
        rest = sorted((c for c in label_set.classes if 0 <= c.id <= 255 and c not in first), key=lambda c: c.id)
        self.classes = first + rest
        self.hotkey_classes = [c.id for c in self.classes[:10]]
        for i, c in enumerate(self.classes):
            key = f"[{HOTKEYS[i]}] " if i < 10 else "     "
            item = QListWidgetItem(color_icon(c.color), f"{key}{c.id:3d}  {c.name}")
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            item.setToolTip(f"{c.name} (id {c.id}, {c.category}{', things' if c.has_instances else ''})")
            self.list.addItem(item)
        # wide enough for the longest class name (plus checkbox, swatch, scroll bar): names are never cut
        fm = self.list.fontMetrics()
        longest = max((fm.horizontalAdvance(self.list.item(i).text()) for i in range(self.list.count())), default=80)
        self.list.setMinimumWidth(longest + 56)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.search.textChanged.connect(self._filter)
        self.list.currentItemChanged.connect(self._current)
        self.list.itemChanged.connect(self._checked)
        self.search.returnPressed.connect(self._pick_first_visible)

    def _filter(self, text: str) -> None:
        t = text.strip().lower()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(bool(t) and t not in item.text().lower())

    def _pick_first_visible(self) -> None:
        for i in range(self.list.count()):
            if not self.list.item(i).isHidden():
                self.list.setCurrentRow(i)
                return

    def _current(self, item: QListWidgetItem | None, _prev: object = None) -> None:
        if item is not None:
            self.classSelected.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _checked(self, _item: QListWidgetItem) -> None:
        self.visibilityChanged.emit(self.hidden())

    def hidden(self) -> set[int]:
        return {
            int(self.list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.list.count())
            if self.list.item(i).checkState() != Qt.CheckState.Checked
        }

    def select(self, class_id: int) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == class_id:
                self.list.setCurrentRow(i)
                return

    def select_hotkey(self, index: int) -> None:
        if 0 <= index < len(self.hotkey_classes):
            self.select(self.hotkey_classes[index])

    def current_class(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))
