"""Export an augmented dataset (originals + generated pairs) in a layout a trainer reads, with provenance.

Formats:
- ``cityscapes``: leftImg8bit/ + gtFine/ (labelIds, labelTrainIds, instanceIds); generated pairs go into an
  extra "city" per job (job<N>) of the train split; {split}_list.txt hold "image label" lines (train ids),
  train_original_list.txt / train_generated_list.txt keep the two apart.
- ``mmseg``: img_dir/{train,val} + ann_dir/{train,val} (train-id masks, 255 = ignore); generated pairs in
  img_dir/generated + ann_dir/generated, and mmseg_config.py, a custom-dataset config fragment.
- ``hf``: Parquet shards data/{split}-NNNNN-of-NNNNN.parquet (split train, validation, generated) with
  image and mask columns (PNG bytes, typed as Hugging Face Image features) and id2label.json, for
  ``datasets.load_dataset("parquet", ...)``.

Every format gets provenance.jsonl (one JSON line per generated pair), classes.json and manifest.json.
The export is built in a staging folder beside the target and swapped in at the end, so the target
always holds exactly one complete export (never a mix of an old and a new one, never a half-written one),
and an interrupted export (kill -9, Ctrl-C, full disk, a missing pair file) leaves the previous one intact
and re-runs cleanly.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.io import atomic_write_json, atomic_write_text, read_label_png, write_png
from segbalance.core.jobs.pairs import DEFAULT_EXPORT, EXPORTABLE_STATUSES
from segbalance.db import models as m
from segbalance.db.base import utcnow

MANIFEST = "manifest.json"
PROVENANCE = "provenance.jsonl"
FORMATS = ("cityscapes", "mmseg", "hf")
MMSEG_SPLITS = {"training": "train", "validation": "val"}  # ADE20K's split names -> mmseg's
HF_SPLITS = {"train": "train", "training": "train", "val": "validation", "validation": "validation"}
HF_ROWS_PER_SHARD = 1000
HF_ROWS_PER_GROUP = 32


def staging_paths(out: Path) -> tuple[Path, Path]:
    """(staging, previous) folders beside `out` that an export uses while it swaps the new one in."""
    return out.parent / f".{out.name}.export-partial", out.parent / f".{out.name}.export-old"


def _recover(out: Path) -> None:
    """Finish or undo what an interrupted export left beside `out` (staging folder, half-done swap)."""
    staging, old = staging_paths(out)
    if staging.exists():
        shutil.rmtree(staging)
    if old.exists():
        if out.exists():
            shutil.rmtree(old)  # the new export was already in place
        else:
            os.replace(old, out)  # killed between the two renames: put the previous export back


def _place(src: Path, dst: Path, copy: bool) -> None:
    """Hard-link (or copy) a file into the staging folder."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dst)
            return
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise
    shutil.copyfile(src, dst)


def _png_bytes(arr: np.ndarray, rgb: bool = False) -> bytes:
    if rgb:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise SegbalanceError("cannot encode PNG")
    return buf.tobytes()


class _Writer:
    """One export format: where an original and a generated pair go (all paths relative to the root)."""

    def __init__(self, root: Path, ds: Dataset, copy: bool) -> None:
        self.root, self.ds, self.copy = root, ds, copy
        self.final = root  # where the export will be once swapped in (set by export_dataset)
        self.lut = ds.label_set.id_to_train_lut

    def image(self, src: Path, ds_image: Callable[[], np.ndarray], rel: str) -> None:
        if src.suffix.lower() == ".png":
            _place(src, self.root / rel, self.copy)
        else:  # JPEG photos: stored losslessly as decoded
            write_png(self.root / rel, ds_image(), rgb=True)

    def original(self, ref: SampleRef) -> dict:
        raise NotImplementedError

    def generated(self, pair: m.GeneratedPair, image: Path, label: Path, instance: Path | None) -> dict:
        raise NotImplementedError

    def finish(self) -> dict:
        return {}


