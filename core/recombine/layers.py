"""Layer bank: every label map of a split cut into single-class layers, stored compactly and indexed in the DB.

A layer is one connected region of a stuff class, or one instance of a thing class (read from the
instance map, so two touching cars stay two layers). Masks are cropped to their bounding box,
bit-packed and zlib-compressed into one append-only shard file per bank; a second shard holds a
low-resolution thumbnail of each source map, which the planner uses to place and count without
decoding PNGs. Building streams one map at a time, so memory stays flat whatever the dataset size.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import delete, insert, select

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import Cancelled, DataError
from segbalance.core.parallel import pool_init, pool_initargs, process_context

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

BANK_VERSION = 2
MIN_AREA_FRAC = 2e-5  # smaller regions (a few pixels of label noise) are not worth a layer
PLAN_LONG_SIDE = 512  # thumbnails (and the planner's simulation) work at about this width


def plan_factor(width: int, height: int) -> int:
    """Integer down-scaling factor of the planner's thumbnails for a map of this size."""
    return max(1, int(round(max(width, height) / PLAN_LONG_SIDE)))


def thumbnail(label: np.ndarray, f: int) -> np.ndarray:
    """Nearest-neighbour down-sampling by an integer factor (the planner's view of a map)."""
    if f == 1:
        return np.ascontiguousarray(label)
    h, w = label.shape
    return cv2.resize(label, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_NEAREST)


@dataclass
class _Cut:
    key: int
    class_id: int
    instance_id: int
    x: int
    y: int
    w: int
    h: int
    area: int
    bottom: float
    blob: bytes


def pack_mask(mask: np.ndarray) -> bytes:
    return zlib.compress(np.packbits(mask.astype(bool), axis=None).tobytes(), 1)


def unpack_mask(blob: bytes | memoryview, h: int, w: int) -> np.ndarray:
    bits = np.frombuffer(zlib.decompress(blob), np.uint8)
    return np.unpackbits(bits, count=h * w).reshape(h, w).view(bool)


def decompose(label: np.ndarray, instance: np.ndarray | None, ls: LabelSet, min_area: int = 1) -> list[_Cut]:
    """Cut a label map into layers: instances of thing classes, connected regions (8-connected) of the rest.

    Only evaluated classes (with a train id) become layers: nothing else is ever pasted.
    The order (class id, then instance id / region position) is deterministic, so `key` is stable.
    """
    H = label.shape[0]
    lut = ls.id_to_train_lut
    cuts: list[_Cut] = []
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    inst_done: set[int] = set()
    if instance is not None:
        # one pass over thing pixels gives every instance's bounding box
        ys, xs = np.nonzero(instance >= 1000)
        if ys.size:
            vals = instance[ys, xs]
            order = np.argsort(vals, kind="stable")
            vals, ys, xs = vals[order], ys[order], xs[order]
            starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]])
            ends = np.r_[starts[1:], vals.size]
            for s, e in zip(starts, ends, strict=True):
                iid = int(vals[s])
                cid = iid // 1000
                if cid > 255 or lut[cid] == 255 or not ls.by_id.get(cid) or not ls.by_id[cid].has_instances:
                    continue
                inst_done.add(cid)
                y0, y1 = int(ys[s:e].min()), int(ys[s:e].max()) + 1
                x0, x1 = int(xs[s:e].min()), int(xs[s:e].max()) + 1
                crop = (instance[y0:y1, x0:x1] == iid) & (label[y0:y1, x0:x1] == cid)
                area = int(crop.sum())
                if area >= min_area:
                    cuts.append(_Cut(0, cid, iid, x0, y0, x1 - x0, y1 - y0, area, y1 / H, pack_mask(crop)))
    for cid in present:
        cid = int(cid)
        if lut[cid] == 255:
            continue
        mask = label == cid
        if cid in inst_done and instance is not None:
            mask &= instance < 1000  # group regions (e.g. a crowd) not covered by instances
            if not mask.any():
                continue
        n, cc, st, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        for k in range(1, n):
            x, y, w, h, area = (int(v) for v in st[k])
            if area < min_area:
                continue
            crop = cc[y : y + h, x : x + w] == k
            cuts.append(_Cut(0, cid, 0, x, y, w, h, area, (y + h) / H, pack_mask(crop)))
    cuts.sort(key=lambda c: (c.class_id, c.instance_id, c.y, c.x))
    for i, c in enumerate(cuts):
        c.key = i
    return cuts


