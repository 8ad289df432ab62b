"""Generation panel: renderer, checkpoint, device, quality gate; Start/Cancel with progress, rate and ETA."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.jobs.decisions import gate_summary
from segbalance.desktop_app import engine
from segbalance.desktop_app.state import AppState
from segbalance.desktop_app.workers import Worker, create_worker, error_text
from segbalance.desktop_app.workspace_memory import workspace_checkpoints

REFRESH_PAIRS_S = 1.0  # how often the gallery reloads while pairs arrive
GAN_KILL_AFTER_MS = 20_000  # a train-gan that ignores SIGTERM this long is killed
TQDM_COUNT = re.compile(r"\|\s*(\d+)/(\d+)\s*\[")  # "train-gan:  12%|##   | 12/100 [00:03<..." from tqdm


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
        self.train_entry = None  # its JobEntry in the state's job list
        self.confirm_box: QMessageBox | None = None
        self.gate: float | None = None  # the quality gate of the job running or last run
        self.gate_line: str | None = None
        self._restoring = False
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
        self.train_button.setToolTip("Train a tiny generator with `segbalance train-gan --preset tiny` in the "
                                     "background (asks first; shows in the job list)")
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
        state.workspaceChanged.connect(self._workspace_changed)
        self.checkpoint.textChanged.connect(self._checkpoint_changed)
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

    def _workspace_changed(self, ws) -> None:
        """The checkpoint chosen last time in this workspace, else the newest one its own GAN runs left."""
        if ws is None or self.state.memory is None:
            return
        saved = self.state.memory.checkpoint("gan")
        own = workspace_checkpoints(ws)
        ckpt = saved if saved is not None and saved.is_file() else (own[0] if own else None)
        self._restoring = True
        self.checkpoint.setText(str(ckpt) if ckpt is not None else "")
        self._restoring = False
        if ckpt is not None and saved is None:
            self.state.log.emit(f"generator checkpoint offered from this workspace: {ws.rel(ckpt)}")

    def _checkpoint_changed(self, text: str) -> None:
        if self.error_label.text().startswith("pix2pixhd needs a generator checkpoint") and text.strip():
            self.error_label.clear()  # the hint is answered
        if not self._restoring and self.state.memory is not None:
            self.state.memory.set_checkpoint("gan", text.strip() or None)

    def checkpoint_start_dir(self) -> str:
        """Where the checkpoint dialog opens: the workspace's newest GAN run, else its runs/ folder."""
        ws = self.state.workspace
        if ws is None:
            return ""
        own = workspace_checkpoints(ws)
        return str(own[0].parent if own else (ws.path / "runs" if (ws.path / "runs").is_dir() else ws.path))

    def _choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Generator checkpoint", self.checkpoint_start_dir(),
                                              "Checkpoints (*.pth *.pt)")
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
        self.gate = self.min_quality.value() if self.use_quality.isChecked() else None
        w = create_worker(engine.run_generation, s.workspace, s.dataset, s.plan_path, renderer, checkpoint=ckpt,
                          device=self.device.currentText(), min_quality=self.gate,
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
        new, rejected = getattr(result, "new", None), getattr(result, "rejected", 0)
        self.gate_line = gate_summary(new, rejected, self.gate) if new is not None else None
        if self.gate_line:  # the gate's verdict, said where the user looks, not just "done"
            self.rate_label.setText(f"done · {self.gate_line}")
            self.rate_label.setToolTip(self.gate_line)
            self.state.log.emit(f"generate: job #{getattr(result, 'job_id', '?')}: {self.gate_line}")

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
    def train_tiny_gan(self) -> QMessageBox | None:
        """Ask first (training takes minutes and a core or two), then run our own CLI's train-gan as a
        subprocess: it shows in the job list with its progress and Cancel; its output goes to the Log."""
        s = self.state
        if s.workspace is None or s.dataset is None:
            self.error_label.setText("Open a workspace and a dataset first")
            return None
        if self.train_process is not None:
            return None
        box = QMessageBox(QMessageBox.Icon.Question, "Train tiny GAN",
                          f"Train a tiny pix2pixHD generator on {s.dataset.root.name} (device "
                          f"{self.device.currentText()})? It runs in the background, shows in the job list and "
                          "can be cancelled there; its checkpoint goes to runs/gan-tiny in the workspace.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("train_gan_confirm")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.button(QMessageBox.StandardButton.Yes).clicked.connect(self.start_gan_training)
        self.confirm_box = box
        box.open()
        return box

    def start_gan_training(self) -> bool:
        s = self.state
        if s.workspace is None or s.dataset is None or self.train_process is not None:
            return False
        out = s.workspace.subdir("runs", "gan-tiny")
        args = [*self.train_command[1:], str(s.dataset.root), "--workspace", str(s.workspace.path),
                "--preset", "tiny", "--out", str(out), "--device", self.device.currentText()]
        p = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        p.setProcessEnvironment(env)
        p.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        p.readyReadStandardOutput.connect(lambda: self._train_output(p))
        p.finished.connect(lambda code, _st: self._train_done(code, out))
        s.log.emit(f"train-gan: {self.train_command[0]} {' '.join(args)}")
        p.start(self.train_command[0], args)
        p.waitForStarted(5000)
        self.train_process = p
        self.train_entry = s.start_job("Train GAN (tiny)", self.cancel_gan_training, int(p.processId()) or None)
        self.train_button.setEnabled(False)
        return True

    def cancel_gan_training(self) -> None:
        """SIGTERM: train-gan stops after the current step and saves its checkpoint; killed if it hangs."""
        p = self.train_process
        if p is None or p.state() == QProcess.ProcessState.NotRunning:
            return
        p.terminate()
        # p as the timer's context: no call once the process object is gone
        QTimer.singleShot(GAN_KILL_AFTER_MS, p, lambda: p.kill() if p.state() != QProcess.ProcessState.NotRunning
                          else None)

    def wait_training(self, ms: int) -> bool:
        """Wait for a GAN training subprocess to end (after a cancel); True when none is left."""
        p = self.train_process
        return p is None or p.waitForFinished(ms)

    def _train_output(self, p: QProcess) -> None:
        text = bytes(p.readAllStandardOutput()).decode(errors="replace").replace("\r", "\n")
        for line in text.splitlines():
            if not line.strip():
                continue
            m = TQDM_COUNT.search(line)
            if m and self.train_entry is not None:
                self.state.job_progress(self.train_entry, int(m.group(1)), int(m.group(2)))
                continue  # progress bars go to the job list, not the Log
            self.state.log.emit(f"train-gan: {line}")

    def _train_done(self, code: int, out: Path) -> None:
        self.train_process = None
        self.train_button.setEnabled(True)
        entry, self.train_entry = self.train_entry, None
        cancelled = entry is not None and entry.cancelling
        ckpt = next((p for p in (out / "latest_net_G.pth", out / "ckpt.pt") if p.exists()), None)
        if cancelled:
            outcome = "cancelled" + (f"; checkpoint kept: {ckpt}" if ckpt else "")
        elif code != 0:
            outcome = f"failed (train-gan exited with code {code}; see the Log)"
            self.error_label.setText(f"train-gan exited with code {code}; see the log")
        else:
            outcome = f"finished: {ckpt or 'no checkpoint found in ' + str(out)}"
        if ckpt is not None and not (code != 0 and not cancelled):
            # the generator weights (official pix2pixHD name), else the full training checkpoint
            self.checkpoint.setText(str(ckpt))
            self.renderer.setCurrentText("pix2pixhd")
        if entry is not None:
            self.state.end_job(entry, outcome)
