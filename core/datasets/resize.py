"""A resized copy of any dataset in the generic folder layout, for protocols that train below full size.

A CPU cannot train PSPNet and pix2pixHD on CamVid's 480x360 frames at a schedule that lets rare classes show
within hours; the CamVid protocol trains and evaluates at 256x192 instead (the same 4:3 frame), like the
pilot that sized it. Photos are resized with INTER_AREA (the anti-aliased reduction), label maps with
INTER_NEAREST (no invented ids). The copy keeps the source's splits, sample ids and label set (classes.json),
so every command reads it like the original.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2

from segbalance.core.datasets.base import Dataset
from segbalance.core.errors import Cancelled, DataError
from segbalance.core.io import atomic_write_json, write_png

MARKER = ".complete.json"


def resized_copy(ds: Dataset, out: str | Path, size: tuple[int, int], *,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> Path:
    """`ds` at (W, H) in `out` (images/{split}, masks/{split}, classes.json); reused when already complete."""
    out = Path(out)
    w, h = size
    want = {"source": str(ds.root), "fingerprint": ds.fingerprint(), "size": [w, h]}
    marker = out / MARKER
    if marker.exists():
        try:
            have = json.loads(marker.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the resized copy's marker ({exc})", marker) from None
        if have == want:
            return out
        raise DataError(f"this folder holds a {have.get('size')} copy of {have.get('source')} "
                        f"(fingerprint {have.get('fingerprint')}), not a {[w, h]} copy of {ds.root}; "
                        "use a fresh output folder", out)
    refs = ds.samples()
    for i, ref in enumerate(refs):
        if cancel is not None and cancel():
            raise Cancelled("resized copy cancelled")
        lab = cv2.resize(ds.load_label(ref), (w, h), interpolation=cv2.INTER_NEAREST)
        img = cv2.resize(ds.load_image(ref), (w, h), interpolation=cv2.INTER_AREA)
        write_png(out / "images" / ref.split / f"{ref.id}.png", img, rgb=True)
        write_png(out / "masks" / ref.split / f"{ref.id}.png", lab)
        if progress is not None:
            progress(i + 1, len(refs))
    atomic_write_json(out / "classes.json", ds.label_set.to_dict())
    atomic_write_json(marker, want)
    return out
