"""Generation panel: renderer, checkpoint, device, quality gate; Start/Cancel with progress, rate and ETA."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segbalance.desktop_app import engine
from segbalance.desktop_app.state import AppState
from segbalance.desktop_app.workers import Worker, create_worker, error_text

REFRESH_PAIRS_S = 1.0  # how often the gallery reloads while pairs arrive


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class RateMeter:
    """Items per second and time left, from (done, total) reports."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.d0 = 0

    def update(self, done: int, total: int, now: float | None = None) -> tuple[float | None, float | None]:
        now = time.monotonic() if now is None else now
        if self.t0 is None or done < self.d0:
            self.t0, self.d0 = now, done
            return None, None
        dt = now - self.t0
        if dt <= 0 or done == self.d0:
            return None, None
        rate = (done - self.d0) / dt
        return rate, (total - done) / rate if rate > 0 else None


class GenerationPanel(QWidget):
    """Starts a generation job on the current plan; the job runs on a worker thread, the UI never waits."""

    jobFinished = Signal(str)  # "done", "cancelled" or "failed"

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: Worker | None = None
        self.meter = RateMeter()
        self._last_refresh = 0.0
        self.train_process: QProcess | None = None
        self.train_command = [sys.executable, "-m", "segbalance.core.cli", "train-gan"]  # our own CLI, as a subprocess

        self.plan_label = QLabel("No plan: make one in the Balance panel, or load a plan file")
        self.plan_label.setWordWrap(True)
        load_plan = QPushButton("Load plan…")
        load_plan.clicked.connect(self._load_plan_dialog)
        self.renderer = QComboBox()
        self.renderer.addItems(engine.renderer_names())
        self.renderer.setToolTip("copypaste: original pixels of each pasted layer; pix2pixhd: a trained generator; "
                                 "procedural: the sample-data painter (for the built-in sample dataset)")
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("generator checkpoint (pix2pixhd only)")
        browse = QPushButton("…")
        browse.setToolTip("Choose a checkpoint file")
        browse.clicked.connect(self._choose_checkpoint)
        self.train_button = QPushButton("Train tiny GAN")
        self.train_button.setToolTip("Start `segbalance train-gan --preset tiny` in the background")
        self.train_button.clicked.connect(self.train_tiny_gan)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu"])
        self.device.setToolTip("auto = CUDA when available")
        self.use_quality = QCheckBox("Quality gate")
        self.min_quality = QDoubleSpinBox()
        self.min_quality.setRange(0, 1)
        self.min_quality.setSingleStep(0.05)
        self.min_quality.setValue(0.3)
        self.min_quality.setEnabled(False)
        self.min_quality.setToolTip("Pairs whose segmentation mIoU is below this are kept but marked rejected")
        self.use_quality.toggled.connect(self.min_quality.setEnabled)
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("no job running")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.rate_label = QLabel(" ")
        self.rate_label.setMinimumWidth(180)
        self.error_label = QLabel()
        self.error_label.setObjectName("error_label")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.addWidget(QLabel("Plan"), 0, 0)
        grid.addWidget(self.plan_label, 0, 1, 1, 4)
        grid.addWidget(load_plan, 0, 5)
        grid.addWidget(QLabel("Renderer"), 1, 0)
        grid.addWidget(self.renderer, 1, 1)
        grid.addWidget(QLabel("Device"), 1, 2)
        grid.addWidget(self.device, 1, 3)
        grid.addWidget(self.use_quality, 1, 4)
        grid.addWidget(self.min_quality, 1, 5)
        grid.addWidget(QLabel("Checkpoint"), 2, 0)
        grid.addWidget(self.checkpoint, 2, 1, 1, 3)
        grid.addWidget(browse, 2, 4)
        grid.addWidget(self.train_button, 2, 5)
        run_row = QHBoxLayout()
        run_row.addWidget(self.start_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.rate_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(grid)
        lay.addLayout(run_row)
        lay.addWidget(self.error_label)
        lay.addStretch(1)

        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.renderer.currentTextChanged.connect(lambda _t: self._update_enabled())
        state.planChanged.connect(lambda _p: self._update_plan_label())
        state.datasetChanged.connect(lambda _d: self._update_plan_label())
        self._update_plan_label()

    def set_devices(self, devices: list[str]) -> None:
        keep = self.device.currentText()
        self.device.clear()
        self.device.addItems(["auto", *[d for d in devices if d != "auto"]])
        self.device.setCurrentIndex(max(0, self.device.findText(keep)))

    # -- plan -------------------------------------------------------------------------
    def _update_plan_label(self) -> None:
        p = self.state.plan_path
        plan = self.state.plan
        if p is not None:
            n = f"{len(plan.recipes)} recipes · " if plan is not None else ""
            self.plan_label.setText(f"{n}{p}")
        else:
            self.plan_label.setText("No plan: make one in the Balance panel, or load a plan file")
        self._update_enabled()

    def _load_plan_dialog(self) -> None:
        start = str(self.state.workspace.path / "plans") if self.state.workspace else ""
        path, _ = QFileDialog.getOpenFileName(self, "Load plan", start, "Plans (*.json)")
        if path:
            self.state.plan_path = Path(path)
            self.state.plan = None
            self._update_plan_label()

    def _choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Generator checkpoint", "", "Checkpoints (*.pth *.pt)")
        if path:
            self.checkpoint.setText(path)

    def _update_enabled(self) -> None:
        running = self.worker is not None
        ok = self.state.plan_path is not None and self.state.dataset is not None
        self.start_button.setEnabled(ok and not running)
        self.cancel_button.setEnabled(running)
        self.checkpoint.setEnabled(self.renderer.currentText() == "pix2pixhd")

    # -- the job --------------------------------------------------------------------------
    def start(self) -> Worker | None:
        s = self.state
        if s.workspace is None or s.dataset is None or s.plan_path is None:
            self.error_label.setText("Open a workspace and a dataset, and make or load a plan first")
            return None
        renderer = self.renderer.currentText()
        ckpt = self.checkpoint.text().strip() or None
        if renderer == "pix2pixhd" and ckpt is None:
            self.error_label.setText("pix2pixhd needs a generator checkpoint (choose one, or train the tiny GAN)")
            return None
        w = create_worker(engine.run_generation, s.workspace, s.dataset, s.plan_path, renderer, checkpoint=ckpt,
                          device=self.device.currentText(),
                          min_quality=self.min_quality.value() if self.use_quality.isChecked() else None,
                          log=lambda text: s.log.emit(f"generate: {text}"))  # emitted from the worker: queued
        w.progress.connect(self._progress)
        w.returned.connect(self._returned)
        w.cancelled.connect(lambda: self._ended("cancelled"))
        w.errored.connect(self._failed)
        w.finished.connect(self._finished)
        self.worker = w
        self.meter = RateMeter()
        self.error_label.clear()
        self.progress.setRange(0, 0)
        self.progress.setFormat("%v / %m pairs (%p%)")
        self.rate_label.setText("starting…")
        s.run(f"Generate ({renderer})", w, lambda r: f"job #{r.job_id}: {r.new} new pairs, {r.done}/{r.total} "
              f"recipes done" + (f", {r.rejected} rejected by the quality gate" if r.rejected else "")
              + (f", {len(r.failed)} failed" if r.failed else ""))
        self._update_enabled()
        return w

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.rate_label.setText("cancelling…")

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        rate, eta = self.meter.update(done, total)
        if rate is not None:
            self.rate_label.setText(f"{rate:.2f} pairs/s · ETA {format_eta(eta)}")
        now = time.monotonic()
        if now - self._last_refresh >= REFRESH_PAIRS_S:
            self._last_refresh = now
            self.state.pairsChanged.emit()

    def _returned(self, result) -> None:
        failed = getattr(result, "failed", None) or []
        if failed:
            idx, why = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            self.error_label.setText(f"{len(failed)} recipes failed; recipe {idx}: {why}{more}")
        self._ended("done")

    def _ended(self, how: str) -> None:
        if how == "done":
            self.progress.setValue(self.progress.maximum())
            self.rate_label.setText("done")
        else:
            self.rate_label.setText(how)
        self.state.pairsChanged.emit()
        self.jobFinished.emit(how)

    def _failed(self, exc: BaseException) -> None:
        self.error_label.setText(f"Generation failed: {error_text(exc)} (finished pairs are kept; Start resumes)")
        self._ended("failed")

    def _finished(self) -> None:
        self.worker = None
        self._update_enabled()

    # -- training a generator ------------------------------------------------------------
    def train_tiny_gan(self) -> None:
        """Run our own CLI's train-gan as a subprocess: its output goes to the log view."""
        s = self.state
        if s.workspace is None or s.dataset is None:
            self.error_label.setText("Open a workspace and a dataset first")
            return
        if self.train_process is not None:
            return
        out = s.workspace.subdir("runs", "gan-tiny")
        args = [*self.train_command[1:], str(s.dataset.root), "--workspace", str(s.workspace.path),
                "--preset", "tiny", "--out", str(out), "--device", self.device.currentText(), "--quiet"]
        p = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        p.setProcessEnvironment(env)
        p.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        p.readyReadStandardOutput.connect(
            lambda: [s.log.emit(f"train-gan: {line}") for line in
                     bytes(p.readAllStandardOutput()).decode(errors="replace").splitlines() if line.strip()])
        p.finished.connect(lambda code, _st: self._train_done(code, out))
        s.log.emit(f"train-gan: {self.train_command[0]} {' '.join(args)}")
        p.start(self.train_command[0], args)
        self.train_process = p
        self.train_button.setEnabled(False)

    def _train_done(self, code: int, out: Path) -> None:
        self.train_process = None
        self.train_button.setEnabled(True)
        if code != 0:
            self.error_label.setText(f"train-gan exited with code {code}; see the log")
            return
        # the generator weights (official pix2pixHD name), else the full training checkpoint
        ckpt = next((p for p in (out / "latest_net_G.pth", out / "ckpt.pt") if p.exists()), None)
        if ckpt is not None:
            self.checkpoint.setText(str(ckpt))
            self.renderer.setCurrentText("pix2pixhd")
        self.state.log.emit(f"train-gan finished: {ckpt or 'no checkpoint found in ' + str(out)}")
