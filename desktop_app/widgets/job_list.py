"""Job list: every background job of this window (plans, generation, export, statistics, GAN and segmentation
training subprocesses) with its progress and a Cancel button, plus jobs other processes run on the workspace."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segbalance.desktop_app.state import AppState, JobEntry, format_eta


class JobList(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Job", "Progress", "Time left", ""])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.elsewhere = QLabel()
        self.elsewhere.setWordWrap(True)
        self.cancel_all = QPushButton("Cancel all")
        self.cancel_all.clicked.connect(state.cancel_all)
        bottom = QHBoxLayout()
        bottom.addWidget(self.elsewhere, 1)
        bottom.addWidget(self.cancel_all)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.table, 1)
        lay.addLayout(bottom)
        self.bars: dict[int, QProgressBar] = {}
        self.cancel_buttons: dict[int, QPushButton] = {}
        state.jobsChanged.connect(self.refresh)
        state.jobProgress.connect(self._progress)
        self.refresh()

    def refresh(self) -> None:
        entries = self.state.entries
        self.table.setRowCount(len(entries))
        self.bars, self.cancel_buttons = {}, {}
        for row, e in enumerate(entries):
            self.table.setItem(row, 0, QTableWidgetItem(e.name))
            bar = QProgressBar()
            self.bars[id(e)] = bar
            self._set_bar(bar, e)
            self.table.setCellWidget(row, 1, bar)
            self.table.setItem(row, 2, QTableWidgetItem(format_eta(e.eta_s)))
            b = QPushButton("Cancel")
            b.setToolTip(f"Stop {e.name} (work done so far is kept)")
            b.clicked.connect(lambda _c=False, e=e: self._cancel(e))
            b.setEnabled(not e.cancelling)
            self.cancel_buttons[id(e)] = b
            self.table.setCellWidget(row, 3, b)
        self.cancel_all.setEnabled(bool(entries))
        if not entries and not self.elsewhere.text():
            self.table.setRowCount(0)

    def set_elsewhere(self, db_jobs: list[dict]) -> None:
        """Jobs of the workspace run by other processes (a CLI generate, another window)."""
        self.elsewhere.setText("\n".join(f"Other process: job #{j['id']} {j['kind']} {j['done']}/{j['total']}"
                                         for j in db_jobs))

    def row_of(self, name: str) -> int | None:
        return next((r for r, e in enumerate(self.state.entries) if e.name == name), None)

    def cancel_button(self, name: str) -> QPushButton | None:
        e = next((e for e in self.state.entries if e.name == name), None)
        return self.cancel_buttons.get(id(e)) if e is not None else None

    def _cancel(self, e: JobEntry) -> None:
        e.request_cancel()
        b = self.cancel_buttons.get(id(e))
        if b is not None:
            b.setEnabled(False)
            b.setText("Cancelling…")

    def _progress(self, e: JobEntry) -> None:
        bar = self.bars.get(id(e))
        if bar is not None:
            self._set_bar(bar, e)
        row = next((r for r, x in enumerate(self.state.entries) if x is e), None)
        if row is not None:
            item = self.table.item(row, 2)
            if item is None:
                self.table.setItem(row, 2, QTableWidgetItem(format_eta(e.eta_s)))
            else:
                item.setText(format_eta(e.eta_s))

    def eta_text(self, name: str) -> str | None:
        """The time left the list shows for a job (None when it is not listed)."""
        row = self.row_of(name)
        item = self.table.item(row, 2) if row is not None else None
        return item.text() if item is not None else None

    @staticmethod
    def _set_bar(bar: QProgressBar, e: JobEntry) -> None:
        if e.total > 0:
            bar.setRange(0, e.total)
            bar.setValue(min(e.done, e.total))
            bar.setFormat("%v / %m (%p%)")
        else:
            bar.setRange(0, 0)  # busy until the job says how much there is
        bar.setAlignment(Qt.AlignmentFlag.AlignCenter)
