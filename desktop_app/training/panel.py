"""TrainingPanel: configure and start a PSPNet run (`train-seg` subprocess), watch it live from the workspace
DB, list runs, compare two of them, and resume a stopped one (segmentation or GAN). The panel never trains
in-process: a crashing run cannot take the app down; it reads the DB through a RunFollower, off the UI thread."""

from __future__ import annotations

import re
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.datasets.catalog import dataset_paths, label_set_for
from segbalance.core.errors import SegbalanceError
from segbalance.core.jobs.pairs import EXPORTABLE_STATUSES, REVIEWED_EXPORT
from segbalance.core.runs.follow import RESUMABLE, RunPoll, kept_on_stop, resume_command
from segbalance.core.runs.live import RunProgress, end_orphan_run
from segbalance.core.runs.queries import (
    RunSummary,
    SegRunRequest,
    Series,
    compare_runs,
    find_run,
    list_runs,
    rare_classes,
    read_new_points,
    train_class_shares,
)
from segbalance.core.runs.records import CANCELLED, DONE, FAILED, INTERRUPTED, RUNNING
from segbalance.core.seg import BACKBONES
from segbalance.core.workspace import Workspace
from segbalance.desktop_app.training.compare import RunCompare
from segbalance.desktop_app.training.curves import RunCurves
from segbalance.desktop_app.training.gan_view import GanRunView
from segbalance.desktop_app.training.process import STOPPED_EXIT_CODE, TrainProcess
from segbalance.desktop_app.training.run_follower import RunFollower

# Defaults sized for a small CPU machine: a run over the sample data finishes in minutes, not hours
CPU_DEFAULTS = {"backbone": "resnet18", "iters": 200, "batch": 4, "crop": "128x256", "eval": 100}
GPU_HINT = "On a GPU: resnet50, 20k+ iterations, batch 8+, crops of 512x1024 (the paper's Cityscapes setting)"
STATUS_COLORS = {RUNNING: "#1f77b4", DONE: "#2ca02c", FAILED: "#c0392b", CANCELLED: "#e67e22",
                 INTERRUPTED: "#7f7f7f"}
ERROR_LINES = 15