# -- the bank in memory ----------------------------------------------------------------------------
class LayerBank:
    """Columnar view of a built bank: numpy arrays per layer attribute, masks read from the shard on demand."""

    def __init__(self, root: Path, label_set: LabelSet, fingerprint: str, split: str, factor: int,
                 samples: list[dict], cols: dict[str, np.ndarray], bank_id: int | None = None) -> None:
        self.root = root
        self.label_set = label_set
        self.fingerprint = fingerprint
        self.split = split
        self.factor = factor
        self.bank_id = bank_id
        self.samples = samples  # [{name, height, width, thumb_offset, thumb_nbytes, thumb_h, thumb_w}] by idx
        self.sample_index = {s["name"]: i for i, s in enumerate(samples)}
        self.cols = cols
        mpath, tpath = root / "masks.bin", root / "thumbs.bin"
        self._masks = np.memmap(mpath, np.uint8, "r") if mpath.stat().st_size else np.zeros(0, np.uint8)
        self._thumbs = np.memmap(tpath, np.uint8, "r") if tpath.stat().st_size else np.zeros(0, np.uint8)
        order = np.lexsort((cols["key"], cols["sample_idx"]))
        for k in cols:
            cols[k] = cols[k][order]
        # (sample_idx, key) -> row, via the first row of each sample
        self._first = np.searchsorted(cols["sample_idx"], np.arange(len(samples) + 1))

    def __len__(self) -> int:
        return int(self.cols["key"].size)

    def row(self, sample: str, key: int) -> int:
        """Row of a layer given its source sample and key; DataError if the bank has no such layer."""
        si = self.sample_index.get(sample)
        if si is None:
            raise DataError(f"sample {sample!r} is not in the layer bank")
        r = int(self._first[si]) + int(key)
        if not 0 <= key or r >= self._first[si + 1]:
            raise DataError(f"sample {sample!r} has no layer #{key} (the layer bank changed since planning?)")
        return r

    def mask(self, r: int) -> np.ndarray:
        c = self.cols
        o, n = int(c["offset"][r]), int(c["nbytes"][r])
        return unpack_mask(self._masks[o : o + n].tobytes(), int(c["h"][r]), int(c["w"][r]))

    def thumb(self, si: int) -> np.ndarray:
        """The planner's low-resolution copy of a source map (nearest-neighbour, factor `self.factor`)."""
        s = self.samples[si]
        o = s["thumb_offset"]
        raw = zlib.decompress(self._thumbs[o : o + s["thumb_nbytes"]].tobytes())
        return np.frombuffer(raw, np.uint8).reshape(s["thumb_h"], s["thumb_w"])

    def rows_of_class(self, class_id: int, min_area: int = 0) -> np.ndarray:
        c = self.cols
        return np.flatnonzero((c["class_id"] == class_id) & (c["area"] >= min_area))

    def classes(self) -> list[int]:
        return sorted(int(v) for v in np.unique(self.cols["class_id"]))

    def layer_counts(self) -> dict[int, int]:
        ids, n = np.unique(self.cols["class_id"], return_counts=True)
        return {int(i): int(k) for i, k in zip(ids, n, strict=True)}


_COLS = ("sample_idx", "key", "class_id", "instance_id", "x", "y", "w", "h", "area", "bottom", "offset", "nbytes")


