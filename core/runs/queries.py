"""Training runs as the views read them: run lists, metric series, per-class IoU, comparisons, rare classes,
and the `train-seg` command line for a run configured in the app. Reads the workspace DB only."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from segbalance.core.datasets.labels import LabelSet
from segbalance.core.runs.records import NOISY_METRIC, shown_status
from segbalance.core.workspace import Workspace
from segbalance.db import models as m


@dataclass
class SegRunRequest:
    """What the training panel asks `segbalance train-seg` to do."""

    dataset: str
    workspace: str
    out_dir: str
    name: str | None = None
    use_pairs: bool = False
    pair_statuses: tuple[str, ...] = ("accepted",)
    sampler: str = "uniform"  # uniform | rare-class
    noisy_factor: float = 0.0  # > 0: train-seg --noisy-filter FACTOR (with generated pairs)
    backbone: str = "resnet50"
    iters: int = 1000
    batch: int = 8
    crop: str = "256x512"
    eval_interval: int = 0
    log_interval: int = 10
    device: str = "auto"
    extra_args: list[str] = field(default_factory=list)

    def cli_args(self) -> list[str]:
        """Arguments after `python -m core.cli` (the same as after `segbalance`)."""
        args = [
            "train-seg", self.dataset,
            "--workspace", self.workspace,
            "--out", self.out_dir,
            "--sampler", self.sampler,
            "--backbone", self.backbone,
            "--iters", str(self.iters),
            "--batch", str(self.batch),
            "--crop", self.crop,
            "--eval-interval", str(self.eval_interval),
            "--log-interval", str(self.log_interval),
            "--device", self.device,
        ]  # fmt: skip
        if self.name:
            args += ["--name", self.name]
        if self.use_pairs:
            args += ["--extra", "pairs", "--extra-status", ",".join(self.pair_statuses) or "accepted"]
            if self.noisy_factor > 0:
                args += ["--noisy-filter", f"{self.noisy_factor:g}"]
        return args + list(self.extra_args)

    def command(self) -> tuple[str, list[str]]:
        """(program, arguments) of the subprocess."""
        return sys.executable, ["-m", "segbalance.core.cli", *self.cli_args()]


@dataclass(frozen=True)
class RunSummary:
    id: int
    name: str
    kind: str
    status: str
    out_dir: str
    iteration: int  # last logged iteration
    miou: float | None  # last val mIoU
    best_miou: float | None
    config: dict


def list_runs(ws: Workspace, kind: str | None = "seg") -> list[RunSummary]:
    """Runs newest first, with their last iteration and val mIoU."""
    with ws.session() as s:
        q = select(m.TrainingRun).order_by(m.TrainingRun.id.desc())
        if kind:
            q = q.where(m.TrainingRun.kind == kind)
        runs = list(s.scalars(q))
        last_it: dict = dict(
            s.execute(select(m.MetricPoint.run_id, func.max(m.MetricPoint.iteration)).group_by(m.MetricPoint.run_id))
            .all()
        )
        best: dict = dict(
            s.execute(
                select(m.MetricPoint.run_id, func.max(m.MetricPoint.value))
                .where(m.MetricPoint.name == "val_miou")
                .group_by(m.MetricPoint.run_id)
            )
            .all()
        )
        out = []
        for r in runs:
            last = s.scalar(
                select(m.MetricPoint.value)
                .where(m.MetricPoint.run_id == r.id, m.MetricPoint.name == "val_miou")
                .order_by(m.MetricPoint.iteration.desc(), m.MetricPoint.id.desc())
                .limit(1)
            )
            if last is None and r.result:
                last = r.result.get("miou")
            out.append(
                RunSummary(
                    id=r.id, name=r.name, kind=r.kind, status=_shown(s, r), out_dir=r.out_dir,
                    iteration=int(last_it.get(r.id) or 0), miou=last, best_miou=best.get(r.id, last),
                    config=r.config or {},
                )  # fmt: skip
            )
        return out


def _shown(s, r: m.TrainingRun) -> str:
    """The run's status as readers show it: "running" whose process is gone reads "interrupted"."""
    if r.status != "running":
        return r.status
    job = s.get(m.Job, r.job_id) if r.job_id else None
    written = (job.heartbeat_at or job.started_at) if job is not None else r.created_at
    return shown_status(r.status, r.pid, written)


def find_run(ws: Workspace, out_dir: str | Path, kind: str = "seg") -> int | None:
    """Newest run writing to `out_dir` (how the panel finds the run its subprocess created)."""
    out = str(Path(out_dir).resolve())
    with ws.session() as s:
        return s.scalar(
            select(m.TrainingRun.id)
            .where(m.TrainingRun.out_dir == out, m.TrainingRun.kind == kind)
            .order_by(m.TrainingRun.id.desc())
            .limit(1)
        )


@dataclass
class Series:
    """Metric points of one run read so far, grown incrementally by `read_new_points`."""

    run_id: int
    last_id: int = 0
    points: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    per_class: dict[str, float | None] = field(default_factory=dict)  # latest val per-class IoU
    per_class_iteration: int | None = None
    ignored_per_class: dict[str, float | None] = field(default_factory=dict)  # noisy-pixel filter, so far


def read_new_points(ws: Workspace, series: Series) -> int:
    """Append the run's metric points written since the last call; returns how many arrived."""
    with ws.session() as s:
        rows = s.execute(
            select(m.MetricPoint.id, m.MetricPoint.name, m.MetricPoint.iteration, m.MetricPoint.value,
                   m.MetricPoint.extra)
            .where(m.MetricPoint.run_id == series.run_id, m.MetricPoint.id > series.last_id)
            .order_by(m.MetricPoint.id)
        ).all()  # fmt: skip
    for pid, name, it, value, extra in rows:
        series.last_id = max(series.last_id, pid)
        if value is not None and math.isfinite(value):
            xs, ys = series.points.setdefault(name, ([], []))
            xs.append(int(it))
            ys.append(float(value))
        if name == "val_miou" and extra:
            pc = per_class_of(extra)
            if pc and (series.per_class_iteration is None or it >= series.per_class_iteration):
                series.per_class, series.per_class_iteration = pc, int(it)
        elif name == NOISY_METRIC and extra:
            series.ignored_per_class = per_class_of(extra)  # cumulative: the latest point is the run's total
    return len(rows)


def per_class_of(extra: dict | None) -> dict[str, float | None]:
    """Per-class IoU from a val_miou point's extra ({"per_class": {...}} or a flat {class: iou})."""
    if not extra:
        return {}
    pc = extra.get("per_class", extra) if isinstance(extra, dict) else {}
    out: dict[str, float | None] = {}
    for k, v in pc.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v) if math.isfinite(v) else None
        elif v is None:
            out[str(k)] = None
    return out


def final_per_class(ws: Workspace, run_id: int) -> dict[str, float | None]:
    """Per-class IoU of a run: its result if finished, else its latest validation."""
    with ws.session() as s:
        r = s.get(m.TrainingRun, run_id)
        if r is not None and r.result and r.result.get("per_class"):
            return per_class_of({"per_class": r.result["per_class"]})
        extra = s.scalar(
            select(m.MetricPoint.extra)
            .where(m.MetricPoint.run_id == run_id, m.MetricPoint.name == "val_miou")
            .order_by(m.MetricPoint.iteration.desc(), m.MetricPoint.id.desc())
            .limit(1)
        )
    return per_class_of(extra)


@dataclass(frozen=True)
class ClassDelta:
    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


def compare_runs(ws: Workspace, run_a: int, run_b: int) -> list[ClassDelta]:
    """Per-class IoU of two runs side by side (B - A), in A's class order then B's extra classes."""
    a, b = final_per_class(ws, run_a), final_per_class(ws, run_b)
    names = list(a) + [n for n in b if n not in a]
    return [ClassDelta(n, a.get(n), b.get(n)) for n in names]


def train_class_shares(ws: Workspace, dataset_path: str | Path, label_set: LabelSet, split: str = "train") -> dict:
    """Share of labelled pixels per train class name, from the workspace's cached per-sample stats
    (empty when `segbalance stats` has not been run on that dataset)."""
    roots = [str(Path(dataset_path).resolve()), ws.stored_path(dataset_path)]
    with ws.session() as s:
        rows = s.scalars(
            select(m.SampleStats.counts)
            .join(m.Sample, m.Sample.id == m.SampleStats.sample_id)
            .join(m.Dataset, m.Dataset.id == m.Sample.dataset_id)
            .where(m.Dataset.path.in_(roots), m.Sample.split == split)
        ).all()
    if not rows:
        return {}
    counts = np.zeros(256, np.int64)
    for c in rows:
        for k, v in (c or {}).items():
            counts[int(k)] += int(v)
    lut = label_set.id_to_train_lut
    per_train = np.bincount(lut, weights=counts, minlength=256)[:255]
    total = per_train.sum()
    if total <= 0:
        return {}
    return {c.name: float(per_train[c.train_id] / total) for c in label_set.train_classes}


def rare_classes(shares: dict[str, float]) -> set[str]:
    """The classes the training view marks as rare: core.planning.rare's rule, without its table limit."""
    from segbalance.core.planning.rare import rare_classes as rule

    return set(rule(shares, limit=len(shares)))