class _CityscapesWriter(_Writer):
    def __init__(self, root: Path, ds: Dataset, copy: bool) -> None:
        super().__init__(root, ds, copy)
        self.lists: dict[str, list[str]] = {}

    def _files(self, base: str) -> tuple[str, str, str]:
        return (f"leftImg8bit/{base}_leftImg8bit.png", f"gtFine/{base}_gtFine_labelIds.png",
                f"gtFine/{base}_gtFine_labelTrainIds.png")

    def original(self, ref: SampleRef) -> dict:
        city = ref.label_path.parent.name if self.ds.format == "cityscapes" else "data"
        base = f"{ref.split}/{city}/{ref.id}"
        img_rel, lab_rel, tid_rel = self._files(base)
        self.image(ref.image_path, lambda: self.ds.load_image(ref), img_rel)
        label = self.ds.load_label(ref)
        if ref.label_kind == "labelIds" and ref.label_path.suffix.lower() == ".png":
            _place(ref.label_path, self.root / lab_rel, self.copy)
        else:
            write_png(self.root / lab_rel, label)
        write_png(self.root / tid_rel, self.lut[label])
        if ref.instance_path is not None:
            _place(ref.instance_path, self.root / f"gtFine/{base}_gtFine_instanceIds.png", self.copy)
        self.lists.setdefault(ref.split, []).append(f"{img_rel} {tid_rel}")
        self.lists.setdefault(f"{ref.split}_original", []).append(f"{img_rel} {tid_rel}")
        return {"image": img_rel, "label": lab_rel}

    def generated(self, pair, image, label, instance) -> dict:
        stem = Path(pair.label_path).name.replace("_gtFine_labelIds.png", "")
        base = f"train/job{pair.job_id}/{stem}"
        img_rel, lab_rel, tid_rel = self._files(base)
        _place(image, self.root / img_rel, self.copy)
        _place(label, self.root / lab_rel, self.copy)
        if instance is not None:
            _place(instance, self.root / f"gtFine/{base}_gtFine_instanceIds.png", self.copy)
        write_png(self.root / tid_rel, self.lut[read_label_png(label).astype(np.uint8)])
        self.lists.setdefault("train", []).append(f"{img_rel} {tid_rel}")
        self.lists.setdefault("train_generated", []).append(f"{img_rel} {tid_rel}")
        return {"image": img_rel, "label": lab_rel}

    def finish(self) -> dict:
        for name, lines in self.lists.items():
            atomic_write_text(self.root / f"{name}_list.txt", "\n".join(lines) + "\n")
        return {"lists": {k: f"{k}_list.txt" for k in self.lists}}


class _MmsegWriter(_Writer):
    """mmseg's custom-dataset layout: same stem in img_dir/<split>/ and ann_dir/<split>/, masks in train ids."""

    def __init__(self, root: Path, ds: Dataset, copy: bool) -> None:
        super().__init__(root, ds, copy)
        self.splits: dict[str, int] = {}

    def _put(self, split: str, stem: str) -> tuple[str, str]:
        self.splits[split] = self.splits.get(split, 0) + 1
        return f"img_dir/{split}/{stem}.png", f"ann_dir/{split}/{stem}.png"

    def original(self, ref: SampleRef) -> dict:
        img_rel, ann_rel = self._put(MMSEG_SPLITS.get(ref.split, ref.split), ref.id)
        self.image(ref.image_path, lambda: self.ds.load_image(ref), img_rel)
        write_png(self.root / ann_rel, self.lut[self.ds.load_label(ref)])
        return {"image": img_rel, "label": ann_rel}

    def generated(self, pair, image, label, instance) -> dict:
        stem = Path(pair.label_path).name.replace("_gtFine_labelIds.png", "")
        img_rel, ann_rel = self._put("generated", stem)
        _place(image, self.root / img_rel, self.copy)
        write_png(self.root / ann_rel, self.lut[read_label_png(label).astype(np.uint8)])
        return {"image": img_rel, "label": ann_rel}

    def finish(self) -> dict:
        text = mmseg_config(self.final, self.ds, self.splits)
        atomic_write_text(self.root / "mmseg_config.py", text)
        return {"splits": dict(self.splits), "config": "mmseg_config.py"}


def mmseg_config(root: Path, ds: Dataset, splits: dict[str, int]) -> str:
    """A config fragment (mmseg 1.x) declaring the export as a custom dataset; generated pairs a 2nd train set."""
    classes = [c.name for c in ds.label_set.train_classes]
    palette = [list(c.color) for c in ds.label_set.train_classes]

    def one(split: str, indent: str) -> str:
        return (f"{indent}dict(type=dataset_type, data_root=data_root, metainfo=metainfo, img_suffix='.png', "
                f"seg_map_suffix='.png', reduce_zero_label=False,\n{indent}     data_prefix=dict("
                f"img_path='img_dir/{split}', seg_map_path='ann_dir/{split}'), pipeline=train_pipeline)")

    train_sets = [s for s in ("train", "generated") if s in splits]
    lines = ["# segbalance export: a custom dataset for mmsegmentation 1.x (paste into your config).",
             "# Masks are train ids (255 = ignore). Generated pairs are a separate dataset (img_dir/generated) so",
             "# they can be dropped or weighted (e.g. repeat the train set with RepeatDataset).",
             "dataset_type = 'BaseSegDataset'",
             f"data_root = {str(root)!r}",
             f"metainfo = dict(classes={tuple(classes)!r},",
             f"                palette={palette!r})"]
    if train_sets:
        lines.append("train_dataloader = dict(dataset=dict(type='ConcatDataset', datasets=[")
        lines += [one(s, "    ") + "," for s in train_sets]
        lines.append("]))")
    if "val" in splits:
        lines.append("val_dataloader = dict(dataset=" + one("val", "").replace("train_pipeline", "test_pipeline")
                     + ")")
        lines.append("test_dataloader = val_dataloader")
    return "\n".join(lines) + "\n"