class TrainingPanel(QWidget):
    """Training runs of one workspace."""

    statusMessage = Signal(str)
    runProgress = Signal(int, int, float)  # iteration, total, ETA s (-1: not known) of the run this panel started
    runStarted = Signal(str)  # out dir
    runFinished = Signal(int, bool)  # exit code, stopped by user
    formUsed = Signal(dict)  # the form's values when Start was pressed (kept with the workspace)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None, *, poll_ms: int = 1000) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.process = TrainProcess(self)
        self.series: Series | None = None
        self.selected_run: int | None = None
        self.current_out: str | None = None
        self.current_kind = "seg"
        self.current_run: int | None = None
        self.last_progress: RunProgress | None = None
        self._runs: list[RunSummary] = []
        self._shares_cache: dict[str, tuple[dict, set]] = {}
        self.command_override: tuple[str, list[str]] | None = None  # tests/demo: run this instead of train-seg
        self.extra_args: list[str] = []  # appended to train-seg's arguments (e.g. --workers 0 --threads 1)

        self._build()
        self.process.output.connect(self._on_output)
        self.process.finished.connect(self._on_finished)
        self.process.started.connect(lambda: self.statusMessage.emit("training started"))
        self.follower = RunFollower(workspace, self, poll_ms=poll_ms)
        self.follower.with_runs = True
        self.follower.polled.connect(self._apply_poll)
        self.follower.start()
        self.refresh_runs()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        form_box = QGroupBox("New PSPNet run")
        form = QFormLayout(form_box)
        self.dataset_box = QComboBox()
        self.dataset_box.setEditable(True)
        self.dataset_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.dataset_box.setMinimumContentsLength(12)  # a long path scrolls inside the field, never widens the form
        self.dataset_box.setToolTip("dataset folder (Cityscapes layout or images/ + masks/ + classes.json)")
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse_dataset)
        row = QHBoxLayout()
        row.addWidget(self.dataset_box, 1)
        row.addWidget(browse)
        form.addRow("Dataset", row)
        self.pairs_check = QCheckBox("Mix in generated pairs with status:")
        self.status_checks = {s: QCheckBox(s) for s in EXPORTABLE_STATUSES}  # what train-seg --extra-status takes
        for s in REVIEWED_EXPORT:
            self.status_checks[s].setChecked(True)
        prow = QHBoxLayout()
        for c in self.status_checks.values():
            c.setEnabled(False)
            prow.addWidget(c)
        self.pairs_check.toggled.connect(self._pairs_toggled)
        form.addRow(self.pairs_check)
        form.addRow(prow)
        self.noisy_check = QCheckBox("Ignore noisy pixels, loss >")
        self.noisy_check.setToolTip("FreeMask's filter: a generated pixel whose loss exceeds this factor times the "
                                    "running mean loss of real pixels of its class is not trained on; the table "
                                    "shows the share ignored per class")
        self.noisy_spin = QDoubleSpinBox(minimum=1.0, maximum=10.0, value=1.25, singleStep=0.05, decimals=2,
                                         suffix=" × mean")
        self.noisy_spin.setToolTip("times the running mean loss of real pixels of the same class")
        self.noisy_check.setEnabled(False)
        self.noisy_spin.setEnabled(False)
        self.noisy_check.toggled.connect(self.noisy_spin.setEnabled)
        nrow = QHBoxLayout()
        nrow.addWidget(self.noisy_check)
        nrow.addWidget(self.noisy_spin, 1)
        form.addRow(nrow)
        self.sampler_box = QComboBox()
        self.sampler_box.addItems(["uniform", "rare-class"])
        form.addRow("Sampler", self.sampler_box)
        self.backbone_box = QComboBox()
        self.backbone_box.addItems(BACKBONES)
        self.backbone_box.setCurrentText(CPU_DEFAULTS["backbone"])
        self.backbone_box.setToolTip(GPU_HINT)
        form.addRow("Backbone", self.backbone_box)
        self.iters_spin = QSpinBox(minimum=1, maximum=10_000_000, value=CPU_DEFAULTS["iters"], singleStep=100)
        self.iters_spin.setToolTip(GPU_HINT)
        form.addRow("Iterations", self.iters_spin)
        self.batch_spin = QSpinBox(minimum=1, maximum=1024, value=CPU_DEFAULTS["batch"])
        form.addRow("Batch", self.batch_spin)
        self.crop_edit = QLineEdit(CPU_DEFAULTS["crop"])
        self.crop_edit.setToolTip("HEIGHTxWIDTH of the training crops; at most the image size (the sample data "
                                  "is 128x256)")
        form.addRow("Crop (HxW)", self.crop_edit)
        self.eval_spin = QSpinBox(minimum=0, maximum=10_000_000, value=CPU_DEFAULTS["eval"], singleStep=50)
        self.eval_spin.setToolTip("validate every N iterations (0: only at the end)")
        form.addRow("Validate every", self.eval_spin)
        self.device_box = QComboBox()
        self.device_box.setEditable(True)
        self.device_box.addItems(["auto", "cpu", "cuda:0"])
        form.addRow("Device", self.device_box)
        self.name_edit = QLineEdit(placeholderText="run name (default: generated)")
        form.addRow("Name", self.name_edit)
        self.start_btn = QPushButton("Start")
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.stop_btn.setToolTip("SIGTERM: the run saves its checkpoint and stops")
        self.start_btn.clicked.connect(self.start_run)
        self.stop_btn.clicked.connect(self.stop_run)
        brow = QHBoxLayout()
        brow.addWidget(self.start_btn)
        brow.addWidget(self.stop_btn)
        self.run_state = QLabel("")
        self.run_state.setWordWrap(True)
        self.run_state.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        runs_box = QGroupBox("Runs")
        self.runs_table = QTableWidget(0, 5)
        self.runs_table.setHorizontalHeaderLabels(["id", "name", "status", "iter", "mIoU (%)"])
        hdr = self.runs_table.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.runs_table.verticalHeader().setVisible(False)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs_table.itemSelectionChanged.connect(self._selection_changed)
        self.compare_btn = QPushButton("Compare (select 2 runs)")
        self.compare_btn.setEnabled(False)
        self.compare_btn.clicked.connect(self.compare_selected)
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setEnabled(False)
        self.resume_btn.setToolTip("Continue the selected cancelled run from its last checkpoint")
        self.resume_btn.clicked.connect(self.resume_selected)
        rl = QVBoxLayout(runs_box)
        rl.addWidget(self.runs_table)
        run_buttons = QHBoxLayout()
        run_buttons.addWidget(self.resume_btn)
        run_buttons.addWidget(self.compare_btn, 1)
        rl.addLayout(run_buttons)

        left = QSplitter(Qt.Orientation.Vertical)
        left.setChildrenCollapsible(False)
        # the form scrolls up and down on a short screen, never sideways: its column is at least as wide as
        # the form, and Start/Stop sit under it, always in view
        form_scroll = QScrollArea()
        form_scroll.setWidget(form_box)
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        form_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        form_scroll.setMinimumWidth(form_box.minimumSizeHint().width()
                                    + form_scroll.verticalScrollBar().sizeHint().width())
        form_scroll.setMinimumHeight(80)
        self.form_scroll = form_scroll
        form_col = QWidget()
        fcl = QVBoxLayout(form_col)
        fcl.setContentsMargins(0, 0, 0, 0)
        fcl.addWidget(form_scroll, 1)
        fcl.addLayout(brow)
        fcl.addWidget(self.run_state)
        left.addWidget(form_col)
        left.addWidget(runs_box)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 2)

        self.curves = RunCurves()
        self.gan_view = GanRunView()  # a GAN run has its own view: losses and sample renders
        self.live = QStackedWidget()
        self.live.addWidget(self.curves)
        self.live.addWidget(self.gan_view)
        self.compare = RunCompare()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.error_box = QPlainTextEdit()
        self.error_box.setReadOnly(True)
        self.error_box.setStyleSheet("color:#c0392b")
        self.error_box.setMaximumHeight(160)
        self.error_box.hide()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.live, "Live")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.log, "Output")
        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.addWidget(self.error_box)
        rlay.addWidget(self.tabs, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([left.minimumSizeHint().width(), 900])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(split)
        self._fill_datasets()

    # -- the form kept with the workspace ----------------------------------------------------------
    def form_state(self) -> dict:
        """The New-run form's values (what the app keeps with the workspace between launches)."""
        return {"dataset": self.dataset_box.currentText().strip(), "use_pairs": self.pairs_check.isChecked(),
                "statuses": [s for s, c in self.status_checks.items() if c.isChecked()],
                "noisy": self.noisy_check.isChecked(), "noisy_factor": self.noisy_spin.value(),
                "sampler": self.sampler_box.currentText(), "backbone": self.backbone_box.currentText(),
                "iters": self.iters_spin.value(), "batch": self.batch_spin.value(),
                "crop": self.crop_edit.text().strip(), "eval": self.eval_spin.value(),
                "device": self.device_box.currentText().strip()}

    def set_form_state(self, form: dict, default_dataset: str | None = None) -> None:
        """Fill the form from `form_state()`'s dict; the dataset falls back to the open one, never empty."""
        dataset = form.get("dataset") or default_dataset or ""
        if dataset:
            self.dataset_box.setCurrentText(str(dataset))
        self.pairs_check.setChecked(bool(form.get("use_pairs", False)))
        if "statuses" in form:
            for s, c in self.status_checks.items():
                c.setChecked(s in form["statuses"])
        self.noisy_check.setChecked(bool(form.get("noisy", False)))
        for key, box in (("sampler", self.sampler_box), ("backbone", self.backbone_box),
                         ("device", self.device_box)):
            if form.get(key) and box.findText(str(form[key])) >= 0:
                box.setCurrentText(str(form[key]))
        for key, spin in (("noisy_factor", self.noisy_spin), ("iters", self.iters_spin),
                          ("batch", self.batch_spin), ("eval", self.eval_spin)):
            if isinstance(form.get(key), (int, float)):
                spin.setValue(form[key])
        if form.get("crop"):
            self.crop_edit.setText(str(form["crop"]))

    def dataset_opened(self, ds) -> None:
        """The app opened a dataset: offer it, and fill an empty dataset field with it."""
        if ds is None:
            return
        root = str(ds.root)
        if self.dataset_box.findText(root) < 0:
            self.dataset_box.addItem(root)
        if not self.dataset_box.currentText().strip():
            self.dataset_box.setCurrentText(root)

    def _pairs_toggled(self, on: bool) -> None:
        for c in self.status_checks.values():
            c.setEnabled(on)
        self.noisy_check.setEnabled(on)
        self.noisy_spin.setEnabled(on and self.noisy_check.isChecked())

    def _fill_datasets(self) -> None:
        for p in dataset_paths(self.workspace):
            if self.dataset_box.findText(p) < 0:
                self.dataset_box.addItem(p)

    def _browse_dataset(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if d:
            self.dataset_box.setCurrentText(d)

    # -- starting and stopping -------------------------------------------------------------------
    def request(self) -> SegRunRequest:
        """The run the form describes."""
        name = self.name_edit.text().strip() or f"seg_{time.strftime('%Y%m%d_%H%M%S')}"
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        out = self.workspace.path / "runs" / "seg" / safe
        return SegRunRequest(
            dataset=self.dataset_box.currentText().strip(),
            workspace=str(self.workspace.path),
            out_dir=str(out),
            name=name,
            use_pairs=self.pairs_check.isChecked(),
            pair_statuses=tuple(s for s, c in self.status_checks.items() if c.isChecked()),
            sampler=self.sampler_box.currentText(),
            noisy_factor=self.noisy_spin.value() if self.pairs_check.isChecked() and self.noisy_check.isChecked()
            else 0.0,
            backbone=self.backbone_box.currentText(),
            iters=self.iters_spin.value(),
            batch=self.batch_spin.value(),
            crop=self.crop_edit.text().strip() or "256x512",
            eval_interval=self.eval_spin.value(),
            device=self.device_box.currentText().strip() or "auto",
            extra_args=list(self.extra_args),
        )

    def start_run(self) -> bool:
        """Start the configured run as a subprocess; returns False (and says why) when it cannot."""
        if self.process.running:
            self._say("a run is already going; stop it first")
            return False
        req = self.request()
        self.formUsed.emit(self.form_state())
        if self.command_override is None:
            if not req.dataset:
                self._say("choose a dataset folder first")
                return False
            if not Path(req.dataset).is_dir():
                self._say(f"{req.dataset}: dataset folder not found")
                return False
            if not re.fullmatch(r"\d+x\d+", req.crop):
                self._say(f"bad crop {req.crop!r}; expected HEIGHTxWIDTH, e.g. 256x512")
                return False
            if req.use_pairs and not req.pair_statuses:
                self._say("tick at least one pair status, or untick 'mix in generated pairs'")
                return False
            program, args = req.command()
        else:
            program, args = self.command_override
        self._launch(program, args, req.out_dir, "seg")
        return True

    def _launch(self, program: str, args: list[str], out_dir: str, kind: str) -> None:
        self.current_out, self.current_kind = out_dir, kind
        self.current_run = None
        self.last_progress = None
        self.error_box.hide()
        self.error_box.clear()
        self.log.appendPlainText(f"$ {program} {' '.join(args)}")
        self.process.start(program, args, cwd=str(self.workspace.path))
        self.start_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self.resume_btn.setEnabled(False)
        self.run_state.setText(f"running → {out_dir}")
        self.follower.follow(out_dir, kind)
        self.runStarted.emit(out_dir)

    def resume_selected(self) -> bool:
        """Continue the selected stopped run (train-seg or train-gan --resume) as this panel's subprocess."""
        ids = self.selected_ids()
        run = next((r for r in self._runs if ids and r.id == ids[0]), None)
        if run is None or len(ids) != 1:
            self._say("select one cancelled run to resume")
            return False
        if self.process.running:
            self._say("a run is already going; stop it first")
            return False
        try:
            cmd = resume_command(self.workspace, run, self.device_box.currentText().strip() or None)
        except SegbalanceError as exc:
            self._say(str(exc))
            return False
        self.statusMessage.emit(f"resuming run {run.id} ({run.name})")
        self._launch(cmd.program, cmd.args, cmd.out_dir, run.kind)
        return True

    def kept_on_stop(self) -> str:
        """What stopping the running run keeps (for the quit dialog)."""
        if not self.current_out:
            return "nothing is running"
        return kept_on_stop(self.current_kind, self.current_out, self.last_progress)

    def stop_run(self) -> None:
        if self.process.running:
            self.process.stop()
            self.run_state.setText("stopping (the run saves its checkpoint)…")
            self.stop_btn.setEnabled(False)

    def _on_output(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _on_finished(self, code: int, crashed: bool, stopped: bool) -> None:
        self.start_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        run_id = self.current_run or (find_run(self.workspace, self.current_out, self.current_kind)
                                      if self.current_out else None)
        if stopped and (code in (0, STOPPED_EXIT_CODE) or crashed):
            self.run_state.setText("stopped; the last checkpoint is kept")
            self._mark_run(run_id, CANCELLED)
        elif code == 0 and not crashed:
            self.run_state.setText("finished")
        else:
            lines = list(self.process.stderr_lines)[-ERROR_LINES:] or list(self.process.stdout_lines)[-ERROR_LINES:]
            why = "crashed" if crashed else f"exited with code {code}"
            self.run_state.setText(f"the run {why}")
            self.error_box.setPlainText(f"Training run {why}. Last lines:\n" + "\n".join(lines))
            self.error_box.show()
            self._mark_run(run_id, FAILED)
        self.poll()
        self._update_compare()
        self.runFinished.emit(code, stopped)

    def _mark_run(self, run_id: int | None, outcome: str) -> None:
        """A run whose process is gone but whose row still says running gets its real status (from core)."""
        end_orphan_run(self.workspace, run_id, outcome)

    # -- live view ---------------------------------------------------------------------------------
    def poll(self) -> RunPoll:
        """Read what the runs wrote since the last poll, now (a run's end, tests); the timer polls on a worker."""
        self._sync_follower()
        return self.follower.poll_now()

    def _sync_follower(self) -> None:
        f = self.follower
        f.series = self.series
        if f.out_dir != self.current_out:
            f.out_dir, f.kind, f.run_id = self.current_out, self.current_kind, self.current_run

    def _apply_poll(self, res: RunPoll) -> None:
        if self.current_out and self.current_run is None and res.run_id is not None:
            self.current_run = res.run_id
            if res.runs is not None:
                self.refresh_runs(res.runs)
            self.select_run(self.current_run)
        if res.new_points and self.series is not None:
            self._redraw()
        if self.process.running and res.progress is not None:
            self.last_progress = res.progress
            self.run_state.setText(res.progress.text())
            eta = res.progress.eta_s
            self.runProgress.emit(res.progress.done, res.progress.total, -1.0 if eta is None else float(eta))
        if res.runs is not None:
            self.refresh_runs(res.runs)
        self._sync_follower()

    def _redraw(self) -> None:
        run = next((r for r in self._runs if r.id == self.series.run_id), None)
        title = f"run {self.series.run_id}" + (f" — {run.name} ({run.status})" if run else "")
        view = self.gan_view if run is not None and run.kind == "gan" else self.curves
        self.live.setCurrentWidget(view)
        view.update_from(self.series, title)

    def select_run(self, run_id: int) -> None:
        for row in range(self.runs_table.rowCount()):
            if int(self.runs_table.item(row, 0).text()) == run_id:
                self.runs_table.clearSelection()
                self.runs_table.selectRow(row)
                return
        self._show_run(run_id)

    def _show_run(self, run_id: int) -> None:
        if self.series is not None and self.series.run_id == run_id:
            return
        self.selected_run = run_id
        self.series = Series(run_id)
        run = next((r for r in self._runs if r.id == run_id), None)
        shares, rare = self._class_shares(run)
        self.curves.set_class_shares(shares, rare)
        self.curves.clear(f"run {run_id}")
        is_gan = run is not None and run.kind == "gan"
        self.gan_view.set_run(run.out_dir if is_gan else None, (run.config or {}).get("dataset") if is_gan else None)
        self.gan_view.clear(f"run {run_id}")
        read_new_points(self.workspace, self.series)  # once, on the user's click
        self.follower.series = self.series
        self._redraw()

    def _class_shares(self, run: RunSummary | None) -> tuple[dict, set]:
        ds = (run.config or {}).get("dataset") if run is not None and run.kind == "seg" else None
        if not ds:
            return {}, set()
        if ds not in self._shares_cache:
            ls = label_set_for(self.workspace, ds)
            shares = train_class_shares(self.workspace, ds, ls)
            self._shares_cache[ds] = (shares, rare_classes(shares))
        return self._shares_cache[ds]

    def refresh_runs(self, runs: list[RunSummary] | None = None) -> None:
        """Show the run list (read now when not given: segmentation and GAN runs, with the same status words)."""
        if runs is None:
            runs = list_runs(self.workspace, kind=None)
        if [(r.id, r.status, r.iteration, r.miou) for r in runs] == [
            (r.id, r.status, r.iteration, r.miou) for r in self._runs
        ]:
            return
        selected = self.selected_ids()
        self._runs = runs
        if self.series is not None:
            self._redraw()  # the chart header shows the run's status now (not "running" after Stop)
        table = self.runs_table
        table.blockSignals(True)
        table.setRowCount(len(runs))
        for i, r in enumerate(runs):
            name = r.name if r.kind == "seg" else f"{r.name} ({r.kind})"
            vals = [str(r.id), name, r.status, str(r.iteration), "–" if r.miou is None else f"{r.miou * 100:.1f}"]
            for col, v in enumerate(vals):
                it = QTableWidgetItem(v)
                if col == 2:
                    it.setForeground(QColor(STATUS_COLORS.get(r.status, "#000000")))
                table.setItem(i, col, it)
        table.clearSelection()
        mode = table.selectionMode()
        table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for i, r in enumerate(runs):
            if r.id in selected:
                table.selectRow(i)
        table.setSelectionMode(mode)
        table.blockSignals(False)
        self._update_compare()

    def _update_compare(self) -> None:
        """The button says how many runs are selected, and why it is disabled when that is not two."""
        ids = self.selected_ids()
        n = len(ids)
        self.compare_btn.setEnabled(n == 2)
        run = next((r for r in self._runs if n == 1 and r.id == ids[0]), None)
        self.resume_btn.setEnabled(run is not None and run.status in RESUMABLE and not self.process.running)
        self.compare_btn.setText("Compare the 2 selected" if n == 2 else f"Compare (select 2 runs; {n} selected)")

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.runs_table.selectedIndexes()})
        return [int(self.runs_table.item(r, 0).text()) for r in rows]

    def _selection_changed(self) -> None:
        ids = self.selected_ids()
        self._update_compare()
        if len(ids) >= 1:
            self._show_run(ids[0])

    def compare_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) != 2:
            self._say("select exactly two runs to compare")
            return
        a, b = sorted(ids)  # older run as the baseline
        kinds = {r.id: r.kind for r in self._runs}
        if kinds.get(a) != "seg" or kinds.get(b) != "seg":
            self._say("compare works on two segmentation runs (per-class IoU)")
            return
        names = {r.id: r.name for r in self._runs}
        run_a = next((r for r in self._runs if r.id == a), None)
        _shares, rare = self._class_shares(run_a)
        self.compare.show_comparison(f"{a} {names.get(a, '')}", f"{b} {names.get(b, '')}",
                                     compare_runs(self.workspace, a, b), rare)
        self.tabs.setCurrentWidget(self.compare)

    def _say(self, msg: str) -> None:
        self.run_state.setText(msg)
        self.statusMessage.emit(msg)

    def closeEvent(self, ev) -> None:  # noqa: N802
        self.follower.stop()
        super().closeEvent(ev)

