"""Runs and jobs as the DB records them: one status vocabulary, what a reader shows of a row whose writer is
gone, the TrainingRun + Job rows of a training run, and the lock that gives a run folder to one live run.

Torch-free on purpose: `segbalance jobs` and the desktop app import it without loading torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.processes import process_alive, sweep_temp_files

# One vocabulary for Job.status and TrainingRun.status. "interrupted": the row says running but the process
# that wrote it is gone (kill -9, power loss). Readers show it (shown_status); the row itself keeps
# "running" until a run resumes it, so a read-only command never writes. The check is by pid on this host:
# a job running on another machine that shares the workspace folder would read as interrupted here.
QUEUED, RUNNING, DONE = "queued", "running", "done"
CANCELLED, FAILED, INTERRUPTED = "cancelled", "failed", "interrupted"
STATUSES = (QUEUED, RUNNING, DONE, CANCELLED, FAILED, INTERRUPTED)
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, CANCELLED, FAILED, INTERRUPTED)
LOCK_NAME = ".segbalance-run.lock"
NOISY_METRIC = "noisy_ignored"  # seg metric point: fraction of generated pixels ignored so far (per class in extra)


def shown_status(status: str, pid: int | None, written_at: datetime | None) -> str:
    """The status a reader shows: a running row whose process is gone is interrupted (a row without a pid
    names no process to check, and keeps its word)."""
    if status == RUNNING and pid and not process_alive(pid, written_at):
        return INTERRUPTED
    return status


# -- one run folder, one live run ----------------------------------------------------------------------
class RunFolder:
    """Holds a run folder for the live process (an flock on LOCK_NAME, released by the OS when the process
    dies, so kill -9 leaves no stale lock); a second run into the same folder is refused. When the run fails
    before its first checkpoint, the files it made (and the folder, if it made it) are removed again."""

    def __init__(self, path: str | Path, checkpoint_name: str, command: str) -> None:
        self.path = Path(path).resolve()
        self.checkpoint = self.path / checkpoint_name
        self.command = command
        self._fd: int | None = None
        self._made_dir = False
        self._had: set[str] = set()

    def acquire(self) -> RunFolder:
        if self.path.exists() and not self.path.is_dir():
            raise SegbalanceError("--out is a file, not a folder", self.path)
        self._made_dir = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._had = {p.name for p in self.path.iterdir()}
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SegbalanceError(f"cannot use the run folder ({exc.strerror})", self.path) from None
        holder = _lock(fd)
        if holder is not None:
            os.close(fd)
            self._cleanup_dir_only()
            raise SegbalanceError(f"run folder is in use by another run ({holder}); wait for it to end or "
                                  "choose another --out", self.path)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": self.command, "since": time.time()}).encode())
        self._fd = fd
        sweep_temp_files(self.path)  # checkpoints half-written by a run that was killed
        return self

    def release(self, failed: bool) -> None:
        """Unlock; a run that failed before its first checkpoint leaves nothing it made behind."""
        if failed and not self.checkpoint.exists():
            for p in self.path.iterdir():
                if p.name not in self._had and p.name != LOCK_NAME and p.is_file():
                    p.unlink(missing_ok=True)
        if self._fd is not None:
            if failed and not self.checkpoint.exists() and LOCK_NAME not in self._had:
                (self.path / LOCK_NAME).unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
        if failed and not self.checkpoint.exists():
            self._cleanup_dir_only()

    def _cleanup_dir_only(self) -> None:
        if self._made_dir:
            try:
                self.path.rmdir()  # only when empty
            except OSError:
                pass

    def __enter__(self) -> RunFolder:
        return self.acquire()

    def __exit__(self, exc_type, *_: object) -> None:
        self.release(failed=exc_type is not None)


def _lock(fd: int) -> str | None:
    """Take the lock; None on success, else a description of the holder."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: a pid file checked for liveness
        return _pid_file_lock(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info.get('pid')}, {info.get('command', 'a training command')}"
        except (OSError, ValueError):
            return "another process"
    return None


def _pid_file_lock(fd: int) -> str | None:  # pragma: no cover - only where fcntl is missing
    try:
        info = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        info = {}
    pid = info.get("pid")
    if pid and pid != os.getpid() and process_alive(int(pid)):
        return f"pid {pid}"
    return None


# -- the rows of one training run ----------------------------------------------------------------------
@dataclass
class RunEnd:
    """How a run ended, for RunRecord.lifetime: the body sets status/result/message on its way out; an exception
    sets them itself."""

    status: str = FAILED
    result: dict | None = None
    message: str | None = None