class _HfWriter(_Writer):
    """Parquet shards with Hugging Face Image-typed columns, written with pyarrow row group by row group."""

    def __init__(self, root: Path, ds: Dataset, copy: bool, counts: dict[str, int]) -> None:
        super().__init__(root, ds, copy)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SegbalanceError("--format hf needs pyarrow (pip install 'segbalance[hf]' or pip install pyarrow)") \
                from None
        self.pa, self.pq = pa, pq
        img = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        features = {"id": {"dtype": "string", "_type": "Value"}, "image": {"_type": "Image"},
                    "mask": {"_type": "Image"}, "source": {"dtype": "string", "_type": "Value"},
                    "pair_id": {"dtype": "int64", "_type": "Value"}}
        self.schema = pa.schema([("id", pa.string()), ("image", img), ("mask", img), ("source", pa.string()),
                                 ("pair_id", pa.int64())],
                                metadata={"huggingface": json.dumps({"info": {"features": features}})})
        self.counts = counts  # rows per hf split, known up front for the -of-NNNNN names
        self.rows: dict[str, list[dict]] = {}
        self.seen: dict[str, int] = {}
        self.files: dict[str, list[str]] = {}
        self.writer = None
        self.writer_split: str | None = None

    def _shard_name(self, split: str, k: int) -> str:
        n = max(1, -(-self.counts[split] // HF_ROWS_PER_SHARD))
        return f"data/{split}-{k:05d}-of-{n:05d}.parquet"

    def _add(self, split: str, row: dict) -> str:
        k = self.seen.get(split, 0) // HF_ROWS_PER_SHARD
        name = self._shard_name(split, k)
        self.seen[split] = self.seen.get(split, 0) + 1
        buf = self.rows.setdefault(name, [])
        buf.append(row)
        if len(buf) >= HF_ROWS_PER_GROUP:
            self._flush(name)
        if self.seen[split] % HF_ROWS_PER_SHARD == 0 or self.seen[split] == self.counts[split]:
            self._flush(name, close=True)
        return name

    def _flush(self, name: str, close: bool = False) -> None:
        rows = self.rows.pop(name, [])
        if self.writer is None or self.writer_split != name:
            self._close()
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            self.writer = self.pq.ParquetWriter(self.root / name, self.schema)
            self.writer_split = name
            self.files.setdefault(name.split("/")[1].split("-")[0], []).append(name)
        if rows:
            self.writer.write_table(self.pa.Table.from_pylist(rows, schema=self.schema))
        if close:
            self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.writer_split = None, None

    def original(self, ref: SampleRef) -> dict:
        split = HF_SPLITS.get(ref.split, ref.split)
        if ref.image_path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            img = ref.image_path.read_bytes()  # stored as the original file, decoded by datasets' Image feature
        else:  # pragma: no cover - readers only list PNG/JPEG
            img = _png_bytes(self.ds.load_image(ref), rgb=True)
        mask = _png_bytes(self.lut[self.ds.load_label(ref)])
        name = self._add(split, {"id": ref.id, "image": {"bytes": img, "path": ref.image_path.name},
                                 "mask": {"bytes": mask, "path": f"{ref.id}_mask.png"}, "source": "original",
                                 "pair_id": None})
        return {"image": name, "label": name}

    def generated(self, pair, image, label, instance) -> dict:
        stem = Path(pair.label_path).name.replace("_gtFine_labelIds.png", "")
        mask = _png_bytes(self.lut[read_label_png(label).astype(np.uint8)])
        name = self._add("generated", {"id": stem, "image": {"bytes": image.read_bytes(), "path": image.name},
                                       "mask": {"bytes": mask, "path": f"{stem}_mask.png"}, "source": "generated",
                                       "pair_id": pair.id})
        return {"image": name, "label": name}

    def finish(self) -> dict:
        self._close()
        id2label = {str(c.train_id): c.name for c in self.ds.label_set.train_classes}
        atomic_write_json(self.root / "id2label.json", id2label)
        return {"data_files": {k: v for k, v in self.files.items()}, "id2label": "id2label.json"}


def hf_split(split: str) -> str:
    return HF_SPLITS.get(split, split)


def export_dataset(ws, ds: Dataset, out: str | Path, include: tuple[str, ...] = DEFAULT_EXPORT, *,
                   fmt: str = "cityscapes", copy: bool = False, progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> dict:
    """Write the augmented dataset to `out` in format `fmt`; returns the manifest (also written as manifest.json).

    `out` ends up holding exactly this export: files of pairs no longer included (e.g. rejected since the last
    export) do not survive a re-export, and on any failure the previous export is left as it was.
    """
    out = Path(out).resolve()
    if fmt not in FORMATS:
        raise SegbalanceError(f"--format takes {', '.join(FORMATS)} (got {fmt!r})")
    bad = [s for s in include if s not in EXPORTABLE_STATUSES]
    if bad or not include:
        raise SegbalanceError(f"--include takes {', '.join(EXPORTABLE_STATUSES)} "
                              f"(got {','.join(include) or 'nothing'})")
    if out == ds.root or ds.root in out.parents:
        raise SegbalanceError("export folder must not be inside the dataset", out)
    if ws.path.resolve() == out or out in ws.path.resolve().parents:
        raise SegbalanceError("export folder must not hold the workspace", out)
    try:
        _recover(out)
    except OSError as exc:
        raise SegbalanceError(f"cannot clean up an interrupted export ({exc.strerror})", out) from None
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())):
        raise SegbalanceError("export folder exists and is not empty (and is not an earlier export)", out)
    fp = ds.fingerprint()
    with ws.session() as s:
        jobs = {j.id: j for j in s.scalars(select(m.Job).where(m.Job.kind == "generate"))}
        ok_jobs = [j for j, row in jobs.items() if (row.params or {}).get("fingerprint") == fp]
        pairs = list(s.scalars(select(m.GeneratedPair).where(m.GeneratedPair.job_id.in_(ok_jobs),
                                                               m.GeneratedPair.status.in_(include))
                               .order_by(m.GeneratedPair.job_id, m.GeneratedPair.recipe_index)))
    refs = ds.samples()
    for ref in refs:
        if ref.image_path is None:
            raise SegbalanceError(f"sample {ref.id} has no image", ds.root)
    for p in pairs:
        for rel in (p.image_path, p.label_path):
            if not ws.abs(rel).exists():
                raise SegbalanceError(f"pair {p.id}: file missing (re-run its generate job to repair)", ws.abs(rel))
    staging, old = staging_paths(out)
    total = len(refs) + len(pairs)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)
        if cancel and cancel():
            raise Cancelled()

    try:
        staging.mkdir(parents=True)
        if fmt == "cityscapes":
            writer: _Writer = _CityscapesWriter(staging, ds, copy)
        elif fmt == "mmseg":
            writer = _MmsegWriter(staging, ds, copy)
        else:
            counts: dict[str, int] = {}
            for ref in refs:
                counts[hf_split(ref.split)] = counts.get(hf_split(ref.split), 0) + 1
            if pairs:
                counts["generated"] = len(pairs)
            writer = _HfWriter(staging, ds, copy, counts)
        writer.final = out
        for ref in refs:
            writer.original(ref)
            tick()
        entries = []
        for p in pairs:
            inst = ws.abs(p.instance_path) if p.instance_path and ws.abs(p.instance_path).exists() else None
            src_img, src_lab = ws.abs(p.image_path), ws.abs(p.label_path)
            for src in (src_img, src_lab):
                if not src.exists():  # deleted while the export ran
                    raise SegbalanceError(f"pair {p.id}: file missing (re-run its generate job to repair)", src)
            where = writer.generated(p, src_img, src_lab, inst)
            job = jobs[p.job_id]
            entries.append({"pair_id": p.id, "job_id": p.job_id, "recipe_index": p.recipe_index, **where,
                            "strategy": p.strategy, "source_samples": p.source_samples, "recipe": p.recipe,
                            "classes_added": p.classes_added, "renderer": p.renderer,
                            "checkpoint_sha256": p.checkpoint_sha256, "seed": p.seed, "quality": p.quality,
                            "status": p.status, "image_sha256": p.image_sha256, "label_sha256": p.label_sha256,
                            "plan": (job.params or {}).get("plan")})
            tick()
        extra = writer.finish()
        atomic_write_text(staging / PROVENANCE, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
        atomic_write_json(staging / "classes.json", ds.label_set.to_dict())
        manifest = {"created_at": utcnow().isoformat(), "format": fmt,
                    "dataset": {"path": str(ds.root), "fingerprint": fp, "label_set": ds.label_set.name},
                    "include": list(include), "originals": len(refs), "generated": len(entries),
                    "provenance": PROVENANCE, **extra, "pairs": entries}
        atomic_write_json(staging / MANIFEST, manifest)
        # swap: previous export aside, new one in, previous one gone (_recover finishes an interrupted swap)
        if out.exists():
            os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                raise SegbalanceError("disk full while exporting; nothing was changed there; free space and "
                                      "re-run the same command", out) from None
            raise SegbalanceError(f"cannot write the export ({exc.strerror})", out) from None
        raise
    return manifest
