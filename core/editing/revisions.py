"""Edited label maps saved as revisions in the workspace: originals are never overwritten.

Layout (Cityscapes names, so any reader of the dataset conventions opens them):
    WS/revisions/<key>/r0001/<stem>_gtFine_labelIds.png (+ _gtFine_instanceIds.png, uint16)
    WS/revisions/<key>/working/...      autosave of the edit in progress (+ working.json)
`export_revisions` writes the latest revision of each source as a Cityscapes-layout dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from segbalance.core.datasets.base import Dataset as DatasetReader
from segbalance.core.datasets.base import SampleRef
from segbalance.core.datasets.cityscapes import IMAGE_SUFFIX, INSTANCE_SUFFIX, LABEL_SUFFIX, TRAIN_ID_SUFFIX
from segbalance.core.datasets.stats import pixel_counts
from segbalance.core.errors import DataError, SegbalanceError, WorkspaceError
from segbalance.core.io import atomic_write_json, read_label_png, write_png
from segbalance.core.workspace import Workspace
from segbalance.db import models as m


@dataclass(frozen=True)
class EditSource:
    """What is being edited: a dataset sample, a generated pair or a bare label file."""

    key: str
    stem: str
    label_path: str
    image_path: str | None = None
    instance_path: str | None = None
    split: str = "train"
    sample_id: int | None = None
    pair_id: int | None = None

    @property
    def folder(self) -> str:
        """Filesystem-safe form of the key."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.key).strip("_")

    @classmethod
    def from_sample(cls, ws: Workspace, ds: DatasetReader, ref: SampleRef) -> EditSource:
        """A dataset sample (the dataset is registered in the workspace if it is not yet)."""
        row = ws.dataset_row(ds)
        ds_id = row.id if row is not None else ws.register_dataset(ds)
        with ws.session() as s:
            sid = s.scalar(
                select(m.Sample.id).where(
                    m.Sample.dataset_id == ds_id, m.Sample.split == ref.split, m.Sample.name == ref.id
                )
            )
        if sid is None:
            ds_id = ws.register_dataset(ds)  # the sample list changed on disk since registration
            with ws.session() as s:
                sid = s.scalar(
                    select(m.Sample.id).where(
                        m.Sample.dataset_id == ds_id, m.Sample.split == ref.split, m.Sample.name == ref.id
                    )
                )
        return cls(
            key=f"sample:{ds_id}/{ref.split}/{ref.id}",
            stem=ref.id,
            label_path=str(ref.label_path),
            image_path=str(ref.image_path) if ref.image_path else None,
            instance_path=str(ref.instance_path) if ref.instance_path else None,
            split=ref.split,
            sample_id=sid,
        )

    @classmethod
    def from_pair(cls, ws: Workspace, pair_id: int) -> EditSource:
        with ws.session() as s:
            p = s.get(m.GeneratedPair, pair_id)
            if p is None:
                raise WorkspaceError(f"no generated pair {pair_id}", ws.path)
        return cls(
            key=f"pair:{pair_id}",
            stem=f"pair_{pair_id:06d}",
            label_path=str(ws.abs(p.label_path)),
            image_path=str(ws.abs(p.image_path)) if p.image_path else None,
            instance_path=str(ws.abs(p.instance_path)) if p.instance_path else None,
            pair_id=pair_id,
        )

    @classmethod
    def from_file(cls, label_path: str | Path, image_path: str | Path | None = None) -> EditSource:
        """A label PNG outside any registered dataset (the demo entry uses this)."""
        p = Path(label_path).resolve()
        stem = p.name
        for suf in (LABEL_SUFFIX, TRAIN_ID_SUFFIX, ".png"):
            if stem.endswith(suf):
                stem = stem[: -len(suf)]
                break
        inst = p.with_name(stem + INSTANCE_SUFFIX)
        digest = hashlib.sha1(str(p).encode()).hexdigest()[:10]
        return cls(
            key=f"file:{digest}",
            stem=stem,
            label_path=str(p),
            image_path=str(Path(image_path).resolve()) if image_path else None,
            instance_path=str(inst) if inst.exists() else None,
        )


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _write_maps(folder: Path, stem: str, label: np.ndarray, instance: np.ndarray | None) -> tuple[Path, Path | None]:
    lab_path = folder / (stem + LABEL_SUFFIX)
    write_png(lab_path, np.ascontiguousarray(label, dtype=np.uint8))
    inst_path = None
    if instance is not None:
        if instance.min() < 0 or instance.max() > 65535:
            raise DataError("instance ids do not fit a 16-bit PNG", folder)
        inst_path = folder / (stem + INSTANCE_SUFFIX)
        write_png(inst_path, instance.astype(np.uint16))
    return lab_path, inst_path