def _content_key(ds: Dataset, refs: list[SampleRef], split: str, params: dict) -> str:
    h = hashlib.sha256(f"v{BANK_VERSION};{ds.fingerprint()};{split};{sorted(params.items())}".encode())
    for r in refs:
        for p in (r.label_path, r.instance_path):
            if p is not None:
                try:
                    st = os.stat(p)
                except OSError:
                    raise DataError("file not found", p) from None
                h.update(f"{r.id}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:32]


# worker state for the process pool
_W: dict = {}


def _init(ds: Dataset, min_frac: float) -> None:
    _W["ds"], _W["min_frac"] = ds, min_frac
    cv2.setNumThreads(1)


def _cut_sample(ref: SampleRef) -> tuple[str, int, int, bytes, int, int, list[_Cut]] | tuple[str, str]:
    ds: Dataset = _W["ds"]
    try:
        label = ds.load_label(ref)
        inst = ds.load_instance(ref)
    except DataError as exc:
        return (ref.id, str(exc))
    if inst is not None and inst.shape != label.shape:
        return (ref.id, f"{ref.instance_path}: instance map size differs from its label map")
    H, W = label.shape
    f = plan_factor(W, H)
    th = thumbnail(label, f)
    min_area = max(4, int(MIN_AREA_FRAC * H * W))
    blob = zlib.compress(th.tobytes(), 1)
    return (ref.id, H, W, blob, th.shape[0], th.shape[1], decompose(label, inst, ds.label_set, min_area))


def _bank_split(ds: Dataset, split: str | None) -> str:
    if split is None:
        return "train" if "train" in ds.splits() else "all"
    return split


def build_layer_bank(ds: Dataset, workspace, progress: Progress | None = None, cancel: CancelCheck | None = None,
                     *, split: str | None = None, workers: int | None = None) -> LayerBank:
    """The layer bank of a dataset split (train by default), built once and reused while the files are unchanged.

    Shards are written under a temporary name and renamed; the DB rows are committed after the
    files exist, so an interrupted build leaves nothing that a later run would trust.
    """
    from segbalance.db import models as m

    split = _bank_split(ds, split)
    refs = ds.samples(None if split == "all" else split)
    if not refs:
        raise DataError(f"no samples in split {split!r}", ds.root)
    params = {"min_area_frac": MIN_AREA_FRAC, "plan_long_side": PLAN_LONG_SIDE}
    ckey = _content_key(ds, refs, split, params)
    ds_id = workspace.register_dataset(ds)
    with workspace.session() as s:
        row = s.scalar(select(m.LayerBank).where(m.LayerBank.dataset_id == ds_id, m.LayerBank.split == split,
                                                  m.LayerBank.status == "ready"))
        if row is not None and row.content_key == ckey:
            mp, tp = workspace.abs(row.mask_path), workspace.abs(row.thumb_path)
            if mp.exists() and tp.exists() and mp.stat().st_size == row.mask_bytes \
                    and tp.stat().st_size == row.thumb_bytes:
                return load_layer_bank(workspace, row.id, ds.label_set)
    root = workspace.subdir("layers", f"{ds.fingerprint()}-{split}-{ckey[:8]}")
    mtmp, ttmp = root / f"masks.bin.{os.getpid()}.tmp", root / f"thumbs.bin.{os.getpid()}.tmp"
    samples: list[dict] = []
    rows: list[tuple] = []
    bad: list[str] = []
    moff = toff = 0
    n = len(refs)
    workers = workers or min(os.cpu_count() or 1, 4)
    try:
        with open(mtmp, "wb") as mf, open(ttmp, "wb") as tf:
            for i, res in enumerate(_iter_cuts(ds, refs, workers)):
                if cancel and cancel():
                    raise Cancelled()
                if len(res) == 2:
                    bad.append(res[1])
                    continue
                name, H, W, th, th_h, th_w, cuts = res
                si = len(samples)
                samples.append(dict(name=name, height=H, width=W, thumb_offset=toff, thumb_nbytes=len(th),
                                    thumb_h=th_h, thumb_w=th_w))
                tf.write(th)
                toff += len(th)
                for c in cuts:
                    mf.write(c.blob)
                    rows.append((si, c.key, c.class_id, c.instance_id, c.x, c.y, c.w, c.h, c.area, c.bottom,
                                 moff, len(c.blob)))
                    moff += len(c.blob)
                if progress:
                    progress(i + 1, n)
            mf.flush()
            os.fsync(mf.fileno())
            tf.flush()
            os.fsync(tf.fileno())
        if bad:
            raise DataError(bad[0] + (f" (and {len(bad) - 1} more bad samples)" if len(bad) > 1 else ""))
        os.replace(mtmp, root / "masks.bin")
        os.replace(ttmp, root / "thumbs.bin")
    except BaseException:
        for p in (mtmp, ttmp):
            p.unlink(missing_ok=True)
        raise
    f0 = plan_factor(samples[0]["width"], samples[0]["height"])
    with workspace.session() as s, s.begin():
        old = list(s.scalars(select(m.LayerBank.id).where(m.LayerBank.dataset_id == ds_id,
                                                          m.LayerBank.split == split)))
        if old:
            s.execute(delete(m.Layer).where(m.Layer.bank_id.in_(old)))
            s.execute(delete(m.LayerSample).where(m.LayerSample.bank_id.in_(old)))
            s.execute(delete(m.LayerBank).where(m.LayerBank.id.in_(old)))
        bank = m.LayerBank(dataset_id=ds_id, split=split, fingerprint=ds.fingerprint(), content_key=ckey,
                           params={**params, "factor": f0}, mask_path=workspace.rel(root / "masks.bin"),
                           thumb_path=workspace.rel(root / "thumbs.bin"), mask_bytes=moff, thumb_bytes=toff,
                           n_layers=len(rows), status="ready")
        s.add(bank)
        s.flush()
        bid = bank.id
        s.execute(insert(m.LayerSample), [dict(bank_id=bid, idx=i, **d) for i, d in enumerate(samples)])
        for j in range(0, len(rows), 20000):
            chunk = rows[j : j + 20000]
            s.execute(insert(m.Layer), [dict(bank_id=bid, **dict(zip(_COLS, r, strict=True))) for r in chunk])
    # drop shard folders of older banks of this dataset split
    for d in root.parent.glob(f"{ds.fingerprint()}-{split}-*"):
        if d != root and d.is_dir():
            for p in d.iterdir():
                p.unlink(missing_ok=True)
            d.rmdir()
    return _make_bank(root, ds.label_set, ds.fingerprint(), split, samples, rows, bid)


def _iter_cuts(ds: Dataset, refs: list[SampleRef], workers: int):
    if workers <= 1 or len(refs) < 8:
        _init(ds, MIN_AREA_FRAC)
        for r in refs:
            yield _cut_sample(r)
        return
    # never plain fork: OpenCV's or Qt's threads (invisible to `threading`) leave locks held in the child
    with ProcessPoolExecutor(workers, mp_context=process_context(), initializer=pool_init,
                             initargs=pool_initargs(_init, ds, MIN_AREA_FRAC)) as pool:
        try:
            yield from pool.map(_cut_sample, refs, chunksize=2)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _make_bank(root: Path, ls: LabelSet, fp: str, split: str, samples: list[dict], rows, bank_id: int | None
               ) -> LayerBank:
    if isinstance(rows, dict):
        cols = rows
    else:
        arr = np.array(rows, dtype=np.float64).reshape(-1, len(_COLS))
        cols = {k: arr[:, i].astype(np.float64 if k == "bottom" else np.int64) for i, k in enumerate(_COLS)}
    f = plan_factor(samples[0]["width"], samples[0]["height"]) if samples else 1
    return LayerBank(root, ls, fp, split, f, samples, cols, bank_id)


def load_layer_bank(workspace, bank_id: int, label_set: LabelSet) -> LayerBank:
    """Load a built bank's index from the DB (columns as numpy arrays; masks stay on disk)."""
    from segbalance.db import models as m

    with workspace.session() as s:
        bank = s.get(m.LayerBank, bank_id)
        if bank is None or bank.status != "ready":
            raise DataError(f"layer bank #{bank_id} is not built", workspace.path)
        samples = [dict(name=r.name, height=r.height, width=r.width, thumb_offset=r.thumb_offset,
                        thumb_nbytes=r.thumb_nbytes, thumb_h=r.thumb_h, thumb_w=r.thumb_w)
                   for r in s.scalars(select(m.LayerSample).where(m.LayerSample.bank_id == bank_id)
                                      .order_by(m.LayerSample.idx))]
        q = select(*[getattr(m.Layer, k) for k in _COLS]).where(m.Layer.bank_id == bank_id)
        data = s.execute(q).all()
        root = workspace.abs(bank.mask_path).parent
        fp, split = bank.fingerprint, bank.split
    arr = np.array(data, dtype=np.float64).reshape(-1, len(_COLS))
    cols = {k: arr[:, i].astype(np.float64 if k == "bottom" else np.int64) for i, k in enumerate(_COLS)}
    return _make_bank(root, label_set, fp, split, samples, cols, bank_id)
