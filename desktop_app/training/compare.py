"""Two runs side by side: per-class IoU bars (pyqtgraph) and a table of deltas (B - A)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from segbalance.core.runs.queries import ClassDelta

GAIN, LOSS = QColor(200, 240, 200), QColor(250, 205, 205)


class RunCompare(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Select two runs in the list and press Compare")
        pg.setConfigOptions(exitCleanup=False)  # see curves.py
        self.plot = pg.PlotWidget(title="per-class IoU (%)")
        self.plot.setBackground("w")
        self.plot.showGrid(x=True, alpha=0.3)
        self.plot.getPlotItem().getViewBox().invertY(True)
        self.plot.addLegend()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["class", "A (%)", "B (%)", "B − A"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setSizes([600, 300])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(split, 1)
        self.rows: list[ClassDelta] = []

    def show_comparison(self, name_a: str, name_b: str, rows: list[ClassDelta], rare: set[str] = frozenset()) -> None:
        self.rows = rows
        a = [np.nan if r.a is None else r.a * 100 for r in rows]
        b = [np.nan if r.b is None else r.b * 100 for r in rows]
        ds = [r.delta for r in rows if r.delta is not None]
        mean = f"; mean ΔIoU {np.mean(ds) * 100:+.2f} points" if ds else ""
        self.title.setText(f"A = {name_a}   B = {name_b}{mean}")
        self.plot.clear()
        # horizontal bars: class names sit one per row on the left axis and never overlap (19 vertical labels
        # under a 600 px chart did)
        y = np.arange(len(rows))
        self.plot.addItem(pg.BarGraphItem(x0=0, y=y - 0.2, width=np.nan_to_num(a), height=0.4, brush="#1f77b4",
                                          name="A"))
        self.plot.addItem(pg.BarGraphItem(x0=0, y=y + 0.2, width=np.nan_to_num(b), height=0.4, brush="#ff7f0e",
                                          name="B"))
        self.plot.getAxis("left").setTicks([[(i, r.name) for i, r in enumerate(rows)]])
        self.plot.getAxis("bottom").setTicks(None)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            d = r.delta
            cells = [r.name, "–" if r.a is None else f"{r.a * 100:.1f}", "–" if r.b is None else f"{r.b * 100:.1f}",
                     "–" if d is None else f"{d * 100:+.1f}"]
            for col, text in enumerate(cells):
                it = QTableWidgetItem(text + (" (rare)" if col == 0 and r.name in rare else ""))
                if col:
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == 3 and d is not None and abs(d) > 1e-9:
                    it.setBackground(QBrush(GAIN if d > 0 else LOSS))
                self.table.setItem(i, col, it)
        fit_table_width(self.table)


def fit_table_width(table: QTableWidget) -> None:
    """Columns sized to their contents and the table at least that wide, so no column is ever cut."""
    table.resizeColumnsToContents()
    width = table.horizontalHeader().length() + 2 * table.frameWidth() + table.verticalScrollBar().sizeHint().width()
    table.setMinimumWidth(min(width, 420))