# -- working copy (autosave) ---------------------------------------------------------------
# Each autosave writes a new generation folder g<n>/ and then, atomically, current.json naming it; a crash
# at any point leaves current.json pointing at a complete generation, so at most the last stroke is lost.
def working_dir(ws: Workspace, src: EditSource) -> Path:
    return ws.path / "revisions" / src.folder / "working"


def save_working(ws: Workspace, src: EditSource, label: np.ndarray, instance: np.ndarray | None) -> Path:
    """Autosave the edit in progress; called after every stroke."""
    d = ws.subdir("revisions", src.folder, "working")
    cur = _current_generation(d)
    gen = (cur[0] + 1) if cur else 1
    lab, _ = _write_maps(d / f"g{gen}", src.stem, label, instance)
    atomic_write_json(d / "current.json", {"generation": gen, "source": asdict(src)})
    for old in d.glob("g*"):
        if old.name != f"g{gen}":
            shutil.rmtree(old, ignore_errors=True)
    return lab


def _current_generation(d: Path) -> tuple[int, Path] | None:
    try:
        gen = int(json.loads((d / "current.json").read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return gen, d / f"g{gen}"


def load_working(ws: Workspace, src: EditSource) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The autosaved edit in progress of `src`, or None; a damaged autosave is ignored rather than fatal."""
    cur = _current_generation(working_dir(ws, src))
    if cur is None:
        return None
    g = cur[1]
    try:
        label = read_label_png(g / (src.stem + LABEL_SUFFIX))
        inst_p = g / (src.stem + INSTANCE_SUFFIX)
        inst = read_label_png(inst_p).astype(np.int32) if inst_p.exists() else None
    except (DataError, OSError):
        return None
    return label, inst


def discard_working(ws: Workspace, src: EditSource) -> None:
    shutil.rmtree(working_dir(ws, src), ignore_errors=True)


class Autosaver:
    """Autosaves off the caller's thread, latest state wins: a full-size save is slow enough to be felt, so a
    stroke should not wait for it (docs/benchmarks.md). `submit` snapshots the maps (a copy); `flush` waits until
    the newest is on disk."""

    def __init__(self, ws: Workspace, src: EditSource) -> None:
        self.ws, self.src = ws, src
        self._lock = threading.Lock()
        self._snap: tuple[int, np.ndarray, np.ndarray | None] | None = None
        self._gen = 0
        self.saved_gen = 0
        self.error: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autosave")
        self._futures: list[Future] = []

    def submit(self, label: np.ndarray, instance: np.ndarray | None) -> None:
        with self._lock:
            self._gen += 1
            self._snap = (self._gen, label.copy(), None if instance is None else instance.copy())
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._pool.submit(self._save_latest))

    def _save_latest(self) -> None:
        with self._lock:
            snap, self._snap = self._snap, None
        if snap is None or snap[0] <= self.saved_gen:
            return  # a later job already saved a newer state
        try:
            save_working(self.ws, self.src, snap[1], snap[2])
            self.saved_gen = snap[0]
            self.error = None
        except (SegbalanceError, OSError) as exc:
            self.error = str(exc)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait for pending saves; True when the newest submitted state is on disk."""
        for f in list(self._futures):
            f.result(timeout=timeout)
        return self.saved_gen == self._gen

    def discard(self) -> None:
        """Forget pending saves (after a revision save consumed the working copy)."""
        with self._lock:
            self._snap = None
            self.saved_gen = self._gen

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# -- revisions -----------------------------------------------------------------------------
def save_revision(
    ws: Workspace,
    src: EditSource,
    label: np.ndarray,
    instance: np.ndarray | None,
    *,
    note: str | None = None,
) -> m.Revision:
    """Store the edited maps as the next revision of `src` (files first, then the row); clears the autosave."""
    try:
        original = read_label_png(src.label_path)
        changed = int((original != label).sum()) if original.shape == label.shape else int(label.size)
    except DataError:
        changed = int(label.size)
    with ws.session() as s:
        last = s.scalar(select(func.max(m.Revision.number)).where(m.Revision.source_key == src.key)) or 0
    number = last + 1
    folder = ws.subdir("revisions", src.folder, f"r{number:04d}")
    lab_path, inst_path = _write_maps(folder, src.stem, label, instance)
    counts = pixel_counts(label)
    row = m.Revision(
        source_key=src.key,
        number=number,
        sample_id=src.sample_id,
        pair_id=src.pair_id,
        split=src.split,
        stem=src.stem,
        source_label_path=src.label_path,
        source_image_path=src.image_path,
        label_path=ws.rel(lab_path),
        instance_path=ws.rel(inst_path) if inst_path else None,
        label_sha256=_sha256(label),
        changed_pixels=changed,
        pixel_counts={str(i): int(c) for i, c in enumerate(counts) if c},
        note=note,
    )
    with ws.session() as s, s.begin():
        s.add(row)
    discard_working(ws, src)
    return row


def revisions_of(ws: Workspace, key: str) -> list[m.Revision]:
    with ws.session() as s:
        return list(s.scalars(select(m.Revision).where(m.Revision.source_key == key).order_by(m.Revision.number)))


def load_revision(ws: Workspace, rev: m.Revision) -> tuple[np.ndarray, np.ndarray | None]:
    label = read_label_png(ws.abs(rev.label_path))
    inst = read_label_png(ws.abs(rev.instance_path)).astype(np.int32) if rev.instance_path else None
    return label, inst


def load_for_edit(ws: Workspace, src: EditSource) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Maps to start editing from and where they came from: the autosave, else the latest revision,
    else the original files."""
    working = load_working(ws, src)
    if working is not None:
        return working[0], working[1], "autosave"
    revs = revisions_of(ws, src.key)
    if revs:
        lab, inst = load_revision(ws, revs[-1])
        return lab, inst, f"revision {revs[-1].number}"
    label = read_label_png(src.label_path)
    if label.dtype != np.uint8:
        if label.max() > 255:
            raise DataError("label ids do not fit 0..255", src.label_path)
        label = label.astype(np.uint8)
    inst = None
    if src.instance_path and Path(src.instance_path).exists():
        inst = read_label_png(src.instance_path).astype(np.int32)
        if inst.shape != label.shape:
            raise DataError("instance map size differs from its label map", src.instance_path)
    return label, inst, "original"


def _city(stem: str) -> str:
    head = stem.split("_")[0]
    return head if head and head != stem else "edited"


def export_revisions(ws: Workspace, out_dir: str | Path, revision_ids: list[int] | None = None) -> Path:
    """Write the latest revision of every edited source (or the given ones) as a Cityscapes-layout dataset:
    gtFine/{split}/{city}/*_gtFine_labelIds.png (+ instanceIds) and leftImg8bit/... images when known."""
    out = Path(out_dir)
    with ws.session() as s:
        q = select(m.Revision).order_by(m.Revision.source_key, m.Revision.number)
        if revision_ids is not None:
            q = q.where(m.Revision.id.in_(revision_ids))
        latest: dict[str, m.Revision] = {}
        for r in s.scalars(q):
            latest[r.source_key] = r
    if not latest:
        raise WorkspaceError("no saved revisions to export", ws.path)
    for r in latest.values():
        city = _city(r.stem)
        gt = out / "gtFine" / r.split / city
        gt.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ws.abs(r.label_path), gt / (r.stem + LABEL_SUFFIX))
        if r.instance_path:
            shutil.copyfile(ws.abs(r.instance_path), gt / (r.stem + INSTANCE_SUFFIX))
        if r.source_image_path and Path(r.source_image_path).exists():
            img = out / "leftImg8bit" / r.split / city
            img.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(r.source_image_path, img / (r.stem + IMAGE_SUFFIX))
    return out
