"""Class statistics: per-sample pixel counts, per-dataset pixel share and image frequency.

Counting uses OpenCV's histogram (SIMD, no int64 copy of the map), so a scan costs little
more than decoding the label PNGs. Results are cached in the workspace DB per label file,
keyed by (path, size, mtime_ns).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import Cancelled, DataError
from segbalance.core.parallel import pool_init, pool_initargs, process_context

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

_F32_EXACT = 1 << 24  # float32 histogram bins count exactly up to here


def pixel_counts(label: np.ndarray) -> np.ndarray:
    """Pixel count per label id (256 bins, int64) of a uint8 label map."""
    if label.dtype != np.uint8:
        return np.bincount(label.ravel(), minlength=256)[:256].astype(np.int64)
    if label.size >= _F32_EXACT:
        rows = max(1, _F32_EXACT // max(1, label.shape[1]) - 1)
        return sum((pixel_counts(label[i : i + rows]) for i in range(0, label.shape[0], rows)),
                   np.zeros(256, np.int64))
    lab = label if label.flags.c_contiguous else np.ascontiguousarray(label)
    return cv2.calcHist([lab], [0], None, [256], [0, 256]).ravel().astype(np.int64)


@dataclass
class SampleCount:
    id: str
    height: int
    width: int
    counts: np.ndarray  # int64[256]


@dataclass
class BadSample:
    id: str
    error: str


@dataclass
class DatasetStats:
    """Pixel and image counts per label id for one split, plus per-sample counts."""

    label_set: LabelSet
    split: str
    samples: list[SampleCount]
    bad: list[BadSample] = field(default_factory=list)
    cached: int = 0  # how many samples came from the cache

    @property
    def n_images(self) -> int:
        return len(self.samples)

    @property
    def pixels(self) -> np.ndarray:
        """int64[256] pixel count per label id."""
        if not self.samples:
            return np.zeros(256, np.int64)
        return np.sum([s.counts for s in self.samples], axis=0)

    @property
    def images(self) -> np.ndarray:
        """int64[256] number of images containing each label id."""
        if not self.samples:
            return np.zeros(256, np.int64)
        return np.sum([s.counts > 0 for s in self.samples], axis=0).astype(np.int64)

    @property
    def labeled_pixels(self) -> int:
        """Pixels of evaluated classes (those with a train id): the denominator of every share."""
        lut = self.label_set.id_to_train_lut
        return int(self.pixels[lut != 255].sum())

    def train_pixels(self) -> np.ndarray:
        """Pixel count per train id (int64[num_train_classes])."""
        return _to_train(self.pixels, self.label_set)

    def train_images(self) -> np.ndarray:
        """Images containing each train id."""
        lut = self.label_set.id_to_train_lut
        n = self.label_set.num_train_classes
        out = np.zeros(n, np.int64)
        for s in self.samples:
            present = np.zeros(n, bool)
            ids = np.flatnonzero(s.counts)
            t = lut[ids]
            present[t[t < n]] = True
            out += present
        return out

    def classes(self) -> list[dict]:
        """One dict per class of the label set (id >= 0), in the `stats --json` form."""
        total = max(1, self.labeled_pixels)
        pix, img = self.pixels, self.images
        out = []
        for c in self.label_set.classes:
            if not 0 <= c.id <= 255:
                continue
            out.append(
                {
                    "id": c.id,
                    "name": c.name,
                    "train_id": int(c.train_id) if not c.ignore_in_eval else 255,
                    "pixels": int(pix[c.id]),
                    "pixel_share": float(pix[c.id]) / total,
                    "images": int(img[c.id]),
                }
            )
        return out

    def to_json(self) -> dict:
        return {"n_images": self.n_images, "classes": self.classes()}

    def samples_with(self, label_id: int, min_pixels: int = 1) -> list[str]:
        """Ids of samples holding at least `min_pixels` of a label id."""
        return [s.id for s in self.samples if s.counts[label_id] >= min_pixels]


def _to_train(counts: np.ndarray, ls: LabelSet) -> np.ndarray:
    lut = ls.id_to_train_lut
    n = ls.num_train_classes
    keep = lut != 255
    return np.bincount(lut[keep].astype(np.int64), weights=counts[keep], minlength=n)[:n].astype(np.int64)


# -- scanning ---------------------------------------------------------------------------------
def count_sample(ds: Dataset, ref: SampleRef) -> SampleCount:
    """Decode one label map, check it against its image and the label set, count its pixels."""
    label = ds.load_label(ref, check=False)
    counts = pixel_counts(label)
    ds.check_counts(counts, ref.label_path)
    ds.check_pair(ref, label.shape)
    return SampleCount(ref.id, int(label.shape[0]), int(label.shape[1]), counts)


_WORKER_DS: Dataset | None = None


def _init_worker(ds: Dataset) -> None:
    global _WORKER_DS
    _WORKER_DS = ds
    cv2.setNumThreads(1)


def _work(ref: SampleRef) -> SampleCount | BadSample:
    assert _WORKER_DS is not None
    try:
        return count_sample(_WORKER_DS, ref)
    except DataError as exc:
        return BadSample(ref.id, str(exc))


def _scan(
    ds: Dataset,
    refs: list[SampleRef],
    workers: int,
    progress: Progress | None,
    cancel: CancelCheck | None,
) -> list[SampleCount | BadSample]:
    results: list[SampleCount | BadSample] = []
    n = len(refs)
    # a pool's start (fresh interpreters importing cv2) costs more than a small scan
    if workers <= 1 or n < 64:
        _init_worker(ds)
        for i, ref in enumerate(refs):
            if cancel and cancel():
                raise Cancelled()
            results.append(_work(ref))
            if progress:
                progress(i + 1, n)
        return results
    # never plain fork: OpenCV's (or Qt's) threads in this process would deadlock the children
    ctx = process_context()
    chunk = max(1, min(32, n // (workers * 8)))
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=pool_init,
                             initargs=pool_initargs(_init_worker, ds)) as pool:
        try:
            for i, res in enumerate(pool.map(_work, refs, chunksize=chunk)):
                results.append(res)
                if progress:
                    progress(i + 1, n)
                if cancel and cancel():
                    raise Cancelled()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def dataset_stats(
    ds: Dataset,
    split: str | None = "train",
    *,
    workspace=None,  # core.workspace.Workspace | None (not imported: keeps this module light)
    workers: int | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
) -> DatasetStats:
    """Count pixels of every sample of a split (all splits when None), reusing the workspace cache.

    A bad sample raises DataError unless skip_bad, in which case it is reported in `bad`.
    Cache rows are written only when the whole scan succeeded.
    """
    refs = ds.samples(split)
    workers = workers or min(os.cpu_count() or 1, 8)
    cached: dict[str, SampleCount] = {}
    keys: dict[str, tuple[int, int]] = {}
    sample_ids: dict[str, int] = {}
    read_only = bool(getattr(workspace, "read_only", False))
    ds_id = None
    if workspace is not None:
        from segbalance.db import DatabaseUnusable

        try:
            ds_id = workspace.register_dataset(ds)  # writes nothing when the workspace knows the dataset as it is
        except DatabaseUnusable:
            if not read_only:
                raise
            workspace = None  # a read-only workspace that does not know this dataset: count without the cache
    if workspace is not None:
        from segbalance.db import models as m

        with workspace.session() as s:
            q = (
                select(m.Sample.id, m.Sample.split, m.Sample.name, m.SampleStats)
                .outerjoin(m.SampleStats, m.SampleStats.sample_id == m.Sample.id)
                .where(m.Sample.dataset_id == ds_id)
            )
            rows = {(r[1], r[2]): (r[0], r[3]) for r in s.execute(q)}
        for ref in refs:
            st = os.stat(ref.label_path)
            keys[ref.id] = (st.st_size, st.st_mtime_ns)
            sid, row = rows[(ref.split, ref.id)]
            sample_ids[ref.id] = sid
            if row is not None and (row.label_size, row.label_mtime_ns) == keys[ref.id]:
                counts = np.zeros(256, np.int64)
                for k, v in row.counts.items():
                    counts[int(k)] = v
                cached[ref.id] = SampleCount(ref.id, row.height, row.width, counts)
    todo = [r for r in refs if r.id not in cached]
    n_cached = len(cached)
    if progress and n_cached:
        progress(0, len(todo))
    results = _scan(ds, todo, workers, progress, cancel) if todo else []
    bad = [r for r in results if isinstance(r, BadSample)]
    if bad and not skip_bad:
        raise DataError(bad[0].error + (f" (and {len(bad) - 1} more bad samples)" if len(bad) > 1 else ""))
    fresh = {r.id: r for r in results if isinstance(r, SampleCount)}
    if workspace is not None and fresh and not read_only:
        from segbalance.db import models as m

        with workspace.session() as s, s.begin():
            for sc in fresh.values():
                size, mtime = keys[sc.id]
                nz = np.flatnonzero(sc.counts)
                s.merge(
                    m.SampleStats(
                        sample_id=sample_ids[sc.id],
                        label_size=size,
                        label_mtime_ns=mtime,
                        height=sc.height,
                        width=sc.width,
                        counts={str(int(i)): int(sc.counts[i]) for i in nz},
                    )
                )
    merged = {**cached, **fresh}
    ordered = [merged[r.id] for r in refs if r.id in merged]
    return DatasetStats(ds.label_set, split or "all", ordered, bad, cached=n_cached)


def daformer_class_stats(ds: Dataset, st: DatasetStats) -> tuple[list[dict], dict[str, list]]:
    """DAFormer's rare-class-sampling inputs: (sample_class_stats, samples_with_class) in train ids.

    sample_class_stats: one {train_id: pixels (> 0), ..., "file": label file} per sample; samples_with_class:
    {train_id: [[file, pixels], ...]}. Ignore (255) is left out, as DAFormer's converters do. "file" is the
    train-id label file relative to the dataset root (Cityscapes: the _gtFine_labelTrainIds.png beside the
    labelIds file, which `export` writes); DAFormer matches it by its file name.
    """
    refs: dict[str, SampleRef] = {}
    for r in ds.samples(None if st.split == "all" else st.split):
        refs.setdefault(r.id, r)
    per_sample: list[dict] = []
    with_class: dict[str, list] = {}
    for s in st.samples:
        ref = refs[s.id]
        path = ref.label_path
        if ref.label_kind == "labelIds" and path.name.endswith("_gtFine_labelIds.png"):
            path = path.with_name(path.name.replace("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"))
        file = path.relative_to(ds.root).as_posix()
        train = _to_train(s.counts, ds.label_set)
        entry: dict = {int(t): int(train[t]) for t in np.flatnonzero(train)}
        for t, n in entry.items():
            with_class.setdefault(str(t), []).append([file, n])
        per_sample.append({**entry, "file": file})
    return per_sample, with_class


def write_daformer_stats(out_dir: str | Path, ds: Dataset, st: DatasetStats) -> list[Path]:
    """Write sample_class_stats.json, sample_class_stats_dict.json and samples_with_class.json; returns the paths."""
    from segbalance.core.io import atomic_write_json

    per_sample, with_class = daformer_class_stats(ds, st)
    out = Path(out_dir)
    by_file = {e["file"]: {k: v for k, v in e.items() if k != "file"} for e in per_sample}
    files = {"sample_class_stats.json": per_sample, "sample_class_stats_dict.json": by_file,
             "samples_with_class.json": with_class}
    for name, obj in files.items():
        atomic_write_json(out / name, obj)
    return [out / n for n in files]