class RunRecord:
    """TrainingRun + Job rows of a training run, written by rank 0 only: metric points buffered and written
    with the job's progress in one transaction, notes as JobLog lines, cancellation read from the job row
    (`segbalance jobs N --cancel` and the app stop a GAN run and a segmentation run the same way)."""

    def __init__(self, ws, kind: str, out_dir: str | Path, *, name: str, config: dict, total: int,
                 master: bool = True, resume_from: int | None = None, echo=None) -> None:
        self.ws = ws if master else None
        self.kind, self.out_dir = kind, str(Path(out_dir).resolve())
        self.name, self.config, self.total, self.resume_from = name, config, total, resume_from
        self.run_id: int | None = None
        self.job_id: int | None = None
        self.pending: list[dict] = []
        self.notes: list[str] = []
        self._echo = echo  # called with each note (stdout JSON, a warning line)
        self._last_cancel_check = 0.0

    def open(self) -> RunRecord:
        if self.ws is None:
            return self
        from sqlalchemy import delete, select

        from segbalance.db import models as m
        from segbalance.db.base import utcnow

        with self.ws.session() as s, s.begin():
            row = None
            if self.resume_from is not None:
                row = s.scalar(select(m.TrainingRun).where(m.TrainingRun.out_dir == self.out_dir,
                                                           m.TrainingRun.kind == self.kind)
                               .order_by(m.TrainingRun.id.desc()))
            job = s.get(m.Job, row.job_id) if row is not None and row.job_id else None
            if job is None:
                job = m.Job(kind=f"train-{self.kind}", params=self.config, total=self.total)
                s.add(job)
            job.status, job.pid, job.total = RUNNING, os.getpid(), self.total
            job.started_at = job.heartbeat_at = utcnow()
            job.done = self.resume_from or 0
            job.cancel_requested, job.finished_at, job.message = 0, None, None
            s.flush()
            if row is None:
                row = m.TrainingRun(kind=self.kind, name=self.name, out_dir=self.out_dir, config=self.config)
                s.add(row)
                s.flush()
            else:  # exact resume: the curve continues from the checkpoint without a duplicate tail
                s.execute(delete(m.MetricPoint).where(m.MetricPoint.run_id == row.id,
                                                      m.MetricPoint.iteration > self.resume_from))
            row.status, row.pid, row.job_id, row.finished_at = RUNNING, os.getpid(), job.id, None
            row.config = self.config
            self.run_id, self.job_id = row.id, job.id
        return self

    def note(self, text: str, level: str = "info") -> None:
        """A human-readable line for the run's log (JobLog, and the echo callback)."""
        self.notes.append(text)
        if self._echo is not None:
            self._echo(text)
        if self.ws is not None:
            from segbalance.db import models as m

            with self.ws.session() as s, s.begin():
                s.add(m.JobLog(job_id=self.job_id, level=level, text=text))

    def metric(self, iteration: int, name: str, value: float | None, extra: dict | None = None) -> None:
        self.pending.append({"iteration": iteration, "name": name, "value": value, "extra": extra})

    def flush(self, done: int, rate: float | None = None) -> None:
        """Write buffered metric points and the job's progress in one transaction."""
        if self.ws is None:
            self.pending.clear()
            return
        from segbalance.db import models as m
        from segbalance.db.base import utcnow

        with self.ws.session() as s, s.begin():
            for p in self.pending:
                s.add(m.MetricPoint(run_id=self.run_id, **p))
            job = s.get(m.Job, self.job_id)
            job.done, job.total, job.heartbeat_at = done, self.total, utcnow()
            job.rate = rate
            job.eta_s = (self.total - done) / rate if rate else None
        self.pending.clear()

    def cancel_requested(self) -> bool:
        """The job row's cancel flag (set by `segbalance jobs N --cancel` or the app); read at most 5x/s."""
        if self.ws is None:
            return False
        now = time.monotonic()
        if now - self._last_cancel_check < 0.2:
            return False
        self._last_cancel_check = now
        from sqlalchemy import select

        from segbalance.db import models as m

        with self.ws.session() as s:
            return bool(s.scalar(select(m.Job.cancel_requested).where(m.Job.id == self.job_id)))

    def finish(self, status: str, result: dict | None = None, message: str | None = None) -> None:
        if self.ws is None or self.run_id is None:
            return
        if status not in FINISHED:
            raise ValueError(f"not a final status: {status!r}")
        from segbalance.db import models as m
        from segbalance.db.base import utcnow

        self.pending.clear()
        with self.ws.session() as s, s.begin():
            row = s.get(m.TrainingRun, self.run_id)
            row.status, row.finished_at = status, utcnow()  # pid kept: which process ran it
            if result is not None:
                row.result = result
            job = s.get(m.Job, self.job_id)
            job.status, job.finished_at, job.message, job.eta_s = status, utcnow(), message, None
            if message:
                s.add(m.JobLog(job_id=self.job_id, level="error" if status == FAILED else "info", text=message))

    @contextlib.contextmanager
    def lifetime(self, end: RunEnd | None = None) -> Iterator[RunEnd]:
        """The one way a training run opens and ends its rows (train-seg and train-gan alike): open() now, and
        finish() exactly once however the body leaves: as it set the yielded RunEnd; "cancelled" on Cancelled or
        Ctrl+C; "failed" with the error's one line on any other error, whose DB write never hides that error."""
        end = end if end is not None else RunEnd()
        self.open()
        try:
            yield end
        except (Cancelled, KeyboardInterrupt) as exc:
            end.status = CANCELLED
            end.message = end.message or ("interrupted" if isinstance(exc, KeyboardInterrupt) else "cancelled")
            self._finish_quietly(end)
            raise
        except BaseException as exc:
            end.status = FAILED
            end.message = str(exc) if isinstance(exc, SegbalanceError) else f"{type(exc).__name__}: {exc}"
            self._finish_quietly(end)
            raise
        self.finish(end.status, end.result, end.message)

    def _finish_quietly(self, end: RunEnd) -> None:
        try:
            self.finish(end.status, end.result, end.message)
        except Exception as exc:  # noqa: BLE001 - never hide the original error behind a DB one
            print(f"warning: could not record the run's end: {exc}", file=sys.stderr)


__all__ = ["QUEUED", "RUNNING", "DONE", "CANCELLED", "FAILED", "INTERRUPTED", "STATUSES", "ACTIVE", "FINISHED",
           "shown_status", "RunFolder", "RunRecord", "RunEnd"]
