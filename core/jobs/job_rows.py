"""Job rows: long work shared by the CLI and the desktop app, followed through the workspace DB.

A job row holds kind, parameters, status (the one vocabulary of core.runs.records.records), progress
(done/total, rate, ETA, heartbeat) and a log, so a GUI or a second CLI can follow a job started
elsewhere and ask it to stop (cancel_requested).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from segbalance.core.errors import SegbalanceError
from segbalance.core.processes import process_alive
from segbalance.core.runs.records import QUEUED, RUNNING, shown_status
from segbalance.db import models as m
from segbalance.db.base import utcnow

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]
LogFn = Callable[[str], None]

# -- the job row -----------------------------------------------------------------------------------
def db_error(exc: OperationalError) -> SegbalanceError:
    """A user-facing one-liner for SQLite's operational errors (lock held too long, read-only media)."""
    msg = str(exc.orig if getattr(exc, "orig", None) else exc)
    if "locked" in msg:
        return SegbalanceError("workspace database is locked by another writer (waited 15 s); "
                               "try again when it is done")
    if "readonly" in msg or "read-only" in msg:
        return SegbalanceError("workspace database is read-only; use a writable workspace")
    return SegbalanceError(f"workspace database error: {msg}")


def _db_call(fn, *a, **kw):
    """Run a DB step; SQLite's lock/read-only failures become clear user errors."""
    try:
        return fn(*a, **kw)
    except OperationalError as exc:
        raise db_error(exc) from None


def create_job(ws, kind: str, params: dict) -> int:
    def go() -> int:
        with ws.session() as s, s.begin():
            job = m.Job(kind=kind, params=params, status=QUEUED)
            s.add(job)
            s.flush()
            return job.id
    return _db_call(go)


def request_cancel(ws, job_id: int) -> None:
    """Ask a job (running here or in another process) to stop at its next clean boundary."""
    def go() -> None:
        with ws.session() as s, s.begin():
            s.execute(update(m.Job).where(m.Job.id == job_id).values(cancel_requested=1))
    _db_call(go)


def job_info(ws, job_id: int) -> dict:
    """Status, progress and the last log lines of a job, as plain data (what a GUI polls)."""
    with ws.session() as s:
        j = s.get(m.Job, job_id)
        if j is None:
            raise SegbalanceError(f"no job #{job_id} in this workspace", ws.path)
        logs = s.scalars(select(m.JobLog).where(m.JobLog.job_id == job_id).order_by(m.JobLog.id.desc())
                         .limit(20)).all()
        return {"id": j.id, "kind": j.kind, "status": _shown(j), "done": j.done, "total": j.total,
                "rate": j.rate, "eta_s": j.eta_s, "message": j.message, "pid": j.pid,
                "params": j.params, "log": [f"{x.level}: {x.text}" for x in reversed(logs)]}


def list_jobs(ws, kind: str | None = None) -> list[dict]:
    with ws.session() as s:
        q = select(m.Job).order_by(m.Job.id)
        if kind:
            q = q.where(m.Job.kind == kind)
        return [{"id": j.id, "kind": j.kind, "status": _shown(j), "done": j.done, "total": j.total,
                 "message": j.message} for j in s.scalars(q)]


def _shown(j: m.Job) -> str:
    """A running job whose process is gone (checked against its last heartbeat) reads "interrupted"."""
    return shown_status(j.status, j.pid, j.heartbeat_at or j.started_at)


def _pid_alive(pid: int | None) -> bool:
    return process_alive(pid)


class JobContext:
    """Progress, log and cancel plumbing of one running job; DB writes are throttled."""

    def __init__(self, ws, job_id: int, progress: Progress | None = None, cancel: CancelCheck | None = None,
                 log: LogFn | None = None, interval: float = 0.5) -> None:
        self.ws = ws
        self.id = job_id
        self._progress = progress
        self._cancel = cancel
        self._log = log
        self.interval = interval
        self._last_db = 0.0
        self._last_cancel_check = 0.0
        self._t0 = time.monotonic()
        self._done0: int | None = None
        self.done = 0
        self.total = 0

    def start(self, total: int, done: int) -> None:
        def go() -> None:
            with self.ws.session() as s, s.begin():
                j = s.get(m.Job, self.id)
                j.status, j.pid, j.total, j.done = RUNNING, os.getpid(), total, done
                j.started_at = j.started_at or utcnow()
                j.heartbeat_at, j.cancel_requested, j.message, j.finished_at = utcnow(), 0, None, None
        _db_call(go)
        self.total, self.done, self._done0 = total, done, done
        self._t0 = time.monotonic()
        if self._progress:
            self._progress(done, total)

    def log(self, text: str, level: str = "info") -> None:
        if self._log:
            self._log(text)

        def go() -> None:
            with self.ws.session() as s, s.begin():
                s.add(m.JobLog(job_id=self.id, level=level, text=text))
        _db_call(go)

    def report(self, done: int, *, force: bool = False) -> None:
        self.done = done
        if self._progress:
            self._progress(done, self.total)
        now = time.monotonic()
        if not force and now - self._last_db < self.interval:
            return
        self._last_db = now
        elapsed = now - self._t0
        n = done - (self._done0 or 0)
        rate = n / elapsed if elapsed > 0 and n > 0 else None
        eta = (self.total - done) / rate if rate else None

        def go() -> None:
            with self.ws.session() as s, s.begin():
                s.execute(update(m.Job).where(m.Job.id == self.id).values(
                    done=done, rate=rate, eta_s=eta, heartbeat_at=utcnow()))
        _db_call(go)

    def stop_requested(self) -> bool:
        """True when the caller's cancel check or the DB flag (another process) asks to stop."""
        if self._cancel and self._cancel():
            return True
        now = time.monotonic()
        if now - self._last_cancel_check < 0.2:
            return False
        self._last_cancel_check = now
        with self.ws.session() as s:
            return bool(s.scalar(select(m.Job.cancel_requested).where(m.Job.id == self.id)))

    def finish(self, status: str, message: str | None = None) -> None:
        def go() -> None:
            with self.ws.session() as s, s.begin():
                s.execute(update(m.Job).where(m.Job.id == self.id).values(
                    status=status, message=message, done=self.done, finished_at=utcnow(), heartbeat_at=utcnow(),
                    eta_s=None))
        _db_call(go)
