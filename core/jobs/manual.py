"""Manual pairs: a label map painted in the editor plus its rendering, stored like any generated pair."""

from __future__ import annotations

import uuid

import numpy as np

from segbalance.core.datasets.stats import pixel_counts
from segbalance.core.errors import DataError
from segbalance.core.io import file_sha256, write_png
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from segbalance.db.base import utcnow


def add_manual_pair(
    ws: Workspace,
    label: np.ndarray,
    image: np.ndarray,
    instance: np.ndarray | None = None,
    *,
    renderer: str = "pix2pixhd",
    checkpoint_sha256: str | None = None,
    source_key: str | None = None,
    source_label: np.ndarray | None = None,
    note: str | None = None,
) -> int:
    """Store a painted label map and its rendered image as a GeneratedPair with strategy "manual";
    returns the pair id. Files are written first, then the Job (kind "manual") and pair rows in one
    transaction, so a crash never leaves a row without its files."""
    if label.ndim != 2 or image.shape[:2] != label.shape or image.ndim != 3:
        raise DataError(f"rendering {image.shape[:2]} does not match the label map {label.shape}")
    stem = f"manual_{utcnow():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"
    folder = ws.subdir("generated", "manual", stem)
    lab_p = folder / f"{stem}_gtFine_labelIds.png"
    img_p = folder / f"{stem}_leftImg8bit.png"
    write_png(lab_p, np.ascontiguousarray(label, np.uint8))
    write_png(img_p, np.ascontiguousarray(image[..., :3], np.uint8), rgb=True)
    inst_p = None
    if instance is not None:
        inst_p = folder / f"{stem}_gtFine_instanceIds.png"
        write_png(inst_p, instance.astype(np.uint16))
    counts = pixel_counts(label)
    added: list[int] = []
    if source_label is not None and source_label.shape == label.shape:
        before = pixel_counts(source_label)
        added = [int(i) for i in np.flatnonzero(counts > before)]
    now = utcnow()
    with ws.session() as s, s.begin():
        job = m.Job(
            kind="manual",
            params={"source": source_key, "note": note},
            status="done",
            done=1,
            total=1,
            started_at=now,
            finished_at=now,
            message="painted in the label-map editor",
        )
        s.add(job)
        s.flush()
        pair = m.GeneratedPair(
            job_id=job.id,
            recipe_index=0,
            recipe={"strategy": "manual", "source": source_key, "note": note},
            strategy="manual",
            source_samples=[source_key] if source_key else [],
            classes_added=added,
            image_path=ws.rel(img_p),
            label_path=ws.rel(lab_p),
            instance_path=ws.rel(inst_p) if inst_p else None,
            image_sha256=file_sha256(img_p),
            label_sha256=file_sha256(lab_p),
            renderer=renderer,
            checkpoint_sha256=checkpoint_sha256,
            pixel_counts={str(i): int(c) for i, c in enumerate(counts) if c},
            status="pending",
        )
        s.add(pair)
        s.flush()
        return pair.id
