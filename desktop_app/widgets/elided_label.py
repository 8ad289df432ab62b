"""A one-line label that never widens its window: long text is cut with "…" (the whole text in the tooltip)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None, preferred_width: int = 320) -> None:
        super().__init__(text, parent)
        self.preferred_width = preferred_width
        self.field_separator: str | None = None  # set: whole fields are dropped from the end, never cut mid-field
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setToolTip(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(text)

    def sizeHint(self) -> QSize:
        h = super().sizeHint()
        return QSize(min(h.width(), self.preferred_width), h.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(min(60, super().minimumSizeHint().width()), super().minimumSizeHint().height())

    def shown_text(self, width: int) -> str:
        """What fits in `width`: whole leading fields then "…" when there is a separator, else a middle cut."""
        fm, text, sep = self.fontMetrics(), self.text(), self.field_separator
        if sep and sep in text and fm.horizontalAdvance(text) > width:
            fields = text.split(sep)
            while len(fields) > 1 and fm.horizontalAdvance(sep.join(fields) + sep + "…") > width:
                fields.pop()
            text = sep.join(fields) + sep + "…"
        return fm.elidedText(text, Qt.TextElideMode.ElideMiddle, width)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        r = self.contentsRect()
        text = self.shown_text(r.width())
        p.drawText(r, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), text)
