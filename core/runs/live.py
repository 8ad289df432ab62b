"""Training runs as the views see them: live progress from the run's Job row, and the end of a run whose
process is gone. The panel never writes a status itself: the words come from the engine."""

from __future__ import annotations

from dataclasses import dataclass

from segbalance.core.runs.records import CANCELLED, FAILED, RUNNING
from segbalance.db import models as m
from segbalance.db.base import utcnow


@dataclass(frozen=True)
class RunProgress:
    done: int
    total: int
    rate: float | None
    eta_s: float | None

    def text(self) -> str:
        out = f"running: iteration {self.done}/{self.total}"
        if self.rate:
            out += f" · {self.rate:.2f} it/s"
        if self.eta_s is not None:
            mins, secs = divmod(int(self.eta_s), 60)
            out += f" · ETA {mins}m{secs:02d}s"
        return out


def run_progress(ws, run_id: int) -> RunProgress | None:
    """Iteration, speed and ETA of a run, from its Job row (None while the run has not counted yet)."""
    with ws.session() as s:
        run = s.get(m.TrainingRun, run_id)
        job = s.get(m.Job, run.job_id) if run is not None and run.job_id else None
        if job is None or not job.total:
            return None
        return RunProgress(int(job.done or 0), int(job.total), job.rate, job.eta_s)


def end_orphan_run(ws, run_id: int | None, outcome: str) -> str | None:
    """A run whose process ended while its row still says running gets its real end status.

    `outcome` is "stopped" or CANCELLED (the user stopped it: the run ends cancelled, as train-seg writes) or
    FAILED (it crashed); returns the status written, None when the row had already ended (the run wrote its own
    status)."""
    if run_id is None:
        return None
    status = {"stopped": CANCELLED, CANCELLED: CANCELLED, FAILED: FAILED}[outcome]
    with ws.session() as s, s.begin():
        r = s.get(m.TrainingRun, run_id)
        if r is None or r.status != RUNNING:
            return None
        r.status, r.finished_at = status, utcnow()
        return status
