"""Generated pairs as the views and the CLI see them: listing, review decisions and what an export takes.

The review rule (unknown ids and failed pairs are refused, nothing changes then) is `core.jobs.review_pairs`,
the one the CLI's `segbalance review` calls; the gallery calls it through `review` here, so pressing A in
the app and `--accept` on the command line accept exactly the same pairs, with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from segbalance.core.jobs import PAIR_STATUSES, review_pairs
from segbalance.db import models as m

REVIEW_STATUSES = ("accepted", "rejected", "pending")  # what a reviewer may set (failed is the job's verdict)
EXPORTABLE_STATUSES = ("pending", "accepted", "rejected")  # what `segbalance export --include` takes
DEFAULT_EXPORT = ("pending", "accepted")  # the CLI's default --include
REVIEWED_EXPORT = ("accepted",)  # the app's export dialog starts here: what a reviewer vouched for

__all__ = ["PAIR_STATUSES", "REVIEW_STATUSES", "EXPORTABLE_STATUSES", "DEFAULT_EXPORT", "REVIEWED_EXPORT", "PairRecord",
           "pair_records", "review", "status_counts", "export_counts"]


@dataclass
class PairRecord:
    """One generated pair with absolute file paths (for showing it) and what the DB says about it."""

    id: int
    job_id: int
    strategy: str
    status: str
    quality: float | None
    classes_added: list[str]
    source_samples: list[str]
    renderer: str
    image_path: Path
    label_path: Path
    seed: int | None = None
    key: str | None = field(default=None, compare=False)  # the view's thumbnail cache key

    def caption(self) -> str:
        q = f" · q {self.quality:.2f}" if self.quality is not None else ""
        return f"#{self.id} {self.strategy}{q} · {self.status}"


def pair_records(ws, status: list[str] | None = None) -> list[PairRecord]:
    """All pairs of the workspace (or those with one of `status`), oldest first."""
    with ws.session() as s:
        q = select(m.GeneratedPair).order_by(m.GeneratedPair.id)
        if status:
            q = q.where(m.GeneratedPair.status.in_(status))
        return [PairRecord(r.id, r.job_id, r.strategy, r.status, r.quality, list(r.classes_added or []),
                           [str(x) for x in (r.source_samples or [])], r.renderer, ws.abs(r.image_path),
                           ws.abs(r.label_path), r.seed)
                for r in s.scalars(q)]


def review(ws, ids: list[int], status: str) -> int:
    """Record a reviewer's decision: the CLI's rule (see module doc); returns how many pairs changed."""
    return review_pairs(ws, list(ids), status)


def status_counts(ws) -> dict[str, int]:
    """Pairs per status over the whole workspace (every status present, 0 when none)."""
    with ws.session() as s:
        rows = s.execute(select(m.GeneratedPair.status, func.count()).group_by(m.GeneratedPair.status)).all()
    out = dict.fromkeys(PAIR_STATUSES, 0)
    out.update({k: int(v) for k, v in rows})
    return out


def export_counts(ws, ds) -> dict[str, int]:
    """Pairs per status that an export of `ds` can include: those of generate jobs run on this dataset's
    content (same fingerprint), the rule `core.export.export_dataset` applies."""
    fp = ds.fingerprint()
    with ws.session() as s:
        jobs = [j.id for j in s.scalars(select(m.Job).where(m.Job.kind == "generate"))
                if (j.params or {}).get("fingerprint") == fp]
        rows = s.execute(select(m.GeneratedPair.status, func.count()).where(m.GeneratedPair.job_id.in_(jobs))
                         .group_by(m.GeneratedPair.status)).all() if jobs else []
    out = dict.fromkeys(PAIR_STATUSES, 0)
    out.update({k: int(v) for k, v in rows})
    return out
