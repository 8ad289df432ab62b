"""Live view of one run: loss, lr and val mIoU curves (pyqtgraph) and the per-class IoU table (with, for a run
that filters noisy generated pixels, the share of each class's generated pixels it ignored)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QGridLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.runs.queries import Series

RARE_BRUSH = QBrush(QColor(255, 214, 153))


class RunCurves(QWidget):
    """Plots a Series; `update_from(series)` redraws what has arrived."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # pyqtgraph's atexit scene cleanup crashes this PySide6 at interpreter exit (bool refcount abort)
        pg.setConfigOptions(exitCleanup=False)
        self.title = QLabel("No run selected")
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # three PlotWidgets rather than one GraphicsLayoutWidget: the latter crashes PySide6 at interpreter exit
        self.loss_widget = pg.PlotWidget(title="loss")
        self.lr_widget = pg.PlotWidget(title="learning rate")
        self.miou_widget = pg.PlotWidget(title="val mIoU (%)")
        for w in (self.loss_widget, self.lr_widget, self.miou_widget):
            w.setBackground("w")
            w.setMinimumSize(160, 120)
        self.loss_plot = self.loss_widget.getPlotItem()
        self.lr_plot = self.lr_widget.getPlotItem()
        self.miou_plot = self.miou_widget.getPlotItem()
        self.lr_plot.setXLink(self.loss_plot)
        self.miou_plot.setXLink(self.loss_plot)
        for p in (self.loss_plot, self.lr_plot, self.miou_plot):
            p.showGrid(x=True, y=True, alpha=0.3)
        self.lr_plot.setLabel("left", "lr")  # the SI prefix keeps 1e-3 ticks readable
        self.miou_plot.setLabel("bottom", "iteration")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#1f77b4", width=2))
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen("#ff7f0e", width=2))
        self.miou_curve = self.miou_plot.plot(pen=pg.mkPen("#2ca02c", width=2), symbol="o", symbolSize=6)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["class", "IoU (%)", "train pixels (%)", "ignored (%)"])
        self.table.horizontalHeaderItem(3).setToolTip(
            "noisy-pixel filter: share of the class's generated pixels the run ignored so far")
        self.table.setColumnHidden(3, True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setToolTip("highlighted: rare classes (under 1% of the training pixels)")
        # a 2x2 grid of equal cells: the table scrolls inside its cell and never squeezes the charts
        self.plots = QWidget()
        grid = QGridLayout(self.plots)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_widget, 0, 0)
        grid.addWidget(self.lr_widget, 0, 1)
        grid.addWidget(self.miou_widget, 1, 0)
        grid.addWidget(self.table, 1, 1)
        for i in range(2):
            grid.setColumnStretch(i, 1)
            grid.setRowStretch(i, 1)
        self.table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.plots, 1)
        self.shares: dict[str, float] = {}
        self.rare: set[str] = set()

    def set_class_shares(self, shares: dict[str, float], rare: set[str]) -> None:
        self.shares, self.rare = shares, rare

    def clear(self, title: str = "No run selected") -> None:
        self.title.setText(title)
        for c in (self.loss_curve, self.lr_curve, self.miou_curve):
            c.setData([], [])
        self.table.setRowCount(0)

    def update_from(self, series: Series, title: str | None = None) -> None:
        if title is not None:
            self.title.setText(title)
        for name, curve, scale in (("loss", self.loss_curve, 1.0), ("lr", self.lr_curve, 1.0),
                                   ("val_miou", self.miou_curve, 100.0)):
            xs, ys = series.points.get(name, ([], []))
            curve.setData(list(xs), [y * scale for y in ys])
        self._fill_table(series.per_class, series.ignored_per_class)

    def point_count(self, name: str) -> int:
        """Points currently drawn for a metric (what a user sees on the curve)."""
        curve = {"loss": self.loss_curve, "lr": self.lr_curve, "val_miou": self.miou_curve}[name]
        xs, _ = curve.getData()
        return 0 if xs is None else len(xs)

    def _fill_table(self, per_class: dict[str, float | None], ignored: dict[str, float | None] | None = None) -> None:
        ignored = ignored or {}
        names = list(per_class) or list(self.shares) or list(ignored)
        self.table.setColumnHidden(3, not ignored)
        self.table.setRowCount(len(names))
        for row, name in enumerate(names):
            iou = per_class.get(name)
            share = self.shares.get(name)
            items = [
                QTableWidgetItem(name),
                QTableWidgetItem("–" if iou is None else f"{iou * 100:.1f}"),
                QTableWidgetItem("–" if share is None else f"{share * 100:.2f}"),
                QTableWidgetItem("–" if ignored.get(name) is None else f"{ignored[name] * 100:.1f}"),
            ]
            for col, it in enumerate(items):
                if col:
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if name in self.rare:
                    it.setBackground(RARE_BRUSH)
                    it.setToolTip("rare class")
                self.table.setItem(row, col, it)
        self.table.resizeColumnsToContents()

    def highlighted_rows(self) -> list[str]:
        return [
            self.table.item(r, 0).text()
            for r in range(self.table.rowCount())
            if self.table.item(r, 0).background() == RARE_BRUSH
        ]
