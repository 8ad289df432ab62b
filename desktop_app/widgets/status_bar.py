"""Status bar: the compute device and the jobs running in the background."""

from __future__ import annotations

import threading

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from segbalance.desktop_app.widgets.elided_label import ElidedLabel
from segbalance.desktop_app.workers import create_worker

_DEVICE_LOCK = threading.Lock()
_DEVICE: str | None = None


def detect_device() -> str:
    """'CUDA: <name>' or 'CPU'. Imports torch (seconds), so it runs off the UI thread, once per process:
    two threads importing torch at the same time break its operator registry."""
    global _DEVICE
    with _DEVICE_LOCK:
        if _DEVICE is None:
            import torch

            _DEVICE = f"CUDA: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU"
        return _DEVICE


def torch_version() -> str:
    with _DEVICE_LOCK:  # waits for a running detect_device() instead of importing torch alongside it
        try:
            import torch
        except ImportError:
            return "not installed"
        return torch.__version__


def device_choices() -> list[str]:
    """Explicit device names for the device pickers (cpu, cuda:0, ...)."""
    detect_device()  # imports torch once, under the lock
    import torch

    return ["cpu", *[f"cuda:{i}" for i in range(torch.cuda.device_count())]]


class StatusBar(QStatusBar):
    devicesFound = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_label = ElidedLabel("Idle")  # long job names are cut, the window never grows for them
        self.device_label = QLabel("Device: …")
        self.device_label.setToolTip("Device used for rendering and training (auto = CUDA when available)")
        self.addPermanentWidget(self.job_label)
        self.addPermanentWidget(self.device_label)
        self.device = ""
        w = create_worker(lambda: (detect_device(), device_choices()))
        # methods, not lambdas: a window closed before the answer comes is not called (Qt drops the connection)
        w.returned.connect(self._devices_found)
        w.errored.connect(self._no_torch)
        self._device_worker = w.start()

    def _devices_found(self, res: tuple) -> None:
        self.set_device(res[0])
        self.devicesFound.emit(res[1])

    def _no_torch(self, exc: BaseException) -> None:
        self.set_device(f"CPU (torch unavailable: {exc})")

    def set_device(self, device: str) -> None:
        self.device = device
        self.device_label.setText(f"Device: {device}")

    def set_jobs(self, names: list[str], db_jobs: list[dict] | None = None) -> None:
        """Jobs of this window by name; `db_jobs` are running rows of the workspace DB (e.g. a CLI `generate`)."""
        if not names and db_jobs:
            j = db_jobs[-1]
            prog = f" {j['done']}/{j['total']}" if j.get("total") else ""
            more = f" (+{len(db_jobs) - 1} more)" if len(db_jobs) > 1 else ""
            self.job_label.setText(f"Running elsewhere: job #{j['id']} {j['kind']}{prog}{more}")
            self.job_label.setToolTip("\n".join(f"job #{x['id']} {x['kind']}: {x['done']}/{x['total']}"
                                                for x in db_jobs))
            return
        if not names:
            self.job_label.setText("Idle")
        elif len(names) == 1:
            self.job_label.setText(f"Running: {names[0]}")
        else:  # the newest job is the one the user just started
            self.job_label.setText(f"Running: {names[-1]} (+{len(names) - 1} more)")
        self.job_label.setToolTip("\n".join(names))
