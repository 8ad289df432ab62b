"""What a view follows of a training run started as a subprocess: one read of the DB per poll (meant for a
worker thread, never the UI thread), how to resume a stopped run, and what a stop keeps.

A run is found by its output folder (the subprocess creates its TrainingRun and Job rows); its progress, speed
and ETA come from its Job row, which train-seg and train-gan keep current.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from segbalance.core.errors import SegbalanceError
from segbalance.core.runs.live import RunProgress, run_progress
from segbalance.core.runs.queries import RunSummary, Series, find_run, list_runs, read_new_points
from segbalance.db import models as m

RESUMABLE = ("cancelled", "interrupted", "failed")  # a run that stopped before its end and may have a checkpoint
CHECKPOINTS = {"seg": ("checkpoint.pt",), "gan": ("ckpt.pt",)}


@dataclass
class RunPoll:
    """One poll's answer: the run found for the folder, its new metric points, its progress, and the run list."""

    run_id: int | None
    new_points: int = 0
    progress: RunProgress | None = None
    runs: list[RunSummary] | None = None
    status: str | None = None


def poll_run(ws, out_dir: str | Path | None, kind: str = "seg", run_id: int | None = None,
             series: Series | None = None, with_runs: bool = False) -> RunPoll:
    """Everything a training view shows, read in one go: call it off the UI thread. `series` (when given) is
    grown with the points written since the last poll."""
    if run_id is None and out_dir:
        run_id = find_run(ws, out_dir, kind)
    out = RunPoll(run_id)
    if series is not None:
        out.new_points = read_new_points(ws, series)
    if run_id is not None:
        out.progress = run_progress(ws, run_id)
        with ws.session() as s:
            r = s.get(m.TrainingRun, run_id)
            out.status = r.status if r is not None else None
    if with_runs:
        out.runs = list_runs(ws, kind=None)
    return out


def checkpoint_of(kind: str, out_dir: str | Path) -> Path | None:
    """The run's training checkpoint (the file --resume continues from), when it exists."""
    for name in CHECKPOINTS.get(kind, ()):
        p = Path(out_dir) / name
        if p.is_file():
            return p
    return None


@dataclass
class ResumeCommand:
    program: str
    args: list[str] = field(default_factory=list)
    out_dir: str = ""


def resume_command(ws, run: RunSummary, device: str | None = None) -> ResumeCommand:
    """The subprocess that continues a stopped run exactly where its checkpoint left it (train-seg or
    train-gan with --resume: the recipe comes from the checkpoint); SegbalanceError says why it cannot."""
    if run.status not in RESUMABLE:
        raise SegbalanceError(f"run {run.id} is {run.status}; only a cancelled, interrupted or failed run resumes")
    ckpt = checkpoint_of(run.kind, run.out_dir)
    if ckpt is None:
        raise SegbalanceError(f"run {run.id} left no checkpoint to resume from", run.out_dir)
    dataset = (run.config or {}).get("dataset")
    if not dataset:
        raise SegbalanceError(f"run {run.id} does not name its dataset; resume it with the CLI's --resume", ckpt)
    if not Path(dataset).is_dir():
        raise SegbalanceError(f"{dataset}: the run's dataset folder is gone")
    command = {"seg": "train-seg", "gan": "train-gan"}[run.kind]
    args = ["-m", "segbalance.core.cli", command, str(dataset), "--workspace", str(ws.path), "--out",
            str(run.out_dir), "--resume"]
    if device:
        args += ["--device", device]
    return ResumeCommand(sys.executable, args, str(run.out_dir))


def kept_on_stop(kind: str, out_dir: str | Path, progress: RunProgress | None = None,
                 now: float | None = None) -> str:
    """What a stop keeps of a run, in words for the quit dialog: its checkpoint's age, and that the run saves
    once more as it stops (both trainers do on SIGTERM)."""
    now = time.time() if now is None else now
    parts = [f"at iteration {progress.done} of {progress.total}"] if progress is not None else []
    ckpt = checkpoint_of(kind, out_dir)
    if ckpt is None:
        parts.append("no checkpoint saved yet")
    else:
        age = max(0, int(now - ckpt.stat().st_mtime))
        parts.append(f"its checkpoint was saved {age // 60} min {age % 60:02d} s ago")
    return ("; ".join(parts) + '; it saves again as it stops (within a step) and ends "cancelled"; '
            "Resume in the Training tab continues it")
