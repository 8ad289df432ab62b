"""The log view: one line per event of the app and its jobs, newest at the bottom."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtWidgets import QPlainTextEdit, QWidget

MAX_LINES = 5000


class LogView(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setPlaceholderText("Messages of the app and its jobs appear here")

    def append_line(self, text: str) -> None:
        self.appendPlainText(f"{datetime.now():%H:%M:%S}  {text}")
