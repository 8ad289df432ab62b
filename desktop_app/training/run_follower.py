"""Follow a training subprocess through its DB rows without touching the DB on the UI thread.

A `RunFollower` polls `core.runs.follow.poll_run` on a worker (one poll in flight at a time) and reports on the
UI thread: the run found for the output folder, its progress and ETA from its Job row, and (for the training
panel) new metric points and the run list. train-seg and train-gan are followed the same way.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from segbalance.core.runs.follow import RunPoll, poll_run
from segbalance.core.runs.queries import Series
from segbalance.desktop_app.workers import Worker, create_worker

POLL_MS = 1000


class RunFollower(QObject):
    """Polls one run (by output folder, or a run id) and, optionally, a metric series and the run list."""

    polled = Signal(object)  # RunPoll
    progress = Signal(int, int, float)  # done, total, eta seconds (-1 when not known yet)

    def __init__(self, workspace, parent: QObject | None = None, *, poll_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.out_dir: str | None = None
        self.kind = "seg"
        self.run_id: int | None = None
        self.series: Series | None = None
        self.with_runs = False
        self.worker: Worker | None = None
        self.last_progress = None  # the RunProgress of the last poll that had one
        self.timer = QTimer(self, interval=poll_ms)
        self.timer.timeout.connect(self.poll)

    def follow(self, out_dir: str | Path | None, kind: str = "seg") -> None:
        """Start following the run that writes to out_dir (its rows appear once the subprocess starts)."""
        self.out_dir, self.kind, self.run_id = (str(out_dir) if out_dir else None), kind, None
        self.timer.start()

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def busy(self) -> bool:
        return self.worker is not None and not self.worker.done.is_set()

    def poll(self) -> Worker | None:
        """One poll on a worker; skipped while the previous one is still reading."""
        if self.busy() or self.workspace is None:
            return None
        w = create_worker(poll_run, self.workspace, self.out_dir, self.kind, self.run_id, self.series,
                          self.with_runs)
        w.returned.connect(self._polled)
        self.worker = w.start()
        return w

    def poll_now(self) -> RunPoll:
        """A poll on the calling thread, after any in flight (a run's end, tests): once, never on a timer."""
        if self.worker is not None:
            self.worker.done.wait(10)
        res = poll_run(self.workspace, self.out_dir, self.kind, self.run_id, self.series, self.with_runs)
        self._polled(res)
        return res

    def _polled(self, res: RunPoll) -> None:
        if res.run_id is not None and self.out_dir:
            self.run_id = res.run_id
        if res.progress is not None:
            self.last_progress = res.progress
            eta = res.progress.eta_s
            self.progress.emit(res.progress.done, res.progress.total, -1.0 if eta is None else float(eta))
        self.polled.emit(res)
