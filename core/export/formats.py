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

What the user owns is never removed: the manifest carries segbalance's signature and the list of files the
export wrote, a folder is replaced only when it carries that signature, and only the listed files go (a folder
holding anything else is refused). One export at a time per folder (a lock beside it). Files are copied unless
the caller asks for hard links (which share their content with the originals).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.errors import Cancelled, DataError, SegbalanceError
from segbalance.core.io import (
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    jpeg_orientation,
    read_label_png,
    write_png,
)
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


EXPORT_TOOL = "segbalance export"  # the signature that makes a folder an earlier export of ours
MANIFEST_VERSION = 2  # 2: manifest lists every file the export wrote
STAGING_MARK = ".segbalance-staging"  # written first into a staging folder: only a marked one is ever removed


def staging_paths(out: Path) -> tuple[Path, Path]:
    """(staging, previous) folders beside `out` that an export uses while it swaps the new one in."""
    return out.parent / f".{out.name}.export-partial", out.parent / f".{out.name}.export-old"


def lock_path(out: Path) -> Path:
    """The lock file beside `out` that one export at a time holds."""
    return out.parent / f".{out.name}.export-lock"


@contextmanager
def export_lock(out: Path) -> Iterator[None]:
    """Hold the export lock of `out`; a second export into the same folder is refused with one line.

    flock(2) belongs to the open file, so it is released when the process dies (kill -9 included). The file is
    removed on the way out; a waiter that opened it before the removal sees another inode and retries.
    """
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegbalanceError(f"cannot create the export's parent folder ({exc.strerror})", out) from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise SegbalanceError(f"cannot lock the export folder ({exc.strerror})", path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SegbalanceError(f"another export into this folder is running (pid {holder or '?'}); wait for "
                                  f"it to finish, or choose another --out", out) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        os.close(fd)


def _files_under(folder: Path) -> list[str]:
    """Every non-folder entry under `folder` (symlinks included, never followed), as relative POSIX paths."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        d = Path(dirpath)
        for name in filenames + [n for n in dirnames if (d / n).is_symlink()]:
            found.append((d / name).relative_to(folder).as_posix())
    return sorted(found)


def export_files(folder: Path) -> list[str] | None:
    """The files an earlier segbalance export wrote into `folder` (its manifest's list); None when the folder
    is not one (no manifest, another tool's manifest.json, or an export older than the file list)."""
    try:
        man = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(man, dict) or man.get("tool") != EXPORT_TOOL or not isinstance(man.get("files"), list):
        return None
    files = [f for f in man["files"] if isinstance(f, str)]
    # a hand-edited list must not reach outside the folder
    return [f for f in files if f and not Path(f).is_absolute() and ".." not in Path(f).parts]


def _foreign_files(folder: Path) -> list[str]:
    """Files in `folder` that its export did not write (all of them when it is not an export of ours)."""
    files = export_files(folder)
    if files is None:
        return _files_under(folder)
    ours = set(files) | {MANIFEST, STAGING_MARK}  # the mark stays only when killed right after the swap
    return [f for f in _files_under(folder) if f not in ours]


def _remove_export(folder: Path) -> list[str]:
    """Remove the files an export wrote into `folder` and the folders left empty; returns what stays (not ours)."""
    files = export_files(folder)
    if files is None:
        return _files_under(folder)
    for rel in [*files, MANIFEST, STAGING_MARK]:
        p = folder / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
    for dirpath, _dirs, _files in os.walk(folder, topdown=False):
        try:
            os.rmdir(dirpath)  # only empty folders go
        except OSError:
            pass
    return _files_under(folder) if folder.exists() else []


def _remove_staging(staging: Path) -> None:
    """Remove a staging folder this code made (it carries STAGING_MARK); anything else is left and refused."""
    if (staging / STAGING_MARK).exists():
        shutil.rmtree(staging)
        return
    try:
        staging.rmdir()  # killed between mkdir and the mark: empty
    except OSError:
        raise SegbalanceError("is in the way of the export's staging folder and was not made by segbalance; "
                              "move it away", staging) from None


def _recover(out: Path) -> None:
    """Finish or undo what an interrupted export left beside `out` (staging folder, half-done swap)."""
    staging, old = staging_paths(out)
    if staging.exists():
        _remove_staging(staging)
    if old.exists():
        if export_files(old) is None:
            raise SegbalanceError("is in the way of the export's swap folder and is not an export of segbalance; "
                                  "move it away", old)
        if out.exists():
            _keep_leftovers(old, out, _remove_export(old))  # the new export was already in place
        else:
            os.replace(old, out)  # killed between the two renames: put the previous export back


def _keep_leftovers(old: Path, out: Path, leftovers: list[str]) -> None:
    """Files that were not ours in a replaced export (added while it was swapped out) go back into `out`."""
    for rel in leftovers:
        dst = out / rel
        if not dst.exists() and not dst.is_symlink():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old / rel, dst)
    for dirpath, _dirs, _files in os.walk(old, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
    if old.exists():
        raise SegbalanceError(f"the earlier export's folder kept files that were not written by segbalance and "
                              f"clash with the new export's; they are in {old}", out)


def _place(src: Path, dst: Path, link: bool) -> None:
    """Copy a file into the staging folder (its content, also through a symlink), or hard-link it when asked.

    A hard link shares its content with the original: editing the exported file edits the dataset, so it is
    only made when the user asked for it (--link) and falls back to a copy across file systems.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(os.path.realpath(src), dst)  # link() of a symlink links the symlink: a dangling one here
            return
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise
    shutil.copyfile(src, dst, follow_symlinks=True)


def _png_bytes(arr: np.ndarray, rgb: bool = False) -> bytes:
    if rgb:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise SegbalanceError("cannot encode PNG")
    return buf.tobytes()


def list_safe(name: str, path: Path) -> str:
    """`name` as it goes into exported file names: list files hold "image label" lines split on whitespace, so
    whitespace (and '%', to stay reversible) is percent-encoded; a line break or other control character is
    refused (a name holding one is a mistake, and no line-based list can hold it)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise DataError(f"file name {name!r} holds a line break or another control character, which the export's "
                        "list files cannot hold; rename the file", path)
    return "".join("".join(f"%{b:02X}" for b in c.encode()) if c.isspace() or c == "%" else c for c in name)


class _Writer:
    """One export format: where an original and a generated pair go (all paths relative to the root)."""

    def __init__(self, root: Path, ds: Dataset, link: bool) -> None:
        self.root, self.ds, self.link = root, ds, link
        self.final = root  # where the export will be once swapped in (set by export_dataset)
        self.lut = ds.label_set.id_to_train_lut

    def image(self, src: Path, ds_image: Callable[[], np.ndarray], rel: str) -> None:
        if src.suffix.lower() == ".png":
            _place(src, self.root / rel, self.link)
        else:  # JPEG photos: stored losslessly as decoded
            write_png(self.root / rel, ds_image(), rgb=True)

    def original(self, ref: SampleRef) -> dict:
        raise NotImplementedError

    def generated(self, pair: m.GeneratedPair, image: Path, label: Path, instance: Path | None) -> dict:
        raise NotImplementedError

    def finish(self) -> dict:
        return {}


class _CityscapesWriter(_Writer):
    def __init__(self, root: Path, ds: Dataset, link: bool) -> None:
        super().__init__(root, ds, link)
        self.lists: dict[str, list[str]] = {}

    def _files(self, base: str) -> tuple[str, str, str]:
        return (f"leftImg8bit/{base}_leftImg8bit.png", f"gtFine/{base}_gtFine_labelIds.png",
                f"gtFine/{base}_gtFine_labelTrainIds.png")

    def original(self, ref: SampleRef) -> dict:
        city = ref.label_path.parent.name if self.ds.format == "cityscapes" else "data"
        city = list_safe(city, ref.label_path.parent)
        base = f"{ref.split}/{city}/{list_safe(ref.id, ref.label_path)}"
        img_rel, lab_rel, tid_rel = self._files(base)
        self.image(ref.image_path, lambda: self.ds.load_image(ref), img_rel)
        label = self.ds.load_label(ref)
        if ref.label_kind == "labelIds" and ref.label_path.suffix.lower() == ".png":
            _place(ref.label_path, self.root / lab_rel, self.link)
        else:
            write_png(self.root / lab_rel, label)
        write_png(self.root / tid_rel, self.lut[label])
        if ref.instance_path is not None:
            _place(ref.instance_path, self.root / f"gtFine/{base}_gtFine_instanceIds.png", self.link)
        self.lists.setdefault(ref.split, []).append(f"{img_rel} {tid_rel}")
        self.lists.setdefault(f"{ref.split}_original", []).append(f"{img_rel} {tid_rel}")
        return {"image": img_rel, "label": lab_rel}

    def generated(self, pair, image, label, instance) -> dict:
        stem = Path(pair.label_path).name.replace("_gtFine_labelIds.png", "")
        base = f"train/job{pair.job_id}/{stem}"
        img_rel, lab_rel, tid_rel = self._files(base)
        _place(image, self.root / img_rel, self.link)
        _place(label, self.root / lab_rel, self.link)
        if instance is not None:
            _place(instance, self.root / f"gtFine/{base}_gtFine_instanceIds.png", self.link)
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

    def __init__(self, root: Path, ds: Dataset, link: bool) -> None:
        super().__init__(root, ds, link)
        self.splits: dict[str, int] = {}

    def _put(self, split: str, stem: str) -> tuple[str, str]:
        self.splits[split] = self.splits.get(split, 0) + 1
        return f"img_dir/{split}/{stem}.png", f"ann_dir/{split}/{stem}.png"

    def original(self, ref: SampleRef) -> dict:
        img_rel, ann_rel = self._put(MMSEG_SPLITS.get(ref.split, ref.split), list_safe(ref.id, ref.label_path))
        self.image(ref.image_path, lambda: self.ds.load_image(ref), img_rel)
        write_png(self.root / ann_rel, self.lut[self.ds.load_label(ref)])
        return {"image": img_rel, "label": ann_rel}

    def generated(self, pair, image, label, instance) -> dict:
        stem = Path(pair.label_path).name.replace("_gtFine_labelIds.png", "")
        img_rel, ann_rel = self._put("generated", stem)
        _place(image, self.root / img_rel, self.link)
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

    def __init__(self, root: Path, ds: Dataset, link: bool, counts: dict[str, int]) -> None:
        super().__init__(root, ds, link)
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
        suffix = ref.image_path.suffix.lower()
        if suffix == ".png" or (suffix in (".jpg", ".jpeg") and jpeg_orientation(ref.image_path) == 1):
            img = ref.image_path.read_bytes()  # stored as the original file, decoded by datasets' Image feature
        else:  # a rotating EXIF tag (a reader may apply it; the label map matches the stored pixels): PNG
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
                   fmt: str = "cityscapes", link: bool = False, progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> dict:
    """Write the augmented dataset to `out` in format `fmt`; returns the manifest (also written as manifest.json).

    `out` ends up holding exactly this export: files of pairs no longer included (e.g. rejected since the last
    export) do not survive a re-export, and on any failure the previous export is left as it was. `out` must be
    empty, new, or an earlier export of ours holding nothing but its own files. `link` hard-links PNG originals
    and pair files instead of copying them.
    """
    out = Path(out).resolve()
    if fmt not in FORMATS:
        raise SegbalanceError(f"--format takes {', '.join(FORMATS)} (got {fmt!r})")
    bad = [s for s in include if s not in EXPORTABLE_STATUSES]
    if bad or not include:
        raise SegbalanceError(f"--include takes {', '.join(EXPORTABLE_STATUSES)} "
                              f"(got {','.join(include) or 'nothing'})")
    root = ds.root.resolve()
    if out == root or root in out.parents:
        raise SegbalanceError("export folder must not be inside the dataset", out)
    if out in root.parents:
        raise SegbalanceError(f"export folder must not hold the dataset ({root})", out)
    if ws.path.resolve() == out or out in ws.path.resolve().parents:
        raise SegbalanceError("export folder must not hold the workspace", out)
    with export_lock(out):
        return _export_locked(ws, ds, out, include, fmt, link, progress, cancel)


def _legacy_export(folder: Path) -> bool:
    """True for an export written before manifests carried the signature and the file list."""
    try:
        man = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(man, dict) and "tool" not in man and {"format", "provenance", "pairs"} <= set(man)


def _check_target(out: Path) -> None:
    """Refuse a target that is not empty, new, or an earlier export holding only the files it wrote."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise SegbalanceError("export folder exists and is not a folder", out)
    if not any(out.iterdir()):
        return
    if export_files(out) is None:
        what = ("an export by an older segbalance, whose manifest does not list the files it wrote: delete it "
                "yourself if it can go" if _legacy_export(out) else
                "its manifest.json was not written by segbalance" if (out / MANIFEST).exists()
                else "it has no segbalance manifest")
        raise SegbalanceError(f"export folder exists and is not empty, and is not an earlier export ({what}); "
                              "nothing was changed; choose an empty or new folder", out)
    foreign = _foreign_files(out)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise SegbalanceError(f"export folder holds files the earlier export did not write ({foreign[0]}{more}); "
                              "nothing was changed; move them out or choose another folder", out)


def _export_locked(ws, ds: Dataset, out: Path, include: tuple[str, ...], fmt: str, link: bool,
                   progress: Callable[[int, int], None] | None, cancel: Callable[[], bool] | None) -> dict:
    try:
        _recover(out)
    except OSError as exc:
        raise SegbalanceError(f"cannot clean up an interrupted export ({exc.strerror})", out) from None
    _check_target(out)
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
        if fmt != "hf":  # names checked before anything is written
            list_safe(ref.id, ref.label_path)
            list_safe(ref.label_path.parent.name, ref.label_path.parent)
    for p in pairs:
        _check_pair_files(ws, p)
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

    made_staging = False
    try:
        staging.mkdir(parents=True)
        made_staging = True
        (staging / STAGING_MARK).write_bytes(b"")
        if fmt == "cityscapes":
            writer: _Writer = _CityscapesWriter(staging, ds, link)
        elif fmt == "mmseg":
            writer = _MmsegWriter(staging, ds, link)
        else:
            counts: dict[str, int] = {}
            for ref in refs:
                counts[hf_split(ref.split)] = counts.get(hf_split(ref.split), 0) + 1
            if pairs:
                counts["generated"] = len(pairs)
            writer = _HfWriter(staging, ds, link, counts)
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
        manifest = {"tool": EXPORT_TOOL, "manifest_version": MANIFEST_VERSION,
                    "created_at": utcnow().isoformat(), "format": fmt,
                    "dataset": {"path": str(ds.root), "fingerprint": fp, "label_set": ds.label_set.name},
                    "include": list(include), "originals": len(refs), "generated": len(entries),
                    "provenance": PROVENANCE, "linked": link, **extra, "pairs": entries,
                    "files": [f for f in _files_under(staging) if f != STAGING_MARK]}
        atomic_write_json(staging / MANIFEST, manifest)
        # swap: previous export aside, new one in, then only the previous export's own files removed
        # (_recover finishes an interrupted swap)
        replacing = out.exists() and any(out.iterdir())
        if replacing:
            os.replace(out, old)
        os.replace(staging, out)  # onto a missing or empty folder
        (out / STAGING_MARK).unlink()
    except BaseException as exc:
        if made_staging and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)  # made by this call: everything in it is ours
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                raise SegbalanceError("disk full while exporting; nothing was changed there; free space and "
                                      "re-run the same command", out) from None
            raise SegbalanceError(f"cannot write the export ({exc.strerror})", out) from None
        raise
    if replacing:
        _keep_leftovers(old, out, _remove_export(old))
    return manifest


def _check_pair_files(ws, p: m.GeneratedPair) -> None:
    """A pair's files exist and are the ones generated (sha256 as recorded), so provenance tells the truth."""
    for rel, want in ((p.image_path, p.image_sha256), (p.label_path, p.label_sha256)):
        path = ws.abs(rel)
        if not path.exists():
            raise SegbalanceError(f"pair {p.id}: file missing (re-run its generate job to repair)", path)
        if want and file_sha256(path) != want:
            raise SegbalanceError(f"pair {p.id}: file changed since it was generated (sha256 differs from the "
                                  f"workspace record); restore it, or reject the pair and re-run its generate "
                                  f"job", path)
