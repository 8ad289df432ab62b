"""Generation panel: renderer, checkpoint, device, quality gate; Start/Cancel with progress, rate and ETA."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
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

from segbalance.core.jobs.decisions import gate_summary
from segbalance.core.render.registry import GeneratorMismatch
from segbalance.core.runs.follow import kept_on_stop
from segbalance.core.runs.live import end_orphan_run
from segbalance.core.runs.records import CANCELLED, DONE, FAILED
from segbalance.desktop_app import core_calls
from segbalance.desktop_app.state import AppState, RateMeter, format_eta
from segbalance.desktop_app.training.process import TrainProcess
from segbalance.desktop_app.training.run_follower import RunFollower
from segbalance.desktop_app.widgets.gan_dialog import GanTrainDialog
from segbalance.desktop_app.workers import Worker, create_worker, error_text
from segbalance.desktop_app.workspace_memory import workspace_checkpoints

REFRESH_PAIRS_S = 1.0  # how often the gallery reloads while pairs arrive
GAN_SAVE_EVERY_S = 60.0  # train-gan's checkpoint cadence from the app: a quit loses at most about this much


class GenerationPanel(QWidget):
    """Starts a generation job on the current plan; the job runs on a worker thread, the UI never waits."""

    jobFinished = Signal(str)  # the job's end status: DONE, CANCELLED or FAILED

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: Worker | None = None
        self.meter = RateMeter()
        self._last_refresh = 0.0
        self.train_process: TrainProcess | None = None
        self.train_follower: RunFollower | None = None
        self.train_out: Path | None = None
        self.train_entry = None  # its JobEntry in the state's job list
        self.confirm_box: GanTrainDialog | None = None
        self.gate: float | None = None  # the quality gate of the job running or last run
        self.gate_line: str | None = None
        self._restoring = False
        self.train_command = [sys.executable, "-m", "segbalance.core.cli", "train-gan"]  # our own CLI, as a subprocess

        self.plan_label = QLabel("No plan: make one in the Balance panel, or load a plan file")
        self.plan_label.setWordWrap(True)
        load_plan = QPushButton("Load plan…")
        load_plan.clicked.connect(self._load_plan_dialog)
        self.renderer = QComboBox()
        self.renderer.addItems(core_calls.renderer_names(state.dataset))
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
        state.datasetChanged.connect(self._fill_renderers)
        state.workspaceChanged.connect(self._workspace_changed)
        self.checkpoint.textChanged.connect(self._checkpoint_changed)
        state.generatorChanged.connect(self._generator_chosen)
        self._update_plan_label()

    def _fill_renderers(self, ds) -> None:
        """The renderers that fit the open dataset (procedural only for the sample dataset)."""
        keep = self.renderer.currentText()
        self.renderer.blockSignals(True)
        self.renderer.clear()
        self.renderer.addItems(core_calls.renderer_names(ds))
        self.renderer.setCurrentIndex(max(0, self.renderer.findText(keep)))
        self.renderer.blockSignals(False)
        self._update_enabled()

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
        """The checkpoint chosen last time in this workspace, else the newest one its own GAN runs left; the last
        workspace's job progress and messages go."""
        if self.worker is None:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("no job running")
            self.rate_label.setText(" ")
            self.error_label.clear()
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
        if text.strip() and Path(text.strip()).is_file():
            self.state.generatorChanged.emit(text.strip())  # the label editor renders with the same one

    def _generator_chosen(self, path: str) -> None:
        """A generator loaded in the label editor is the one generation uses too (one choice, not two)."""
        if path and path != self.checkpoint.text().strip():
            self.checkpoint.setText(path)

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
        w = create_worker(core_calls.run_generation, s.workspace, s.dataset, s.plan_path, renderer, checkpoint=ckpt,
                          device=self.device.currentText(), min_quality=self.gate,
                          log=lambda text: s.log.emit(f"generate: {text}"))  # emitted from the worker: queued
        w.progress.connect(self._progress)
        w.returned.connect(self._returned)
        w.cancelled.connect(lambda: self._ended(CANCELLED))
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
              + (f", {len(r.failed)} failed" if r.failed else ""),
              kept=lambda: f"the {self.progress.value()} pairs written so far, each with its database row; "
                           "Start on the same plan resumes the job")
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
            self.state.pairsArriving.emit()

    def _returned(self, result) -> None:
        failed = getattr(result, "failed", None) or []
        if failed:
            idx, why = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            self.error_label.setText(f"{len(failed)} recipes failed; recipe {idx}: {why}{more}")
        self._ended(DONE)
        new, rejected = getattr(result, "new", None), getattr(result, "rejected", 0)
        self.gate_line = gate_summary(new, rejected, self.gate) if new is not None else None
        if self.gate_line:  # the gate's verdict, said where the user looks, not just "done"
            self.rate_label.setText(f"{DONE} · {self.gate_line}")
            self.rate_label.setToolTip(self.gate_line)
            self.state.log.emit(f"generate: job #{getattr(result, 'job_id', '?')}: {self.gate_line}")

    def _ended(self, how: str) -> None:
        if how == DONE:
            self.progress.setValue(self.progress.maximum())
            self.rate_label.setText(DONE)
        else:
            self.rate_label.setText(how)
        self.state.pairsChanged.emit()
        self.jobFinished.emit(how)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, GeneratorMismatch):  # refused before anything rendered: nothing to keep or resume
            self.error_label.setText(f"Refused: {error_text(exc)}")
        else:
            self.error_label.setText(f"Generation failed: {error_text(exc)} (finished pairs are kept; Start resumes)")
        self._ended(FAILED)

    def _finished(self) -> None:
        self.worker = None
        self._update_enabled()

    # -- training a generator ------------------------------------------------------------
    def train_tiny_gan(self) -> GanTrainDialog | None:
        """Ask first, with the iterations and the time they take here (timed on a few steps), then run our own
        CLI's train-gan as a subprocess, followed through its job row like train-seg."""
        s = self.state
        if s.workspace is None or s.dataset is None:
            self.error_label.setText("Open a workspace and a dataset first")
            return None
        if self.train_process is not None and self.train_process.running:
            return None
        out = self.gan_out_dir()
        dlg = GanTrainDialog(s.dataset.root.name, self.device.currentText(), s.workspace.rel(out),
                             GAN_SAVE_EVERY_S, self)
        dlg.startRequested.connect(self.start_gan_training)
        self.confirm_box = dlg
        dlg.open()
        dlg.measure()
        return dlg

    def gan_out_dir(self) -> Path:
        """runs/gan-tiny, or the first runs/gan-tiny-N that holds no checkpoint yet (train-gan refuses to
        overwrite one; a stopped run is continued with Resume in the Training tab)."""
        runs = self.state.workspace.path / "runs"
        for k in range(1, 1000):
            out = runs / ("gan-tiny" if k == 1 else f"gan-tiny-{k}")
            if not (out / "ckpt.pt").exists():
                return out
        return runs / f"gan-tiny-{time.strftime('%Y%m%d-%H%M%S')}"

    def start_gan_training(self, iters: int | None = None) -> bool:
        s = self.state
        if s.workspace is None or s.dataset is None or (self.train_process is not None and self.train_process.running):
            return False
        out = self.gan_out_dir()
        out.parent.mkdir(parents=True, exist_ok=True)
        args = [*self.train_command[1:], str(s.dataset.root), "--workspace", str(s.workspace.path),
                "--preset", "tiny", "--out", str(out), "--device", self.device.currentText(), "--quiet",
                "--save-every-s", f"{GAN_SAVE_EVERY_S:g}"]
        if iters:
            args += ["--iters", str(int(iters))]
        p = self.train_process = TrainProcess(self)
        p.output.connect(lambda line: s.log.emit(f"train-gan: {line}"))
        p.finished.connect(lambda code, crashed, stopped: self._train_done(code, crashed, stopped, out))
        follower = self.train_follower = RunFollower(s.workspace, self)
        follower.progress.connect(self._train_progress)
        s.log.emit(f"train-gan: {self.train_command[0]} {' '.join(args)}")
        p.start(self.train_command[0], args, cwd=str(s.workspace.path))
        p.proc.waitForStarted(5000)
        follower.follow(out, "gan")
        self.train_out = out
        self.train_last: tuple[int, int] | None = None
        entry = self.train_entry = s.start_job("Train GAN (tiny)", self.cancel_gan_training, p.pid())
        entry.wait = p.wait_or_kill
        entry.kept = lambda: kept_on_stop("gan", out, follower_progress(follower))
        self.train_button.setEnabled(False)
        if self.worker is None:  # the panel's bar is about generation: it does not keep an old job's "done"
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("no generation running")
            self.rate_label.setText("training a generator (see Jobs)")
        return True

    def _train_progress(self, done: int, total: int, eta: float) -> None:
        if self.train_entry is not None:
            self.state.job_progress(self.train_entry, done, total, eta)

    def cancel_gan_training(self) -> None:
        """SIGTERM: train-gan stops after the current step and saves its checkpoint; killed if it hangs."""
        if self.train_process is not None:
            self.train_process.stop()

    def wait_training(self, ms: int) -> bool:
        """Wait for a GAN training subprocess to end (after a cancel); True when none is left."""
        p = self.train_process
        return p is None or p.wait_or_kill(ms)

    def _train_done(self, code: int, crashed: bool, stopped: bool, out: Path) -> None:
        follower = self.train_follower
        final = follower.poll_now() if follower is not None else None
        if follower is not None:
            follower.stop()
        self.train_button.setEnabled(True)
        entry, self.train_entry = self.train_entry, None
        cancelled = stopped or (entry is not None and entry.cancelling)
        run_id = final.run_id if final is not None else None
        if cancelled and self.state.workspace is not None:
            end_orphan_run(self.state.workspace, run_id, CANCELLED)  # killed before it wrote its own word
        elif (code != 0 or crashed) and self.state.workspace is not None:
            end_orphan_run(self.state.workspace, run_id, FAILED)
        ckpt = next((p for p in (out / "latest_net_G.pth", out / "ckpt.pt") if p.exists()), None)
        if cancelled:
            outcome = CANCELLED + (f"; checkpoint kept: {ckpt} (Resume in the Training tab)" if ckpt
                                     else "; it had saved no checkpoint yet")
        elif code != 0 or crashed:
            outcome = f"failed (train-gan exited with code {code}; see the Log)"
            self.error_label.setText(f"train-gan exited with code {code}; see the log")
        else:
            outcome = f"finished: {ckpt or 'no checkpoint found in ' + str(out)}"
        if ckpt is not None and not (code != 0 and not cancelled):
            # the generator weights (official pix2pixHD name), else the full training checkpoint
            self.checkpoint.setText(str(ckpt))
            self.renderer.setCurrentText("pix2pixhd")
        if self.worker is None:
            self.rate_label.setText(" ")
        self.train_process = None
        if entry is not None:
            self.state.end_job(entry, outcome)


def follower_progress(follower: RunFollower):
    """The last progress the follower read (None before the run counted)."""
    return follower.last_progress
