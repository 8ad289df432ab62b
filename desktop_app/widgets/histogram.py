"""Class histogram (pyqtgraph): one bar per class in its color, with target and predicted-after-plan overlays."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.datasets.stats import DatasetStats
from segbalance.core.planning.summaries import ClassRow, class_rows

PIXEL_SHARE, IMAGE_FREQ = "Pixel share", "Image frequency"
BY_ID, BY_FREQ = "By id", "By frequency"
BAR_HEIGHT = 0.8
ROW_PX = 15  # at least this many pixels per class row (labels never overlap)
PAIRED_HEIGHT = 0.4  # current and predicted bars side by side in one row


class ClassHistogram(QWidget):
    """Horizontal bars (class names stay readable); hover shows numbers, click emits the class."""

    classClicked = Signal(object)  # class name, or None when a second click on the selected bar clears it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[ClassRow] = []
        self.order: list[int] = []
        self.target: dict[str, float] | None = None
        self.predicted: dict[str, float] | None = None
        self.n_images = 0
        self.selected: str | None = None  # the class the browser is filtered on (highlighted bar)

        self.mode = QComboBox()
        self.mode.addItems([PIXEL_SHARE, IMAGE_FREQ])
        self.mode.setToolTip("Share of labeled pixels, or fraction of images containing the class")
        self.sort = QComboBox()
        self.sort.addItems([BY_ID, BY_FREQ])
        self.log = QCheckBox("Log")
        self.log.setToolTip("Logarithmic value axis (rare classes become visible)")
        self.title = QLabel("No statistics yet")
        self.title.setWordWrap(True)
        self.info = QLabel(" ")
        self.info.setWordWrap(True)

        pg.setConfigOptions(antialias=True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=False, alpha=0.25)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("bottom").setStyle(maxTextLevel=0)  # labels on major ticks only: none overlap on log
        for ax in ("left", "bottom"):
            self.plot.getAxis(ax).setTextPen((40, 40, 40))
            self.plot.getAxis(ax).setPen((120, 120, 120))
        self.plot.setMinimumHeight(170)
        # one readable row per class: on a short screen the chart scrolls instead of squeezing names together
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.plot)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumHeight(170)
        self.vb = self.plot.getPlotItem().getViewBox()
        self.vb.invertY(True)
        self.bars = pg.BarGraphItem(x0=[], y=[], width=[], height=BAR_HEIGHT)
        self.pred_bars = pg.BarGraphItem(x0=[], y=[], width=[], height=PAIRED_HEIGHT, brush=pg.mkBrush(70, 70, 70, 200),
                                         pen=pg.mkPen((20, 20, 20), width=1))
        self.target_marks = pg.ScatterPlotItem(symbol="|", size=14, pen=pg.mkPen((220, 0, 0), width=3))
        self.plot.addItem(self.bars)
        self.plot.addItem(self.pred_bars)
        self.plot.addItem(self.target_marks)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._mouse_clicked)

        controls = QHBoxLayout()
        controls.addWidget(self.mode)
        controls.addWidget(self.sort)
        controls.addWidget(self.log)
        controls.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addLayout(controls)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.legend)
        lay.addWidget(self.info)
        for w in (self.mode, self.sort):
            w.currentIndexChanged.connect(self.redraw)
        self.log.toggled.connect(self.redraw)
        self.redraw()

    # -- inputs ---------------------------------------------------------------------
    def set_stats(self, stats: DatasetStats | None) -> None:
        self.rows = class_rows(stats) if stats is not None else []
        self.n_images = stats.n_images if stats is not None else 0
        split = (stats.split or "all splits") if stats is not None else ""
        note = "" if split == "train" else " (the Balance panel counts the train split only)"
        self.title.setText(f"{self.n_images} images · split: {split}{note}" if stats is not None
                           else "No statistics yet")
        self.title.setToolTip("Shares differ between the histogram and the Balance panel when the histogram shows "
                              "other splits than train: plans balance the train split, which is what training sees")
        self.redraw()

    def set_target(self, target: dict[str, float] | None) -> None:
        self.target = target
        self.redraw()

    def set_predicted(self, predicted: dict[str, float] | None) -> None:
        self.predicted = predicted
        self.redraw()

    # -- what is drawn (also what tests read) ---------------------------------------------
    def values(self) -> np.ndarray:
        """Current value per class in train-id order, in the chosen mode."""
        key = "share" if self.mode.currentText() == PIXEL_SHARE else "frequency"
        return np.array([getattr(r, key) for r in self.rows], float)

    def bar_names(self) -> list[str]:
        return [self.rows[i].name for i in self.order]

    def bar_values(self) -> np.ndarray:
        """Values of the drawn bars, top to bottom (log mode draws log10 of these)."""
        return self.values()[self.order] if self.rows else np.zeros(0)

    def predicted_values(self) -> np.ndarray | None:
        if self.predicted is None or self.mode.currentText() != PIXEL_SHARE:
            return None
        return np.array([self.predicted.get(self.rows[i].name, np.nan) for i in self.order], float)

    def _overlay(self, shares: dict[str, float] | None) -> np.ndarray | None:
        if shares is None or self.mode.currentText() != PIXEL_SHARE:
            return None
        return np.array([shares.get(self.rows[i].name, np.nan) for i in self.order], float)

    def redraw(self) -> None:
        vals = self.values()
        if self.sort.currentText() == BY_FREQ:
            self.order = [int(i) for i in np.argsort(-vals, kind="stable")]
        else:
            self.order = list(range(len(self.rows)))
        shown = vals[self.order] if self.rows else np.zeros(0)
        y = np.arange(len(shown), dtype=float)
        log = self.log.isChecked()
        pred, target = self._overlay(self.predicted), self._overlay(self.target)
        every = np.concatenate([shown, *(a[np.isfinite(a)] for a in (pred, target) if a is not None)])
        positive = every[every > 0]
        floor = float(positive.min()) / 2 if positive.size else 1e-6

        def to_axis(v: np.ndarray) -> np.ndarray:
            return np.log10(np.maximum(v, floor)) if log else v

        x0 = np.log10(floor) if log else 0.0
        self.plot.getAxis("bottom").setLogMode(log)
        brushes = [pg.mkBrush(*self.rows[i].color) for i in self.order]
        pens = [pg.mkPen((0, 0, 0), width=3) if self.rows[i].name == self.selected else pg.mkPen((60, 60, 60), width=1)
                for i in self.order]
        # with a plan, each class gets two bars: current (upper, its color) and predicted (lower, dark), so the
        # change reads on a linear scale too instead of a dashed outline over the same bar
        cur_h, cur_y = (PAIRED_HEIGHT, y - PAIRED_HEIGHT / 2) if pred is not None else (BAR_HEIGHT, y)
        self.bars.setOpts(x0=np.full(len(y), x0), y=cur_y, width=to_axis(shown) - x0, height=cur_h,
                          brushes=brushes, pens=pens or None, pen=pg.mkPen((60, 60, 60), width=1))
        if pred is not None:
            ok = np.isfinite(pred)
            self.pred_bars.setOpts(x0=np.full(ok.sum(), x0), y=y[ok] + PAIRED_HEIGHT / 2,
                                   width=to_axis(pred[ok]) - x0, height=PAIRED_HEIGHT)
        else:
            self.pred_bars.setOpts(x0=[], y=[], width=[])
        self.pred_bars.setVisible(pred is not None)
        if target is not None:
            ok = np.isfinite(target)
            self.target_marks.setData(x=to_axis(target[ok]), y=y[ok])
        else:
            self.target_marks.setData(x=[], y=[])
        parts = [] if pred is not None else ["bars: current"]
        if self.selected:
            parts.append(f"<b>filter: {self.selected}</b> (click it again to clear)")
        if pred is not None:
            parts.append("upper bar: current · lower dark bar: predicted after plan")
        if target is not None:
            parts.append('<span style="color:#dc0000">|</span> target')
        self.legend.setText(" · ".join(parts) if self.rows else "")
        self.plot.setMinimumHeight(max(170, ROW_PX * len(y) + 60))
        self.plot.getAxis("left").setTicks([[(float(i), self.rows[j].name) for i, j in enumerate(self.order)]])
        self.plot.setLabel("bottom", self.mode.currentText())
        if len(y):
            hi = float(to_axis(np.array([max(every.max(), floor)]))[0])
            self.vb.setXRange(x0, hi + 0.05 * (hi - x0 or 1), padding=0)
            self.vb.setYRange(-0.6, len(y) - 0.4, padding=0)

    # -- hover and click -------------------------------------------------------------------
    def row_at_scene(self, pos: QPointF) -> int | None:
        if not self.rows or not self.vb.sceneBoundingRect().contains(pos):
            return None
        p = self.vb.mapSceneToView(pos)
        i = int(round(p.y()))
        if 0 <= i < len(self.order) and abs(p.y() - i) <= BAR_HEIGHT / 2:
            return i
        return None

    def info_for(self, i: int) -> str:
        """The exact numbers of the bar at display row i."""
        r = self.rows[self.order[i]]
        text = (f"{r.name}: {r.share:.3%} of labeled pixels ({r.pixels:,} px), "
                f"in {r.images}/{self.n_images} images ({r.frequency:.1%})")
        if self.target and r.name in self.target:
            text += f" · target {self.target[r.name]:.3%}"
        if self.predicted and r.name in self.predicted:
            text += f" · predicted {self.predicted[r.name]:.3%}"
        return text

    def _mouse_moved(self, pos: QPointF) -> None:
        i = self.row_at_scene(pos)
        text = self.info_for(i) if i is not None else " "
        self.info.setText(text)
        if i is not None:
            QToolTip.showText(QCursor.pos(), text, self.plot)

    def _mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        i = self.row_at_scene(event.scenePos())
        if i is not None:
            name = self.rows[self.order[i]].name
            self.set_selected(None if name == self.selected else name)
            self.classClicked.emit(self.selected)

    def set_selected(self, name: str | None) -> None:
        """Highlight the bar the browser is filtered on (None: no filter)."""
        self.selected = name
        self.redraw()

    def bar_scene_pos(self, name: str) -> QPointF:
        """Scene position of the middle of a class's bar (for tests and tours)."""
        i = self.bar_names().index(name)
        x = float(self.bars.opts["x0"][i] + self.bars.opts["width"][i] / 2)
        return self.vb.mapViewToScene(QPointF(x, float(self.bars.opts["y"][i])))


__all__ = ["ClassHistogram", "ClassRow", "class_rows"]
