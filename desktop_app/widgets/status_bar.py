"""Status bar: the compute device and the jobs running in the background."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from desktop_app.workers import create_worker


def detect_device() -> str:
    """'CUDA: <name>' or 'CPU' (imports torch, so it runs off the UI thread)."""
    import torch

    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return "CPU"


class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_label = QLabel("Idle")
        self.device_label = QLabel("Device: …")
        self.device_label.setToolTip("Device used for rendering and training (auto = CUDA when available)")
        self.addPermanentWidget(self.job_label)
        self.addPermanentWidget(self.device_label)
        self.device = ""
        w = create_worker(detect_device)
        w.returned.connect(self.set_device)
        w.errored.connect(lambda exc: self.set_device(f"CPU (torch unavailable: {exc})"))
        self._device_worker = w.start()

    def set_device(self, device: str) -> None:
        self.device = device
        self.device_label.setText(f"Device: {device}")

    def set_jobs(self, names: list[str]) -> None:
        if not names:
            self.job_label.setText("Idle")
        elif len(names) == 1:
            self.job_label.setText(f"Running: {names[0]}")
        else:
            self.job_label.setText(f"Running: {names[0]} (+{len(names) - 1} more)")
