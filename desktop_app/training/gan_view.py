"""Live view of one GAN run (train-gan): the generator's and the discriminator's losses as the run logs them,
and sample renders of its last checkpoint on a few label maps of its dataset (rendered on a worker)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from segbalance.core.runs.queries import Series
from segbalance.desktop_app import core_calls
from segbalance.desktop_app.widgets.thumbnails import rgb_to_qimage
from segbalance.desktop_app.workers import Worker, create_worker, error_text

# train-gan's per-step losses (core.render.gan_train.train_step), as they are named in the run's metrics
G_LOSSES = {"loss_G_GAN": "#1f77b4", "loss_G_GAN_Feat": "#ff7f0e", "loss_G_VGG": "#9467bd", "l1": "#7f7f7f"}
D_LOSSES = {"loss_D_real": "#2ca02c", "loss_D_fake": "#d62728"}
N_SAMPLES = 3


class GanRunView(QWidget):
    """Loss curves of a GAN run and renders of its generator; `update_from(series)` redraws the curves."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(exitCleanup=False)
        self.title = QLabel("No run selected")
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.g_widget = pg.PlotWidget(title="generator losses")
        self.d_widget = pg.PlotWidget(title="discriminator losses")
        self.curves = {}
        for widget, names in ((self.g_widget, G_LOSSES), (self.d_widget, D_LOSSES)):
            widget.setBackground("w")
            widget.setMinimumSize(160, 120)
            plot = widget.getPlotItem()
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.addLegend(offset=(-5, 5))
            for name, color in names.items():
                self.curves[name] = plot.plot(pen=pg.mkPen(color, width=2), name=name.removeprefix("loss_"))
        self.d_widget.getPlotItem().setXLink(self.g_widget.getPlotItem())
        self.d_widget.getPlotItem().setLabel("bottom", "iteration")
        self.samples_box = QGroupBox("Sample renders (last checkpoint)")
        self.render_button = QPushButton("Render samples")
        self.render_button.setToolTip("Render a few label maps of the run's dataset with its last checkpoint")
        self.render_button.clicked.connect(self.render_samples)
        self.samples_note = QLabel("")
        self.samples_note.setWordWrap(True)
        self.samples_note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.sample_labels: list[QLabel] = []
        sl = QGridLayout(self.samples_box)
        sl.addWidget(self.render_button, 0, 0)
        sl.addWidget(self.samples_note, 0, 1)
        for i in range(N_SAMPLES):
            lab = QLabel()
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            lab.setMinimumHeight(40)
            self.sample_labels.append(lab)
            sl.addWidget(lab, 1, i) if i < 2 else sl.addWidget(lab, 1, 2)
        sl.setRowStretch(1, 1)
        grid = QGridLayout()
        grid.addWidget(self.g_widget, 0, 0)
        grid.addWidget(self.d_widget, 0, 1)
        grid.addWidget(self.samples_box, 1, 0, 1, 2)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addLayout(grid, 1)
        self.out_dir: str | None = None
        self.dataset: str | None = None
        self.worker: Worker | None = None
        self.images: list[np.ndarray] = []

    def set_run(self, out_dir: str | None, dataset: str | None) -> None:
        if out_dir != self.out_dir:
            self.images = []
            for lab in self.sample_labels:
                lab.clear()
            self.samples_note.setText("")
        self.out_dir, self.dataset = out_dir, dataset
        self.render_button.setEnabled(bool(out_dir and dataset))

    def clear(self, title: str = "No run selected") -> None:
        self.title.setText(title)
        for c in self.curves.values():
            c.setData([], [])

    def update_from(self, series: Series, title: str | None = None) -> None:
        if title is not None:
            self.title.setText(title)
        for name, curve in self.curves.items():
            xs, ys = series.points.get(name, ([], []))
            curve.setData(list(xs), list(ys))

    def point_count(self, name: str) -> int:
        xs, _ = self.curves[name].getData()
        return 0 if xs is None else len(xs)

    def render_samples(self) -> Worker | None:
        if not (self.out_dir and self.dataset) or (self.worker is not None and not self.worker.done.is_set()):
            return None
        self.samples_note.setText("rendering…")
        w = create_worker(core_calls.gan_samples, self.out_dir, self.dataset, N_SAMPLES)
        w.returned.connect(self._show_samples)
        w.errored.connect(lambda exc: self.samples_note.setText(error_text(exc)))
        self.worker = w.start()
        return w

    def _show_samples(self, samples: list) -> None:
        self.images = []
        for lab, (color, img, sample_id) in zip(self.sample_labels, samples, strict=False):
            pair = np.ascontiguousarray(np.concatenate([color, img], axis=0))  # label map over its render
            self.images.append(pair)
            pm = QPixmap.fromImage(rgb_to_qimage(pair))
            lab.setPixmap(pm.scaled(max(40, lab.width()), max(40, lab.height()), Qt.AspectRatioMode.KeepAspectRatio,
                                    Qt.TransformationMode.SmoothTransformation))
            lab.setToolTip(f"{sample_id}: label map (top) and the generator's render (bottom)")
        self.samples_note.setText(f"{len(samples)} label maps of the run's dataset, rendered now")
