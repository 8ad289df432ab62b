"""The main window: only wires panels to the app state; every panel lives in its own module (widgets/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStyle,
    QTabWidget,
    QToolBar,
    QWidget,
)

from segbalance.core.datasets import SampleRef
from segbalance.core.jobs import pairs as pair_service
from segbalance.core.workspace import DB_NAME
from segbalance.desktop_app import core_calls
from segbalance.desktop_app.settings import Settings
from segbalance.desktop_app.state import AppState
from segbalance.desktop_app.theme import app_icon
from segbalance.desktop_app.widgets import about
from segbalance.desktop_app.widgets.balance_editor import BalanceEditor
from segbalance.desktop_app.widgets.dataset_browser import DatasetBrowser
from segbalance.desktop_app.widgets.export_dialog import DEFAULT_INCLUDE, ExportDialog
from segbalance.desktop_app.widgets.generation_panel import GenerationPanel
from segbalance.desktop_app.widgets.histogram import ClassHistogram
from segbalance.desktop_app.widgets.image_viewer import ImageViewer
from segbalance.desktop_app.widgets.job_list import JobList
from segbalance.desktop_app.widgets.log_view import LogView
from segbalance.desktop_app.widgets.new_workspace_dialog import NewWorkspaceDialog
from segbalance.desktop_app.widgets.panel_host import PanelHost
from segbalance.desktop_app.widgets.review_gallery import ReviewGallery
from segbalance.desktop_app.widgets.status_bar import StatusBar
from segbalance.desktop_app.widgets.thumbnails import ThumbnailLoader
from segbalance.desktop_app.widgets.wheel_guard import guard_wheel
from segbalance.desktop_app.workers import create_worker, error_text

FIRST_SIZE = QSize(1400, 900)  # the first window on a large screen; smaller screens get their available size


def first_window_size(available: QSize) -> QSize:
    """The first window's size: FIRST_SIZE, shrunk to fit the screen it opens on (a 1366x768 laptop's
    available area is smaller than both)."""
    return QSize(min(FIRST_SIZE.width(), available.width()), min(FIRST_SIZE.height(), available.height()))


JOB_POLL_MS = 2000  # how often the status bar looks for jobs started outside this window
QUIT_WAIT_MS = 60_000  # a training subprocess gets this long to finish its step and save, then it is killed


# -- extra panels ------------------------------------------------------------------------------
@dataclass
class PanelSpec:
    """A panel added by another part of the app: a central tab or a dock."""

    title: str
    widget: QWidget
    area: str = "tab"  # "tab", "left", "right" or "bottom"


# Panels built elsewhere (label editor in desktop_app/editor/, training in desktop_app/training/) register a
# factory here: `PANEL_FACTORIES.append(lambda state: PanelSpec("Label editor", LabelEditor(state)))`.
# Each gets the AppState (workspace, dataset, stats, signals) and nothing else of the window.
PANEL_FACTORIES: list[Callable[[AppState], PanelSpec]] = []


def _editor_panel(state: AppState) -> PanelSpec:
    from segbalance.desktop_app.editor import LabelEditor

    def build(st: AppState) -> QWidget | None:
        if st.workspace is None or st.dataset is None:
            return None
        editor = LabelEditor(st.workspace, st.dataset.label_set)
        editor.statusMessage.connect(st.message)
        # one generator for the editor and the Generate panel, kept with the workspace
        editor.render_pane.checkpointLoaded.connect(st.generatorChanged)
        st.generatorChanged.connect(editor.render_pane.follow_checkpoint)  # a method: dropped with the editor
        if st.memory is not None:
            saved = st.memory.checkpoint("gan") or st.memory.checkpoint("editor")
            if saved is not None and saved.is_file():
                editor.render_pane.load_checkpoint(saved)
        editor.revisionSaved.connect(lambda _rid: st.log.emit(f"Label editor: {editor.status_note()}"))
        return editor

    host = PanelHost(state, build, lambda st: (st.workspace, st.dataset.label_set.name if st.dataset else None),
                     "The label editor opens once a workspace and a dataset are open")
    return PanelSpec("Label editor", host, "tab")


def _training_panel(state: AppState) -> PanelSpec:
    from segbalance.desktop_app.training import TrainingPanel

    def build(st: AppState) -> QWidget | None:
        if st.workspace is None:
            return None
        panel = TrainingPanel(st.workspace)
        panel.statusMessage.connect(st.message)
        if st.memory is not None:  # the form as last used here; the open dataset when none was chosen
            memory = st.memory
            panel.set_form_state(memory.training_form(), str(st.dataset.root) if st.dataset is not None else None)
            panel.formUsed.connect(memory.set_training_form)
        st.datasetChanged.connect(panel.dataset_opened)  # a method: disconnected when the panel goes
        job: dict = {}  # the run in the job list while its subprocess lives

        def started(_out: str) -> None:
            name = "Train segmentation" if panel.current_kind == "seg" else "Train GAN (resumed)"
            e = job["e"] = st.start_job(name, panel.stop_run, panel.process.pid())
            e.wait = panel.process.wait_or_kill
            e.kept = panel.kept_on_stop

        def process_started() -> None:  # the pid is known once the process runs: its Job row is ours
            if "e" in job:
                job["e"].pid = panel.process.pid()
                if job["e"].pid is not None:
                    st.started_pids.add(job["e"].pid)

        def progress(done: int, total: int, eta: float) -> None:
            if "e" in job:
                st.job_progress(job["e"], done, total, eta)

        def finished(code: int, stopped: bool) -> None:
            e = job.pop("e", None)
            if e is not None:
                st.end_job(e, "cancelled; the last checkpoint is kept (Resume in the Training tab)" if stopped
                           else "finished" if code == 0 else f"failed (exit code {code})")

        panel.runStarted.connect(started)
        panel.process.started.connect(process_started)
        panel.runProgress.connect(progress)
        panel.runFinished.connect(finished)
        return panel

    host = PanelHost(state, build, lambda st: st.workspace, "Training runs show once a workspace is open")
    return PanelSpec("Training", host, "tab")


def _default_panel_factories() -> list[Callable[[AppState], PanelSpec]]:
    """The label editor and training tabs; both are part of the app, a broken import fails at start."""
    return [_editor_panel, _training_panel]


# -- labelme-style named groups ----------------------------------------------------------------
@dataclass
class _Actions:
    new_workspace: QAction
    open_workspace: QAction
    add_dataset: QAction
    refresh_stats: QAction
    export: QAction
    quit: QAction
    prev_sample: QAction
    next_sample: QAction
    fit: QAction
    cancel_jobs: QAction
    edit_sample: QAction
    about: QAction


@dataclass
class _Menus:
    file: QMenu
    recent: QMenu
    view: QMenu
    sample: QMenu
    jobs: QMenu
    help: QMenu


@dataclass
class _Docks:
    browser: QDockWidget
    histogram: QDockWidget
    balance: QDockWidget
    generation: QDockWidget
    log: QDockWidget
    jobs: QDockWidget
    extra: list[QDockWidget] = field(default_factory=list)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MainWindow")
        self.setWindowTitle("segbalance")
        self.setWindowIcon(app_icon())
        self.settings = settings
        self.state = AppState(settings, self)
        self.errors: list[tuple[str, str]] = []  # every message shown to the user (tests read it)
        self._quit_confirmed = False

        # panels
        self.thumbnails = ThumbnailLoader(parent=self)
        self.browser = DatasetBrowser(self.thumbnails)
        self.viewer = ImageViewer()
        self.histogram = ClassHistogram()
        self.balance = BalanceEditor(self.state)
        self.generation = GenerationPanel(self.state)
        self.log_view = LogView()
        self.job_list = JobList(self.state)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.gallery = ReviewGallery(self.thumbnails)
        self.tabs.addTab(self.viewer, "Viewer")
        self.tabs.addTab(self.gallery, "Review")
        self.setCentralWidget(self.tabs)
        self.status = StatusBar()
        self.setStatusBar(self.status)

        self.docks = _Docks(
            browser=self._dock("Dataset", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            histogram=self._dock("Classes", self.histogram, Qt.DockWidgetArea.RightDockWidgetArea),
            balance=self._dock("Balance", self.balance, Qt.DockWidgetArea.RightDockWidgetArea),
            generation=self._dock("Generate", self.generation, Qt.DockWidgetArea.BottomDockWidgetArea),
            log=self._dock("Log", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea),
            jobs=self._dock("Jobs", self.job_list, Qt.DockWidgetArea.BottomDockWidgetArea),
        )
        self.tabifyDockWidget(self.docks.generation, self.docks.log)
        self.tabifyDockWidget(self.docks.log, self.docks.jobs)
        self.docks.generation.raise_()
        # side columns run the full height; the bottom docks sit under the viewer only
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setDockOptions(self.dockOptions() | QMainWindow.DockOption.AllowTabbedDocks)
        self.actions = self._make_actions()
        self.menus = self._make_menus()
        self._make_toolbar()
        self._wire()
        self._add_extra_panels()
        self.resize(first_window_size(self.screen().availableGeometry().size()))
        self._default_dock_sizes()
        geometry, dock_state = settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
            self._fit_screen()
        self._restore_preferences()
        if dock_state is not None:
            self.restoreState(dock_state)
        else:
            QTimer.singleShot(0, self._default_dock_sizes)  # dock sizes only stick once the window is laid out
        self._update_enabled()
        guard_wheel(self)

    def _fit_screen(self) -> None:
        """A window restored from a larger screen is shrunk to the one it opens on."""
        avail = self.screen().availableGeometry()
        if self.width() > avail.width() or self.height() > avail.height():
            self.resize(min(self.width(), avail.width()), min(self.height(), avail.height()))
            self.move(avail.topLeft())

    # -- construction ---------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")  # restoreState matches on names
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _default_dock_sizes(self) -> None:
        """First-run layout: a thumbnail column on the left, the histogram over the balance table on the right."""
        d = self.docks
        self.resizeDocks([d.browser, d.histogram], [215, 430], Qt.Orientation.Horizontal)
        self.resizeDocks([d.histogram, d.balance], [380, 470], Qt.Orientation.Vertical)
        self.resizeDocks([d.generation], [190], Qt.Orientation.Vertical)

    def _action(self, text: str, slot: Callable, shortcut=None, tip: str = "",
                icon: QStyle.StandardPixmap | None = None) -> QAction:
        a = QAction(text, self)
        if icon is not None:
            a.setIcon(self.style().standardIcon(icon))
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            a.setShortcuts([QKeySequence(k) for k in keys])
        plain = tip or text.replace("&&", "\0").replace("&", "").replace("\0", "&")  # mnemonics are not words
        a.setStatusTip(plain)
        a.setToolTip(f"{plain} ({a.shortcut().toString()})" if shortcut else plain)
        a.triggered.connect(lambda _checked=False: slot())
        return a

    def _make_actions(self) -> _Actions:
        act = self._action
        return _Actions(
            new_workspace=act("&New workspace…", self.new_workspace_dialog, "Ctrl+N",
                              "Create a workspace folder", QStyle.StandardPixmap.SP_FileDialogNewFolder),
            open_workspace=act("&Open workspace…", self.open_workspace_dialog, "Ctrl+O",
                               "Open a workspace folder", QStyle.StandardPixmap.SP_DialogOpenButton),
            add_dataset=act("&Add dataset…", self.add_dataset_dialog, "Ctrl+D",
                            "Add a dataset folder (Cityscapes or images/masks layout)",
                            QStyle.StandardPixmap.SP_DirIcon),
            refresh_stats=act("Re&measure classes", self.state.compute_stats, "F5", "Recount class pixels"),
            export=act("&Export augmented dataset…", self.export_dialog, "Ctrl+E",
                       "Write the dataset plus the generated pairs you choose in the Cityscapes layout"),
            quit=act("&Quit", self.close, "Ctrl+Q"),
            prev_sample=act("&Previous sample", lambda: self.browser.step(-1), ["PgUp", "Ctrl+Left"],
                        icon=QStyle.StandardPixmap.SP_ArrowBack),
            next_sample=act("&Next sample", lambda: self.browser.step(1), ["PgDown", "Ctrl+Right"],
                        icon=QStyle.StandardPixmap.SP_ArrowForward),
            fit=act("&Fit to window", self.viewer.canvas.fit, "Ctrl+0",
                    icon=QStyle.StandardPixmap.SP_TitleBarMaxButton),
            cancel_jobs=act("&Cancel all jobs", self.state.cancel_all, "Ctrl+Shift+X"),
            edit_sample=act("&Edit label map", self.edit_current_sample, "Ctrl+L",
                            "Open the current sample in the label editor"),
            about=act("&About segbalance", self.show_about),
        )

    def _make_menus(self) -> _Menus:
        a, bar = self.actions, self.menuBar()
        file = bar.addMenu("&File")
        file.addActions([a.new_workspace, a.open_workspace])
        recent = file.addMenu("Open &recent")
        recent.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        file.addActions([a.add_dataset, a.refresh_stats, a.export])
        file.addSeparator()
        file.addAction(a.quit)
        view = bar.addMenu("&View")
        for d in (self.docks.browser, self.docks.histogram, self.docks.balance, self.docks.generation,
                  self.docks.log, self.docks.jobs):
            view.addAction(d.toggleViewAction())
        sample = bar.addMenu("&Sample")
        sample.addActions([a.prev_sample, a.next_sample, a.fit, a.edit_sample])
        jobs = bar.addMenu("&Jobs")
        jobs.addAction(self.docks.jobs.toggleViewAction())
        jobs.addAction(a.cancel_jobs)
        help_ = bar.addMenu("&Help")
        help_.addAction(a.about)
        return _Menus(file, recent, view, sample, jobs, help_)

    def _make_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        a = self.actions
        tb.addActions([a.open_workspace, a.add_dataset])
        self.dataset_box = QComboBox()
        self.dataset_box.setMinimumWidth(260)
        self.dataset_box.setToolTip("Datasets of this workspace")
        self.dataset_box.activated.connect(self._dataset_chosen)
        tb.addWidget(self.dataset_box)
        tb.addSeparator()
        tb.addActions([a.prev_sample, a.next_sample, a.fit])
        self.addToolBar(tb)
        self.toolbar = tb

    def add_panel(self, spec: PanelSpec) -> None:
        """Add a tab or dock built outside this module (see PANEL_FACTORIES)."""
        if spec.area == "tab":
            self.tabs.addTab(spec.widget, spec.title)
            return
        area = {
            "left": Qt.DockWidgetArea.LeftDockWidgetArea,
            "right": Qt.DockWidgetArea.RightDockWidgetArea,
            "bottom": Qt.DockWidgetArea.BottomDockWidgetArea,
        }[spec.area]
        dock = self._dock(spec.title, spec.widget, area)
        self.docks.extra.append(dock)
        self.menus.view.addAction(dock.toggleViewAction())

    def _add_extra_panels(self) -> None:
        for factory in _default_panel_factories():  # the app's own: a broken one fails loudly
            self.add_panel(factory(self.state))
        for factory in PANEL_FACTORIES:
            try:
                spec = factory(self.state)
            except Exception as exc:  # noqa: BLE001 - one broken panel must not keep the app from starting
                self.state.log.emit(f"panel {getattr(factory, '__name__', factory)} not added: {error_text(exc)}")
                continue
            self.add_panel(spec)

    def _wire(self) -> None:
        s = self.state
        s.error.connect(self.show_error)
        self.status.devicesFound.connect(self.generation.set_devices)
        s.log.connect(self.log_view.append_line)
        s.message.connect(lambda text: self.status.showMessage(text, 10_000))
        s.jobsChanged.connect(self._update_job_label)
        # jobs started elsewhere (a CLI `generate`, another window) are followed through the DB
        self.db_jobs: list[dict] = []
        self._db_poll = None
        self.job_poll_timer = QTimer(self)
        self.job_poll_timer.setInterval(JOB_POLL_MS)
        self.job_poll_timer.timeout.connect(self._poll_db_jobs)
        self.job_poll_timer.start()
        s.workspaceChanged.connect(self._workspace_changed)
        s.datasetChanged.connect(self.browser.set_dataset)
        s.datasetChanged.connect(lambda ds: self.viewer.show_sample(ds, None) if ds is None else None)
        s.datasetChanged.connect(lambda _ds: self._fill_datasets())
        s.statsChanged.connect(lambda st: self.browser.set_stats(st))
        s.statsChanged.connect(lambda _st: self.histogram.set_stats(s.stats_for(s.split)))
        s.splitChanged.connect(lambda split: self.histogram.set_stats(s.stats_for(split)))
        s.targetChanged.connect(self.histogram.set_target)
        s.planChanged.connect(lambda plan: self.histogram.set_predicted(getattr(plan, "after", None)))
        self.browser.splitChanged.connect(s.set_split)
        self.browser.sampleSelected.connect(lambda ref: self.viewer.show_sample(s.dataset, ref))
        self.viewer.nextRequested.connect(lambda: self.browser.step(1))
        self.viewer.prevRequested.connect(lambda: self.browser.step(-1))
        self.histogram.classClicked.connect(self.browser.set_class_filter)
        self.browser.class_box.currentIndexChanged.connect(  # a filter chosen in the browser highlights its bar
            lambda i: self.histogram.set_selected(self.browser.class_box.currentText() if i > 0 else None)
            if (self.browser.class_box.currentText() if i > 0 else None) != self.histogram.selected else None)
        s.workspaceChanged.connect(self.gallery.set_workspace)
        s.datasetChanged.connect(lambda ds: self.gallery.set_label_set(ds.label_set if ds is not None else None))
        s.pairsChanged.connect(self.gallery.refresh)
        s.pairsArriving.connect(self.gallery.refresh_async)  # while a job writes: read off the UI thread
        self.gallery.exportRequested.connect(self.export_dialog)
        self.gallery.pairActivated.connect(self.show_pair)
        self.gallery.refused.connect(lambda msg: self.show_error("Review", msg))
        self.gallery.message.connect(lambda text: self.status.showMessage(text, 5000))
        self.gallery.sourceRequested.connect(self.show_source_sample)
        self.viewer.reviewRequested.connect(self._review_from_viewer)
        self.histogram.classClicked.connect(lambda name: self.docks.browser.raise_() if name else None)

    def _tab_with(self, method: str) -> int | None:
        """Index of the first tab whose panel (or hosted panel) offers `method` (e.g. the label editor)."""
        for i in range(self.tabs.count()):
            w = self.tabs.widget(i)
            inner = getattr(w, "inner", None) or w
            if callable(getattr(inner, method, None)):
                return i
        return None

    def edit_current_sample(self) -> bool:
        """Open the browser's current sample in the label editor tab (issue 8), when there is one."""
        i = self._tab_with("open_sample")
        ref = self.browser.current_ref()
        if i is None or ref is None or self.state.dataset is None:
            self.status.showMessage("No label editor, or no sample selected", 5000)
            return False
        w = self.tabs.widget(i)
        (getattr(w, "inner", None) or w).open_sample(self.state.dataset, ref)
        self.tabs.setCurrentIndex(i)
        return True

    def show_pair(self, item) -> None:
        """A generated pair in the viewer, where it can be zoomed, its classes toggled, and accepted (A/R/U)."""
        ref = SampleRef(f"pair #{item.id}", f"job {item.job_id} · {item.status}", item.image_path, item.label_path)
        self.viewer.show_files(ref, self.gallery.model.label_set)
        self.viewer.set_pair(item.id)
        self.tabs.setCurrentWidget(self.viewer)

    def _review_from_viewer(self, pair_id: int, status: str) -> None:
        """A/R there decide on the pair shown; U is the review tab's undo (the last decision, wherever made)."""
        if status == pair_service.PENDING:
            d = self.gallery.undo()
            if d is None:
                return
            self.status.showMessage(f"Undone: {d.describe()}", 5000)
        elif self.gallery.decide([pair_id], status):
            self.status.showMessage(f"Pair #{pair_id} {status}", 5000)
        else:
            return
        item = self.gallery.model.item(pair_id)
        if item is not None:
            self.viewer.title.setText(f"pair #{pair_id}  ·  job {item.job_id} · {item.status}")

    def show_source_sample(self, sample_id: str) -> bool:
        """Open a dataset sample a pair was recombined from in the viewer (from the review tab's links)."""
        ds = self.state.dataset
        ref = next((r for r in ds.samples() if r.id == sample_id), None) if ds is not None else None
        if ref is None:
            self.status.showMessage(f"Sample {sample_id} is not in the open dataset", 8000)
            return False
        self.viewer.show_sample(ds, ref)
        self.tabs.setCurrentWidget(self.viewer)
        return True

    def _update_job_label(self) -> None:
        own = self.state.own_pids()
        elsewhere = [j for j in self.db_jobs if j.get("pid") not in own]  # our own jobs are not "elsewhere"
        self.status.set_jobs(self.state.running_jobs(), elsewhere)
        self.job_list.set_elsewhere(elsewhere)

    def _poll_db_jobs(self) -> None:
        ws = self.state.workspace
        if ws is None or (self._db_poll and not self._db_poll.done.is_set()):
            return
        w = create_worker(core_calls.running_jobs, ws)
        w.returned.connect(self._db_jobs_polled)
        self._db_poll = w.start()  # not through state.run: polling is not a job the user started

    def _db_jobs_polled(self, jobs: list[dict]) -> None:
        self.db_jobs = jobs
        self._update_job_label()

    # -- workspace and datasets ----------------------------------------------------------
    def open_workspace(self, path: str | Path, *, create: bool = False) -> bool:
        """Open a workspace; a plain folder (no database yet) is offered to become one rather than refused."""
        p = Path(path)
        if not create and p.is_dir() and not (p / DB_NAME).exists():
            self.offer_create(p)
            return False
        return self.state.open_workspace(path, create=create)

    def offer_create(self, path: Path) -> QMessageBox:
        """Ask whether a folder that is not a workspace yet should become one (non-blocking)."""
        n = sum(1 for _ in path.iterdir())
        box = QMessageBox(QMessageBox.Icon.Question, "Open workspace",
                          f"{path} is not a segbalance workspace yet"
                          + (f" (it holds {n} item{'s' if n != 1 else ''}; they are left as they are)" if n else "")
                          + ".\nCreate a workspace there?", QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("create_workspace_confirm")
        create = box.addButton("Create workspace", QMessageBox.ButtonRole.AcceptRole)
        create.clicked.connect(lambda: self.state.open_workspace(path, create=True))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.create_box = box
        box.open()
        return box

    def open_workspace_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open workspace", self.settings.last_workspace() or "")
        if path:
            self.open_workspace(path)

    def new_workspace_dialog(self) -> NewWorkspaceDialog:
        """A folder and a name (the folder may not exist yet), starting beside the current workspace."""
        ws = self.state.workspace
        dlg = NewWorkspaceDialog(ws.path if ws is not None else self.settings.last_workspace(), self)
        dlg.chosen.connect(lambda p: self.open_workspace(p, create=True))
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.new_workspace_window = dlg
        dlg.open()
        return dlg

    def add_dataset(self, path: str | Path):
        return self.state.add_dataset(path)

    def add_dataset_dialog(self) -> None:
        if self.state.workspace is None:
            self.show_error("Add dataset", "open or create a workspace first (File > New workspace)")
            return
        path = QFileDialog.getExistingDirectory(self, "Add dataset folder", str(self.state.workspace.path))
        if path:
            self.add_dataset(path)

    def export_dialog(self) -> ExportDialog | None:
        """Open the export dialog (statuses with counts before/after); it exports when accepted.

        Non-blocking (open(), not exec()): tests and the rest of the window keep running."""
        s = self.state
        if s.workspace is None or s.dataset is None:
            self.show_error("Export", "open a workspace and a dataset first")
            return None
        counts = pair_service.export_counts(s.workspace, s.dataset)
        start = s.workspace.path / "exports" / s.dataset.root.name
        dlg = ExportDialog(len(s.dataset.samples()), counts, start, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: self.export_to(dlg.folder(), dlg.include()))
        self.export_window = dlg
        dlg.open()
        return dlg

    def export_to(self, out: str | Path, include: tuple[str, ...] = DEFAULT_INCLUDE):
        """Export the dataset plus the pairs with the chosen statuses in the background; returns the worker."""
        s = self.state
        w = create_worker(core_calls.export_dataset, s.workspace, s.dataset, out, tuple(include))

        def done(man: dict) -> None:
            self.status.showMessage(f"Exported {man['originals']} original + {man['generated']} generated "
                                    f"samples to {out}", 10_000)

        w.returned.connect(done)
        return s.run("Export", w, lambda man: f"{man['originals']} original + {man['generated']} generated samples "
                                               f"({', '.join(man['include'])}) to {out}",
                     kept=lambda: f"nothing: the export is built beside {out} and only swapped in when complete, "
                                  "so an earlier export there stays as it was")

    def _fill_recent(self) -> None:
        m = self.menus.recent
        m.clear()
        for p in self.settings.recent_workspaces():
            m.addAction(p, lambda p=p: self.open_workspace(p))
        if m.isEmpty():
            m.addAction("(none)").setEnabled(False)

    def _workspace_changed(self, ws) -> None:
        self.setWindowTitle(f"segbalance — {ws.path}" if ws is not None else "segbalance")
        self.thumbnails.set_cache_dir(ws.subdir("cache", "thumbnails") if ws is not None else None)
        self._fill_datasets()
        self._update_enabled()

    def _fill_datasets(self) -> None:
        self.dataset_box.clear()
        for row in self.state.dataset_rows():
            self.dataset_box.addItem(f"{Path(row.path).name}  ({row.format})", row.id)
            self.dataset_box.setItemData(self.dataset_box.count() - 1, str(row.path), Qt.ItemDataRole.ToolTipRole)
        i = self.dataset_box.findData(self.state.dataset_id)
        self.dataset_box.setCurrentIndex(i)

    def _dataset_chosen(self, index: int) -> None:
        row_id = self.dataset_box.itemData(index)
        if row_id is not None and row_id != self.state.dataset_id:
            self.state.open_dataset_row(row_id)

    def _update_enabled(self) -> None:
        has_ws = self.state.workspace is not None
        for a in (self.actions.add_dataset, self.actions.refresh_stats, self.actions.export):
            a.setEnabled(has_ws)

    # -- messages ------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A non-blocking message box: the app keeps running, and tests never hang on it."""
        self.errors.append((title, message))
        self.status.showMessage(f"{title}: {message}", 10_000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setObjectName("error_box")
        box.open()

    def about_text(self) -> str:
        return about.about_text(self.status.device)

    def show_about(self) -> None:
        about.show_about(self, self.status.device)

    # -- preferences -------------------------------------------------------------------------
    def _preference_widgets(self) -> dict[str, QWidget]:
        """Controls whose value the app remembers between runs, by settings key."""
        return {
            "prefs/overlay_opacity": self.viewer.opacity,
            "prefs/histogram_mode": self.histogram.mode,
            "prefs/histogram_sort": self.histogram.sort,
            "prefs/histogram_log": self.histogram.log,
            "prefs/generation_renderer": self.generation.renderer,
            "prefs/generation_device": self.generation.device,
            "prefs/plan_budget": self.balance.budget,
        }

    def _restore_preferences(self) -> None:
        for key, w in self._preference_widgets().items():
            v = self.settings.get(key)
            if v is None:
                continue
            if isinstance(w, QComboBox):
                i = w.findText(str(v))
                if i >= 0:
                    w.setCurrentIndex(i)
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(v))
            elif isinstance(v, (int, float)):
                w.setValue(v)

    def _save_preferences(self) -> None:
        for key, w in self._preference_widgets().items():
            if isinstance(w, QComboBox):
                self.settings.set(key, w.currentText())
            elif isinstance(w, QCheckBox):
                self.settings.set(key, w.isChecked())
            else:
                self.settings.set(key, w.value())

    # -- closing ---------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        running = self.state.running_jobs()
        if running and not self._quit_confirmed:
            event.ignore()
            self.ask_quit(running)
            return
        self.job_poll_timer.stop()
        if self._db_poll is not None:
            self._db_poll.done.wait(5)
        self._save_preferences()
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        if self.state.entries:  # quit confirmed: every job was asked to stop; subprocesses save, then end
            self.status.showMessage("Waiting for the training runs to save their checkpoints…")
            self.state.cancel_all()
            self.state.wait_subprocesses(QUIT_WAIT_MS)  # their runs get their final word ("cancelled") here
        self.state.close_workspace()
        self.thumbnails.clear_queue()
        self.thumbnails.wait_idle(5000)
        super().closeEvent(event)

    def quit_text(self) -> str:
        """What quitting now does to each running job: exactly what it keeps."""
        entries = self.state.entries
        n = len(entries)
        lines = [f"• {e.name}: {e.kept_text()}" for e in entries]
        return (f"{n} job{'s are' if n > 1 else ' is'} still running:\n" + "\n".join(lines)
                + f"\n\nQuit and cancel {'them' if n > 1 else 'it'}? The app waits for each to stop cleanly.")

    def ask_quit(self, running: list[str]) -> QMessageBox:
        """Jobs are running: quit only when the user says so, after saying what each keeps."""
        box = QMessageBox(QMessageBox.Icon.Question, "Quit segbalance", self.quit_text(),
                          QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("quit_confirm")
        quit_button = box.addButton("Cancel jobs and quit", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        quit_button.clicked.connect(self._quit_now)
        self.quit_box = box
        box.open()
        return box

    def _quit_now(self) -> None:
        self._quit_confirmed = True
        self.state.cancel_all()
        self.close()
