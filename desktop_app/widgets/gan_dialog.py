"""The "Train tiny GAN" dialog: how many iterations, and how long that takes here, before anything starts.

The time per iteration is measured by timing a few real training steps on a worker (core's estimate), so the
user sees "2000 iterations ≈ 3 h 20 min" before committing a machine for hours.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segbalance.desktop_app import core_calls
from segbalance.desktop_app.state import format_eta
from segbalance.desktop_app.workers import Worker, create_worker, error_text

DEFAULT_ITERS = 2000  # train-gan's own default for the tiny preset


class GanTrainDialog(QDialog):
    """Asks for the iterations; `startRequested(iterations)` when the user starts."""

    startRequested = Signal(int)

    def __init__(self, dataset_name: str, device: str, out_dir: str, save_every_s: float,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("train_gan_dialog")
        self.setWindowTitle("Train tiny GAN")
        self.setMinimumWidth(480)
        self.device = device
        self.seconds_per_iter: float | None = None
        self.worker: Worker | None = None
        intro = QLabel(f"Train a tiny pix2pixHD generator on <b>{dataset_name}</b> (device {device}) in the "
                       f"background; it shows in the Jobs dock and the Training tab, and its checkpoint goes to "
                       f"{out_dir}.")
        intro.setWordWrap(True)
        self.iters = QSpinBox(minimum=10, maximum=10_000_000, value=DEFAULT_ITERS, singleStep=100)
        self.iters.setToolTip("More iterations give better renders; the tiny preset's default is 2000")
        self.estimate = QLabel("Timing a few training steps on this machine…")
        self.estimate.setObjectName("gan_estimate")
        self.estimate.setWordWrap(True)
        self.estimate.setMinimumHeight(2 * self.estimate.fontMetrics().lineSpacing() + 4)
        keep = QLabel(f"It saves a checkpoint every {save_every_s:.0f} s and when stopped: quitting or cancelling "
                      "loses at most about a minute, and Resume (Training tab) continues it.")
        keep.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Iterations", self.iters)
        form.addRow("Time", self.estimate)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button: QPushButton = buttons.addButton("Start training", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.accepted.connect(lambda: self.startRequested.emit(self.iters.value()))
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(keep)
        lay.addWidget(buttons)
        self.iters.valueChanged.connect(lambda _v: self._show_estimate())
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def measure(self) -> Worker:
        """Time a few steps off the UI thread; the estimate follows the iteration count from then on."""
        w = create_worker(core_calls.gan_seconds_per_iteration, self.device)
        w.returned.connect(self.set_seconds_per_iteration)
        w.errored.connect(lambda exc: self.estimate.setText(f"could not time a step: {error_text(exc)}"))
        self.worker = w.start()
        return w

    def set_seconds_per_iteration(self, seconds: float) -> None:
        self.seconds_per_iter = float(seconds)
        self._show_estimate()

    def _show_estimate(self) -> None:
        s = self.seconds_per_iter
        if s is None:
            return
        total = s * self.iters.value()
        self.estimate.setText(f"about {s:.2f} s per iteration here, so {self.iters.value()} iterations take about "
                              f"{format_eta(total)} (h:mm:ss, timed on a few real steps)")
