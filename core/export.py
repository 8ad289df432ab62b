"""Export an augmented dataset: the originals plus generated pairs, in the Cityscapes layout, with provenance.

Generated pairs go into an extra "city" per job (job<N>) of the train split. Every sample also gets a
*_gtFine_labelTrainIds.png, and train_list.txt / val_list.txt hold "image label" lines (relative
paths), the list form common PSPNet trainers read, so the export trains unchanged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import select

from segbalance.core.datasets import Dataset
from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.io import atomic_write_json, atomic_write_text, read_label_png, write_png
from segbalance.db import models as m
from segbalance.db.base import utcnow

MANIFEST = "manifest.json"


def _place(src: Path, dst: Path, copy: bool) -> None:
    """Hard-link (or copy) a file; an existing destination is replaced."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if not copy:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def export_dataset(ws, ds: Dataset, out: str | Path, include: tuple[str, ...] = ("pending", "accepted"), *,
                   copy: bool = False, progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> dict:
    """Write the augmented dataset under `out`; returns the manifest (also written as manifest.json)."""
    out = Path(out).resolve()
    bad = [s for s in include if s not in ("pending", "accepted", "rejected")]
    if bad or not include:
        raise SegbalanceError(f"--include takes pending, accepted, rejected (got {','.join(include) or 'nothing'})")
    if out == ds.root or ds.root in out.parents:
        raise SegbalanceError("export folder must not be inside the dataset", out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise SegbalanceError("export folder exists and is not empty (and is not an earlier export)", out)
    fp = ds.fingerprint()
    with ws.session() as s:
        jobs = {j.id: j for j in s.scalars(select(m.Job).where(m.Job.kind == "generate"))}
        ok_jobs = [j for j, row in jobs.items() if (row.params or {}).get("fingerprint") == fp]
        pairs = list(s.scalars(select(m.GeneratedPair).where(m.GeneratedPair.job_id.in_(ok_jobs),
                                                               m.GeneratedPair.status.in_(include))
                               .order_by(m.GeneratedPair.job_id, m.GeneratedPair.recipe_index)))
    lut = ds.label_set.id_to_train_lut
    refs = ds.samples()
    total = len(refs) + len(pairs)
    lists: dict[str, list[str]] = {}
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)
        if cancel and cancel():
            raise Cancelled()

    for ref in refs:
        city = ref.label_path.parent.name if ds.format == "cityscapes" else "data"
        base = f"{ref.split}/{city}/{ref.id}"
        img_rel = f"leftImg8bit/{base}_leftImg8bit.png"
        lab_rel = f"gtFine/{base}_gtFine_labelIds.png"
        tid_rel = f"gtFine/{base}_gtFine_labelTrainIds.png"
        if ref.image_path is None:
            raise SegbalanceError(f"sample {ref.id} has no image", ds.root)
        if ref.image_path.suffix.lower() == ".png":
            _place(ref.image_path, out / img_rel, copy)
        else:
            write_png(out / img_rel, ds.load_image(ref), rgb=True)
        label = ds.load_label(ref)
        if ref.label_kind == "labelIds" and ref.label_path.suffix.lower() == ".png":
            _place(ref.label_path, out / lab_rel, copy)
        else:
            write_png(out / lab_rel, label)
        write_png(out / tid_rel, lut[label])
        if ref.instance_path is not None:
            _place(ref.instance_path, out / f"gtFine/{base}_gtFine_instanceIds.png", copy)
        lists.setdefault(ref.split, []).append(f"{img_rel} {tid_rel}")
        tick()
    entries = []
    for p in pairs:
        city = f"job{p.job_id}"
        stem = Path(p.label_path).name.replace("_gtFine_labelIds.png", "")
        base = f"train/{city}/{stem}"
        img_rel = f"leftImg8bit/{base}_leftImg8bit.png"
        lab_rel = f"gtFine/{base}_gtFine_labelIds.png"
        tid_rel = f"gtFine/{base}_gtFine_labelTrainIds.png"
        src_lab = ws.abs(p.label_path)
        for src in (ws.abs(p.image_path), src_lab):
            if not src.exists():
                raise SegbalanceError(f"pair {p.id}: file missing (re-run its generate job to repair)", src)
        _place(ws.abs(p.image_path), out / img_rel, copy)
        _place(src_lab, out / lab_rel, copy)
        if p.instance_path and ws.abs(p.instance_path).exists():
            _place(ws.abs(p.instance_path), out / f"gtFine/{base}_gtFine_instanceIds.png", copy)
        write_png(out / tid_rel, lut[read_label_png(src_lab).astype(np.uint8)])
        lists.setdefault("train", []).append(f"{img_rel} {tid_rel}")
        job = jobs[p.job_id]
        entries.append({"pair_id": p.id, "job_id": p.job_id, "recipe_index": p.recipe_index, "image": img_rel,
                        "label": lab_rel, "strategy": p.strategy, "source_samples": p.source_samples,
                        "classes_added": p.classes_added, "renderer": p.renderer,
                        "checkpoint_sha256": p.checkpoint_sha256, "seed": p.seed, "quality": p.quality,
                        "status": p.status, "image_sha256": p.image_sha256, "label_sha256": p.label_sha256,
                        "plan": (job.params or {}).get("plan")})
        tick()
    for split, lines in lists.items():
        atomic_write_text(out / f"{split}_list.txt", "\n".join(lines) + "\n")
    manifest = {"created_at": utcnow().isoformat(), "dataset": {"path": str(ds.root), "fingerprint": fp,
                                                                 "label_set": ds.label_set.name},
                "include": list(include), "originals": len(refs), "generated": len(entries),
                "lists": {k: f"{k}_list.txt" for k in lists}, "pairs": entries}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest
