"""ORM models of the workspace database.

The engine (core/) writes these rows; the desktop app reads them. One module holds them all so
the schema reads in one place; each group is owned by the part of the pipeline that writes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from segbalance.db.base import Base, utcnow


# -- datasets and class statistics (foundation) -------------------------------------------
class Dataset(Base):
    """A dataset folder registered in the workspace."""

    __tablename__ = "dataset"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    format: Mapped[str] = mapped_column(String(32))
    label_set: Mapped[dict] = mapped_column(JSON)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    samples: Mapped[list[Sample]] = relationship(back_populates="dataset", cascade="all, delete-orphan")


class Sample(Base):
    """One image + label map of a dataset; paths are absolute."""

    __tablename__ = "sample"
    __table_args__ = (UniqueConstraint("dataset_id", "split", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    image_path: Mapped[str | None] = mapped_column(Text)
    label_path: Mapped[str] = mapped_column(Text)
    instance_path: Mapped[str | None] = mapped_column(Text)
    dataset: Mapped[Dataset] = relationship(back_populates="samples")
    stats: Mapped[SampleStats | None] = relationship(
        back_populates="sample", cascade="all, delete-orphan", uselist=False
    )


class SampleStats(Base):
    """Cached per-sample pixel counts, valid while the label file's (size, mtime_ns) are unchanged."""

    __tablename__ = "sample_stats"
    sample_id: Mapped[int] = mapped_column(ForeignKey("sample.id", ondelete="CASCADE"), primary_key=True)
    label_size: Mapped[int] = mapped_column(BigInteger)
    label_mtime_ns: Mapped[int] = mapped_column(BigInteger)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    # label id -> pixel count, only ids present (JSON object with string keys)
    counts: Mapped[dict] = mapped_column(JSON)
    sample: Mapped[Sample] = relationship(back_populates="stats")


# -- jobs (generation, training, any long work) -------------------------------------------
class Job(Base):
    """A long-running piece of work; CLI and GUI both follow it through this row."""

    __tablename__ = "job"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)


class JobLog(Base):
    __tablename__ = "job_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(8), default="info")
    text: Mapped[str] = mapped_column(Text)


class GeneratedPair(Base):
    """A generated label map + image with its full provenance; committed only after its files exist."""

    __tablename__ = "generated_pair"
    __table_args__ = (UniqueConstraint("job_id", "recipe_index"), Index("ix_pair_status", "status"))
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    recipe_index: Mapped[int] = mapped_column(Integer)
    recipe: Mapped[dict] = mapped_column(JSON)
    strategy: Mapped[str] = mapped_column(String(16))
    source_samples: Mapped[list] = mapped_column(JSON, default=list)
    classes_added: Mapped[list] = mapped_column(JSON, default=list)
    image_path: Mapped[str] = mapped_column(Text)  # relative to the workspace
    label_path: Mapped[str] = mapped_column(Text)
    instance_path: Mapped[str | None] = mapped_column(Text)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    label_sha256: Mapped[str | None] = mapped_column(String(64))
    instance_sha256: Mapped[str | None] = mapped_column(String(64))
    renderer: Mapped[str] = mapped_column(String(32))
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    pixel_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    quality: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending/accepted/rejected/failed
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PairDecision(Base):
    """One review decision in effect on a pair: who made it, and the status it replaced (so it can be undone).

    Pairs decided together (a bulk accept) share a `batch`. Undoing a decision deletes its rows and restores
    `before`; a pair without rows was decided by its job (pending, or rejected by the quality gate)."""

    __tablename__ = "pair_decision"
    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("generated_pair.id", ondelete="CASCADE"), index=True)
    batch: Mapped[int] = mapped_column(Integer, index=True)
    before: Mapped[str] = mapped_column(String(16))
    after: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(16))  # "app" or "cli": a person, through which tool
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# -- training runs and their metric streams (GAN and segmentation) -------------------------
class TrainingRun(Base):
    __tablename__ = "training_run"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "gan" or "seg"
    name: Mapped[str] = mapped_column(String(255))
    out_dir: Mapped[str] = mapped_column(Text)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    pid: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict | None] = mapped_column(JSON)  # final metrics (e.g. miou, per_class)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class MetricPoint(Base):
    """One scalar (or a dict of per-class values) of a run at an iteration."""

    __tablename__ = "metric_point"
    __table_args__ = (Index("ix_metric_run_name_iter", "run_id", "name", "iteration"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))  # loss, lr, val_miou, loss_G_GAN, ...
    value: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict | None] = mapped_column(JSON)  # e.g. per-class IoU
    time: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# -- label-map edits (desktop editor, issue 8) ----------------------------------------------
class Revision(Base):
    """A saved edit of a label map; files live under WS/revisions/, the original is never overwritten."""

    __tablename__ = "revision"
    __table_args__ = (UniqueConstraint("source_key", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    # what was edited: "sample:<dataset_id>/<split>/<name>", "pair:<id>" or "file:<hash>"
    source_key: Mapped[str] = mapped_column(String(255), index=True)
    number: Mapped[int] = mapped_column(Integer)
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("sample.id", ondelete="SET NULL"))
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("generated_pair.id", ondelete="SET NULL"))
    split: Mapped[str] = mapped_column(String(32), default="train")
    stem: Mapped[str] = mapped_column(String(255))  # Cityscapes-style name, e.g. aachen_000000_000019
    source_label_path: Mapped[str] = mapped_column(Text)  # absolute; untouched by the edit
    source_image_path: Mapped[str | None] = mapped_column(Text)
    label_path: Mapped[str] = mapped_column(Text)  # relative to the workspace, *_gtFine_labelIds.png
    instance_path: Mapped[str | None] = mapped_column(Text)  # *_gtFine_instanceIds.png (uint16)
    label_sha256: Mapped[str] = mapped_column(String(64))
    changed_pixels: Mapped[int] = mapped_column(BigInteger, default=0)  # versus the original
    pixel_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# -- layer bank (recombination engine) -----------------------------------------------------
class LayerBank(Base):
    """Single-class layers cut from one split of a dataset; masks live in shard files under the workspace."""

    __tablename__ = "layer_bank"
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))  # dataset content list
    content_key: Mapped[str] = mapped_column(String(64))  # fingerprint + label file sizes/mtimes + params
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    mask_path: Mapped[str] = mapped_column(Text)  # relative to the workspace
    thumb_path: Mapped[str] = mapped_column(Text)
    mask_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    thumb_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    n_layers: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="building")  # building/ready
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LayerSample(Base):
    """A source map of a bank: its size and where its low-resolution thumbnail sits in the thumb shard."""

    __tablename__ = "layer_sample"
    __table_args__ = (UniqueConstraint("bank_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("layer_bank.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)  # position in the bank's sample order
    name: Mapped[str] = mapped_column(String(255))
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    thumb_offset: Mapped[int] = mapped_column(BigInteger)
    thumb_nbytes: Mapped[int] = mapped_column(Integer)  # zlib-compressed thumbnail
    thumb_h: Mapped[int] = mapped_column(Integer)
    thumb_w: Mapped[int] = mapped_column(Integer)


class Layer(Base):
    """One connected region (or one instance) of one class, mask cropped to its bounding box."""

    __tablename__ = "layer"
    __table_args__ = (Index("ix_layer_bank_class", "bank_id", "class_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("layer_bank.id", ondelete="CASCADE"))
    sample_idx: Mapped[int] = mapped_column(Integer)  # LayerSample.idx
    key: Mapped[int] = mapped_column(Integer)  # index of the layer within its sample (stable per content)
    class_id: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int] = mapped_column(Integer)  # source instance id (0 for connected regions)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    area: Mapped[int] = mapped_column(Integer)
    bottom: Mapped[float] = mapped_column(Float)  # bottom edge row / image height (ground contact)
    offset: Mapped[int] = mapped_column(BigInteger)  # byte offset of the packed mask in the mask shard
    nbytes: Mapped[int] = mapped_column(Integer)


__all__ = [
    "Dataset",
    "Sample",
    "SampleStats",
    "Job",
    "JobLog",
    "GeneratedPair",
    "TrainingRun",
    "MetricPoint",
    "Revision",
    "LayerBank",
    "LayerSample",
    "Layer",
]
