"""Generated pairs as the views and the CLI see them: listing, review decisions and what an export takes.

The review rule (unknown ids and failed pairs are refused, nothing changes then) is `decisions.decide`, the
one the CLI's `segbalance review` and the app's gallery both call, so pressing A in the app and `--accept` on
the command line accept exactly the same pairs, with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from segbalance.db import models as m

# The one vocabulary of a generated pair's status; views and commands import these words.
PENDING, ACCEPTED, REJECTED, FAILED = "pending", "accepted", "rejected", "failed"
PAIR_STATUSES = (PENDING, ACCEPTED, REJECTED, FAILED)
REVIEW_STATUSES = (ACCEPTED, REJECTED, PENDING)  # what a reviewer may set (failed is the job's verdict)
# what `segbalance export --include` and `train-seg --extra-status` take (a failed pair has no files to use)
EXPORTABLE_STATUSES = (PENDING, ACCEPTED, REJECTED)
DEFAULT_EXPORT = (PENDING, ACCEPTED)  # the CLI's default --include
REVIEWED_EXPORT = (ACCEPTED,)  # the app's export dialog starts here: what a reviewer vouched for

__all__ = ["PENDING", "ACCEPTED", "REJECTED", "FAILED", "PAIR_STATUSES", "REVIEW_STATUSES", "EXPORTABLE_STATUSES",
           "DEFAULT_EXPORT", "REVIEWED_EXPORT", "PairRecord", "pair_records", "status_counts", "export_counts",
           "list_pairs", "pair_dict"]


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


def status_counts(ws) -> dict[str, int]:
    """Pairs per status over the whole workspace (every status present, 0 when none)."""
    with ws.session() as s:
        rows = s.execute(select(m.GeneratedPair.status, func.count()).group_by(m.GeneratedPair.status)).all()
    out = dict.fromkeys(PAIR_STATUSES, 0)
    out.update({k: int(v) for k, v in rows})
    return out


def export_counts(ws, ds) -> dict[str, int]:
    """Pairs per status that an export of `ds` can include: those of generate jobs run on this dataset's
    content (same fingerprint), the rule `core.export.formats.export_dataset` applies."""
    fp = ds.fingerprint()
    with ws.session() as s:
        jobs = [j.id for j in s.scalars(select(m.Job).where(m.Job.kind == "generate"))
                if (j.params or {}).get("fingerprint") == fp]
        rows = s.execute(select(m.GeneratedPair.status, func.count()).where(m.GeneratedPair.job_id.in_(jobs))
                         .group_by(m.GeneratedPair.status)).all() if jobs else []
    out = dict.fromkeys(PAIR_STATUSES, 0)
    out.update({k: int(v) for k, v in rows})
    return out


# -- pairs: list, review ------------------------------------------------------------------------------
def list_pairs(ws, status: list[str] | None = None, job_id: int | None = None) -> list[dict]:
    with ws.session() as s:
        q = select(m.GeneratedPair).order_by(m.GeneratedPair.id)
        if status:
            q = q.where(m.GeneratedPair.status.in_(status))
        if job_id is not None:
            q = q.where(m.GeneratedPair.job_id == job_id)
        return [pair_dict(r) for r in s.scalars(q)]


def pair_dict(r: m.GeneratedPair) -> dict:
    return {"id": r.id, "job_id": r.job_id, "recipe_index": r.recipe_index, "strategy": r.strategy,
            "classes_added": r.classes_added, "source_samples": r.source_samples, "image": r.image_path,
            "label": r.label_path, "instance": r.instance_path, "image_sha256": r.image_sha256,
            "label_sha256": r.label_sha256, "instance_sha256": r.instance_sha256, "renderer": r.renderer,
            "checkpoint_sha256": r.checkpoint_sha256, "seed": r.seed, "quality": r.quality, "status": r.status,
            "pixel_counts": r.pixel_counts, "created_at": r.created_at.isoformat() if r.created_at else None}


