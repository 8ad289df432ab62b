"""What the app has open (workspace, dataset, stats, plan) and the background work on it.

Panels read from here and listen to its signals; the main window only wires them. All engine
calls go through core/db, long ones through desktop_app.workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from segbalance.core.datasets import Dataset, catalog, open_dataset
from segbalance.core.datasets.stats import DatasetStats, dataset_stats
from segbalance.core.errors import SegbalanceError, WorkspaceError
from segbalance.core.planning.summaries import split_stats
from segbalance.core.workspace import Workspace
from segbalance.desktop_app import core_calls
from segbalance.desktop_app.settings import Settings
from segbalance.desktop_app.workers import Worker, create_worker, error_text
from segbalance.desktop_app.workspace_memory import WorkspaceMemory


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf") or seconds < 0:
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


@dataclass(eq=False)
class JobEntry:
    """One background job of this window (a worker thread or a subprocess), as the job list shows it."""

    name: str
    cancel: Callable[[], None]
    pid: int | None = None  # the process doing the work (this one for workers), to recognise its DB Job row
    done: int = 0
    total: int = 0  # 0 = not known yet (a busy bar)
    cancelling: bool = False
    eta_s: float | None = None  # time left: the job's own estimate (a run's Job row) or from its rate
    wait: Callable[[int], bool] | None = None  # a subprocess: block until it ended (quit waits for it)
    kept: Callable[[], str] | None = None  # what a cancel keeps, in words (the quit dialog says it)
    meter: RateMeter = field(default_factory=RateMeter)

    def request_cancel(self) -> None:
        self.cancelling = True
        self.cancel()

    def kept_text(self) -> str:
        try:
            return self.kept() if self.kept is not None else "nothing it has not already written"
        except Exception:  # noqa: BLE001 - a description must never keep the app from quitting
            return "what it has written so far"


SMALL_DATASET = 256  # below this, stats scan in-process (a process pool costs more than it saves)


class AppState(QObject):
    workspaceChanged = Signal(object)  # Workspace | None
    datasetChanged = Signal(object)  # core Dataset | None
    statsChanged = Signal(object)  # DatasetStats of all splits | None
    splitChanged = Signal(object)  # str | None
    planChanged = Signal(object)  # core.planning.balance Plan | None
    targetChanged = Signal(object)  # dict class_name -> share | None
    pairsChanged = Signal()  # generated pairs added or reviewed
    pairsArriving = Signal()  # a running job wrote more pairs (views reload off the UI thread)
    error = Signal(str, str)  # title, one-line message
    log = Signal(str)
    message = Signal(str)  # a short feedback line for the status bar (a panel's "saved revision 3 of ...")
    jobsChanged = Signal()  # a job started or ended
    jobProgress = Signal(object)  # JobEntry whose done/total changed
    generatorChanged = Signal(str)  # the generator checkpoint chosen in the Generate panel or the label editor

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.workspace: Workspace | None = None
        self.dataset: Dataset | None = None
        self.dataset_id: int | None = None
        self.stats: DatasetStats | None = None
        self.sample_split: dict[str, str] = {}
        self.split: str | None = None
        self.plan = None
        self.plan_path: Path | None = None  # the saved plan file generation runs on
        self.target: dict[str, float] | None = None
        self.jobs: dict[Worker, str] = {}
        self.entries: list[JobEntry] = []  # every background job, workers and subprocesses, oldest first
        self.started_pids: set[int] = set()
        self._stats_worker: Worker | None = None
        self.device = "cpu"
        self.memory: WorkspaceMemory | None = None

    # -- background work -------------------------------------------------------------
    def run(self, name: str, worker: Worker, describe: Callable[[object], str] | None = None,
            kept: Callable[[], str] | None = None) -> Worker:
        """Start a worker and track it for the status bar; errors go to the error signal.

        The Log gets a line when it starts and one when it ends (finished with `describe(result)`, the counts
        of what it made, or cancelled, or failed with the reason)."""
        self.jobs[worker] = name
        entry = self.start_job(name, worker.cancel, os.getpid(), emit=False)
        entry.kept = kept
        worker.progress.connect(lambda d, n, e=entry: self.job_progress(e, d, n))
        worker.finished.connect(lambda e=entry: self.end_job(e))

        def finished(result: object, n: str = name) -> None:
            try:
                what = describe(result) if describe is not None else ""
            except Exception:  # noqa: BLE001 - a summary that cannot be made must not hide the finish
                what = ""
            self.log.emit(f"{n}: finished" + (f": {what}" if what else ""))

        worker.returned.connect(finished)
        worker.errored.connect(lambda exc, n=name: self.error.emit(n, error_text(exc)))
        worker.errored.connect(lambda exc, n=name: self.log.emit(f"{n}: failed: {error_text(exc)}"))
        worker.cancelled.connect(lambda n=name: self.log.emit(f"{n}: cancelled"))
        worker.finished.connect(lambda w=worker: self._job_done(w))
        self.log.emit(f"{name}: started")
        worker.start()
        self.jobsChanged.emit()
        return worker

    def _job_done(self, worker: Worker) -> None:
        self.jobs.pop(worker, None)
        self.jobsChanged.emit()

    def start_job(self, name: str, cancel: Callable[[], None], pid: int | None = None, *,
                  emit: bool = True) -> JobEntry:
        """Show a job in the job list (subprocesses call this; workers go through `run`)."""
        entry = JobEntry(name, cancel, pid)
        self.entries.append(entry)
        if pid is not None:
            self.started_pids.add(pid)
        if emit:
            self.log.emit(f"{name}: started")
            self.jobsChanged.emit()
        return entry

    def job_progress(self, entry: JobEntry, done: int, total: int, eta_s: float | None = None) -> None:
        """New progress of a job; without an estimate of its own (eta_s None or < 0) the ETA comes from its rate."""
        entry.done, entry.total = int(done), int(total)
        rate_eta = entry.meter.update(entry.done, entry.total)[1]
        entry.eta_s = eta_s if eta_s is not None and eta_s >= 0 else rate_eta
        self.jobProgress.emit(entry)

    def end_job(self, entry: JobEntry, outcome: str | None = None) -> None:
        """Take a job off the list; `outcome` (e.g. "finished: ...") goes to the Log for subprocess jobs."""
        if entry in self.entries:
            self.entries.remove(entry)
            if outcome:
                self.log.emit(f"{entry.name}: {outcome}")
            self.jobsChanged.emit()

    def running_jobs(self) -> list[str]:
        return [e.name for e in self.entries]

    def own_pids(self) -> set[int]:
        """Processes whose DB jobs are this window's: itself, and every subprocess it started (a finished one's
        row may still read "running" in a poll taken a moment before it ended)."""
        return {os.getpid(), *self.started_pids, *(e.pid for e in self.entries if e.pid is not None)}

    def cancel_all(self) -> None:
        for e in list(self.entries):
            e.request_cancel()

    def wait_subprocesses(self, ms: int) -> bool:
        """Block until every subprocess job ended (after a cancel: each saves and says "cancelled"); True when
        none is left. Their end handlers run meanwhile, so their runs get their final word before the app goes."""
        ok = True
        for e in [e for e in self.entries if e.wait is not None]:
            ok = e.wait(ms) and ok
        return ok

    # -- workspace --------------------------------------------------------------------
    def open_workspace(self, path: str | Path, *, create: bool = False) -> bool:
        """Open (or create) a workspace; a bad folder is reported through `error` and changes nothing."""
        try:
            ws = Workspace(path, create=create)
        except WorkspaceError as exc:
            self.error.emit("Open workspace", str(exc))
            return False
        self.close_workspace()
        self.workspace = ws
        self.memory = WorkspaceMemory(ws)
        self.settings.add_recent_workspace(ws.path)
        self.log.emit(f"workspace {ws.path}")
        if self.memory.warning:
            self.log.emit(f"warning: {self.memory.warning}")
        self.workspaceChanged.emit(ws)
        last = self.settings.get(f"workspace_dataset/{ws.path}")
        remembered = self.memory.dataset()  # kept in the workspace: still right after a move
        rows = self.dataset_rows()
        row = next((r for r in rows if remembered is not None and r.path == remembered), None) \
            or next((r for r in rows if r.id == last), rows[-1] if rows else None)
        if row is not None:
            self.open_dataset_row(row.id)
        return True

    def close_workspace(self) -> None:
        self.cancel_all()
        self.wait_subprocesses(60_000)  # training runs save and end "cancelled" before their panel goes
        for w in list(self.jobs):
            w.done.wait(10)  # engines stop at their next cancel check
        self._set_dataset(None, None)
        if self.workspace is not None:
            self.workspace.close()
        self.workspace = None
        self.memory = None
        self.workspaceChanged.emit(None)

    def dataset_rows(self) -> list[catalog.DatasetRecord]:
        if self.workspace is None:
            return []
        return catalog.datasets(self.workspace)

    # -- datasets ---------------------------------------------------------------------
    def add_dataset(self, path: str | Path) -> Worker | None:
        """Detect the format, register the dataset in the workspace, then measure it (all in the background)."""
        if self.workspace is None:
            self.error.emit("Add dataset", "open or create a workspace first")
            return None
        ws = self.workspace

        def _open(p: str) -> tuple[Dataset, int]:
            ds = open_dataset(p)
            ds.samples()  # scan now, off the UI thread; layout errors surface here
            return ds, ws.register_dataset(ds)

        w = create_worker(_open, str(path))
        w.returned.connect(lambda res: self._set_dataset(*res))
        return self.run("Add dataset", w, lambda res: f"{len(res[0].samples())} samples ({res[0].format})",
                        kept=lambda: "nothing yet: the dataset is scanned again when added")

    def open_dataset_row(self, row_id: int) -> None:
        """Reopen a dataset registered earlier; a folder that vanished is reported, the DB is left alone."""
        rows = {r.id: r for r in self.dataset_rows()}
        row = rows.get(row_id)
        if row is None:
            return
        if not row.exists:
            self.error.emit(
                "Open dataset",
                f"{row.path}: dataset folder not found (moved or deleted since it was added); "
                "add it again from its new place",
            )
            self._set_dataset(None, None)
            return
        self.add_dataset(row.path)

    def _set_dataset(self, ds: Dataset | None, row_id: int | None) -> None:
        if self._stats_worker is not None:
            self._stats_worker.cancel()
        self.dataset, self.dataset_id = ds, row_id
        self.stats, self.plan, self.plan_path, self.target = None, None, None, None
        self.sample_split = {r.id: r.split for r in ds.samples()} if ds is not None else {}
        if ds is not None and self.workspace is not None:
            self.settings.set(f"workspace_dataset/{self.workspace.path}", row_id)
            if self.memory is not None:
                self.memory.set_dataset(ds.root)
            self.log.emit(f"dataset {ds.root} ({ds.format}, {len(self.sample_split)} samples)")
        self.datasetChanged.emit(ds)
        self.statsChanged.emit(None)
        self.planChanged.emit(None)
        if ds is not None:
            self.compute_stats()

    def compute_stats(self) -> Worker | None:
        ds, ws = self.dataset, self.workspace
        if ds is None or ws is None:
            return None
        n = len(self.sample_split)
        workers = 1 if n < SMALL_DATASET else min(4, os.cpu_count() or 1)
        w = create_worker(dataset_stats, ds, None, workspace=ws, workers=workers, skip_bad=True)
        w.returned.connect(lambda st, d=ds: self._set_stats(d, st))
        self._stats_worker = w
        return self.run("Class statistics", w,
                        lambda st: f"{len(st.samples)} samples measured"
                        + (f", {len(st.bad)} bad skipped" if st.bad else ""),
                        kept=lambda: "nothing of this scan (counts are cached only when a scan completes); "
                                     "it runs again on the next launch")

    def _set_stats(self, ds: Dataset, stats: DatasetStats) -> None:
        if ds is not self.dataset:
            return  # a stale scan of a dataset closed meanwhile
        self.stats = stats
        if stats.bad:
            more = f" (and {len(stats.bad) - 1} more)" if len(stats.bad) > 1 else ""
            self.log.emit(f"{len(stats.bad)} bad samples skipped, first: {stats.bad[0].error}")
            n = len(stats.bad)
            self.error.emit("Class statistics", f"{n} bad sample{'s' if n > 1 else ''} left out of the "
                                                f"statistics: {stats.bad[0].error}{more}")
        self.statsChanged.emit(stats)
        self._restore_plan(ds)

    def set_split(self, split: str | None) -> None:
        if split != self.split:
            self.split = split
            self.splitChanged.emit(split)

    def stats_for(self, split: str | None) -> DatasetStats | None:
        if self.stats is None:
            return None
        return split_stats(self.stats, self.sample_split, split)

    def train_stats(self) -> DatasetStats | None:
        """The stats a balance plan works on: the train split when there is one."""
        if self.stats is None:
            return None
        splits = set(self.sample_split.values())
        return self.stats_for("train" if "train" in splits else None)

    # -- plan -------------------------------------------------------------------------
    def set_plan(self, plan) -> None:
        self.plan = plan
        if plan is not None and self.plan_path is not None and self.memory is not None and self.dataset is not None:
            self.memory.set_plan(self.dataset.root, self.plan_path)
        self.planChanged.emit(plan)

    def saved_targets(self) -> tuple[dict[str, float], set[str]]:
        """Targets and locks last set on the open dataset in this workspace (empty when none)."""
        if self.memory is None or self.dataset is None:
            return {}, set()
        return self.memory.targets(self.dataset.root)

    def remember_targets(self, targets: dict[str, float], locks: set[str]) -> None:
        if self.memory is not None and self.dataset is not None:
            self.memory.set_targets(self.dataset.root, targets, locks)

    def _restore_plan(self, ds: Dataset) -> None:
        """The plan last made or loaded on this dataset in this workspace, when it still fits the dataset."""
        if self.memory is None or self.plan is not None:
            return
        path = self.memory.plan(ds.root)
        if path is None or not path.is_file():
            return
        try:
            plan = core_calls.load_plan(path, ds)
        except SegbalanceError as exc:
            self.log.emit(f"last plan not restored: {exc}")
            return
        self.plan_path = path
        self.set_plan(plan)
        self.log.emit(f"restored the last plan: {path.name} ({len(plan.recipes)} recipes)")

    def set_target(self, target: dict[str, float] | None) -> None:
        self.target = target
        self.targetChanged.emit(target)
