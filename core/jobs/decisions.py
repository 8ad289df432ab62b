"""Review decisions: what a decision is, who made it, and how one is undone and redone.

A decision sets one review status on one or more pairs at once (a bulk accept is one decision). It goes through
the one review rule, `decide` (unknown ids and failed pairs are refused, nothing changes then), and is
logged in `pair_decision` with the status each pair had before, in the same transaction. Undo deletes the
decision's rows and restores those statuses, so what the log holds is always the decisions in effect, and
"who decided" a pair is read from it: its last logged decision (a person, in the app or on the command line),
or else its job (the quality gate, which rejected it at generation, with the gate's checkpoint and threshold).

`DecisionHistory` is the undo stack a view keeps for its session; it knows nothing of Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, select

from segbalance.core.errors import SegbalanceError
from segbalance.core.jobs.job_rows import _db_call
from segbalance.core.jobs.pairs import FAILED, REVIEW_STATUSES
from segbalance.db import models as m

__all__ = ["Decision", "DecisionHistory", "PairNote", "decide", "undo_decision", "pair_notes", "gate_summary"]

BY_WORDS = {"app": "you, in the app", "cli": "a person, with segbalance review"}


@dataclass
class Decision:
    """One decision as recorded: its batch, the new status, and each pair's status before it."""

    batch: int
    status: str
    before: dict[int, str]

    @property
    def ids(self) -> list[int]:
        return list(self.before)

    def describe(self) -> str:
        n = len(self.before)
        return f"pair #{self.ids[0]} {self.status}" if n == 1 else f"{n} pairs {self.status}"


def decide(ws, ids: list[int], status: str, by: str = "app") -> Decision:
    """Set `status` on the pairs (the review rule applies) and log it; returns the decision, for undo."""
    if status not in REVIEW_STATUSES:
        raise SegbalanceError(f"review status must be accepted, rejected or pending (got {status!r})")
    ids = list(dict.fromkeys(int(i) for i in ids))
    if not ids:
        raise SegbalanceError("no pair to decide on")

    def go() -> Decision:
        with ws.session() as s, s.begin():
            rows = {r.id: r for r in s.scalars(select(m.GeneratedPair).where(m.GeneratedPair.id.in_(ids)))}
            missing = [i for i in ids if i not in rows]
            if missing:
                raise SegbalanceError(f"no pair with id {', '.join(map(str, missing))} in this workspace", ws.path)
            bad = [i for i in ids if rows[i].status == FAILED]
            if bad:
                raise SegbalanceError(f"pair {', '.join(map(str, bad))} failed (files missing); re-run its job")
            batch = int(s.scalar(select(func.coalesce(func.max(m.PairDecision.batch), 0))) or 0) + 1
            before = {i: rows[i].status for i in ids}
            for i in ids:
                rows[i].status = status
                s.add(m.PairDecision(pair_id=i, batch=batch, before=before[i], after=status, by=by))
            return Decision(batch, status, before)
    return _db_call(go)


def undo_decision(ws, decision: Decision) -> None:
    """Restore the statuses the decision replaced and drop its log rows (a failed pair stays failed)."""
    def go() -> None:
        with ws.session() as s, s.begin():
            rows = {r.id: r for r in s.scalars(select(m.GeneratedPair)
                                               .where(m.GeneratedPair.id.in_(decision.ids)))}
            for i, old in decision.before.items():
                r = rows.get(i)
                if r is not None and r.status != FAILED:
                    r.status = old
            s.execute(delete(m.PairDecision).where(m.PairDecision.batch == decision.batch))
    _db_call(go)


@dataclass
class DecisionHistory:
    """The undo/redo stack of one review session: undo takes back the last decision made, whichever pair is
    selected now; a new decision clears what could be redone."""

    ws: object
    done: list[Decision] = field(default_factory=list)
    undone: list[Decision] = field(default_factory=list)

    def decide(self, ids: list[int], status: str) -> Decision:
        d = decide(self.ws, ids, status, by="app")
        self.done.append(d)
        self.undone.clear()
        return d

    def undo(self) -> Decision | None:
        """Take back the last decision; None when there is nothing to undo."""
        if not self.done:
            return None
        d = self.done.pop()
        undo_decision(self.ws, d)
        self.undone.append(d)
        return d

    def redo(self) -> Decision | None:
        """Make the last undone decision again (a new batch); None when there is nothing to redo."""
        if not self.undone:
            return None
        old = self.undone.pop()
        d = decide(self.ws, old.ids, old.status, by="app")
        self.done.append(d)
        return d


# -- who decided, and what the quality says --------------------------------------------------------
@dataclass
class PairNote:
    """What the review pane says about a pair's status and score."""

    decided_by: str
    quality: str
    job_id: int


def _gate(params: dict) -> tuple[float | None, str | None]:
    thr = params.get("min_quality")
    return (float(thr) if thr is not None else None), params.get("quality_checkpoint")


def pair_notes(ws) -> dict[int, PairNote]:
    """For every pair: who decided its status (a person, the quality gate with its threshold and checkpoint, or
    nobody yet) and what its quality score means (scored, or why not)."""
    def go() -> dict[int, PairNote]:
        with ws.session() as s:
            jobs = {j.id: (j.params or {}) for j in s.scalars(select(m.Job).where(m.Job.kind == "generate"))}
            last: dict[int, tuple[str, object]] = {}
            for d in s.scalars(select(m.PairDecision).order_by(m.PairDecision.id)):
                last[d.pair_id] = (d.by, d.created_at)
            rows = s.execute(select(m.GeneratedPair.id, m.GeneratedPair.job_id, m.GeneratedPair.status,
                                    m.GeneratedPair.quality)).all()
        out = {}
        for pid, job_id, status, quality in rows:
            thr, ckpt = _gate(jobs.get(job_id, {}))
            where = f" ({Path(ckpt).parent.name or Path(ckpt).name})" if ckpt else ""
            if quality is not None:
                q = f"{quality:.3f} (label-to-image agreement of the segmentation model{where})"
            elif thr is None:
                q = f"not scored (job {job_id} ran with the quality gate off)"
            else:
                q = "not scored"
            if pid in last:
                by, when = last[pid]
                who = f"{BY_WORDS.get(by, by)}" + (f", {when:%Y-%m-%d %H:%M} UTC" if when else "")
            elif status == "rejected" and thr is not None and quality is not None and quality < thr:
                who = f"the quality gate at {thr:.2f}{where}: score {quality:.2f} is below it"
            elif status == "pending":
                who = "nobody yet"
            elif status == FAILED:
                who = f"job {job_id} (its files are missing)"
            else:
                who = "a person (before decisions were logged)"
            out[pid] = PairNote(who, q, job_id)
        return out
    return _db_call(go)


def gate_summary(new: int, rejected: int, threshold: float | None) -> str | None:
    """The line a finished gated job deserves, e.g. "50 of 50 rejected by the gate at 0.30"; None when the
    gate was off."""
    if threshold is None:
        return None
    line = f"{rejected} of {new} new pairs rejected by the quality gate at {threshold:.2f}"
    if new and rejected == new:
        line += " (all of them: the segmentation model may be too weak to judge; review them or lower the gate)"
    return line
