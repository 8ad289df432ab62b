"""The label-to-image score of a renderer: segment its images with a model trained on real data.

score = mIoU of the segmenter's predictions on rendered images against the label maps they were rendered
from (counts summed over all images, as a val mIoU is). Two ceilings put it in scale: the same segmenter
on the real val images (what real photos of these maps would score) and the oracle renderer's score (the
sample data's own painter: a perfect generator for the built-in dataset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from segbalance.core.errors import Cancelled, DataError
from segbalance.core.io import read_label_png, read_png, write_png
from segbalance.core.seg.metrics import image_counts, iou_from_counts
from segbalance.core.seg.quality import SegScorer

Progress = Callable[[int, int], None]


def _result(counts: np.ndarray, class_names: Sequence[str]) -> dict:
    iou = iou_from_counts(counts.sum(0)) if len(counts) else np.full(len(class_names), np.nan)
    valid = iou[~np.isnan(iou)]
    return {"miou": float(valid.mean()) if valid.size else None,
            "per_class": {n: (None if np.isnan(v) else float(v)) for n, v in zip(class_names, iou, strict=True)},
            "n_images": int(len(counts)), "image_counts": counts}


def score_images(scorer: SegScorer, pairs: Iterable[tuple[np.ndarray, np.ndarray]], total: int, *,
                 progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                 batch: int = 8) -> dict:
    """Score (RGB image, label-id map) pairs: {"miou", "per_class", "n_images", "image_counts"}."""
    ls = scorer.label_set
    lut = ls.id_to_train_lut
    n_cls = ls.num_train_classes
    rows: list[np.ndarray] = []
    buf_img: list[np.ndarray] = []
    buf_lab: list[np.ndarray] = []

    def flush() -> None:
        for pred, lab in zip(scorer.predict(buf_img), buf_lab, strict=True):
            if pred.shape != lab.shape:
                raise DataError(f"label map is {lab.shape[1]}x{lab.shape[0]} but its image is "
                                f"{pred.shape[1]}x{pred.shape[0]}")
            rows.append(image_counts(pred, lut[lab], n_cls))
        buf_img.clear()
        buf_lab.clear()
        if progress:
            progress(len(rows), total)

    if progress:
        progress(0, total)
    for img, lab in pairs:
        if cancel and cancel():
            raise Cancelled()
        buf_img.append(img)
        buf_lab.append(np.asarray(lab, np.uint8))
        if len(buf_img) >= batch:
            flush()
    if buf_img:
        flush()
    names = [c.name for c in ls.train_classes]
    return _result(np.stack(rows) if rows else np.zeros((0, n_cls, 3), np.int64), names)


def score_real(scorer: SegScorer, ds, split: str = "val", *, max_images: int | None = None, **kw) -> dict:
    """The ceiling: the segmenter on the dataset's own images."""
    refs = ds.samples(split)[: max_images or None]
    return score_images(scorer, ((ds.load_image(r), ds.load_label(r)) for r in refs), len(refs), **kw)


def score_renderer(scorer: SegScorer, ds, renderer, split: str = "val", *, max_images: int | None = None,
                   seed: int = 0, **kw) -> dict:
    """A renderer on the dataset's real label maps: how well its images carry those maps."""
    from segbalance.core.render.interface import RenderItem

    refs = ds.samples(split)[: max_images or None]

    def gen():
        for i, r in enumerate(refs):
            lab = ds.load_label(r)
            renderer.reseed(seed + i)
            (img,) = renderer.render([RenderItem(lab, ds.load_instance(r))])
            yield img, lab

    return score_images(scorer, gen(), len(refs), **kw)


def score_pairs(scorer: SegScorer, pairs: Sequence[dict], root: str | Path, **kw) -> dict:
    """Generated pairs of a job (rows of `list_pairs`; paths relative to the workspace `root`)."""
    root = Path(root)

    def gen():
        for p in pairs:
            yield read_png(root / p["image"], color=True), read_label_png(root / p["label"])

    return score_images(scorer, gen(), len(pairs), **kw)


def pair_montage(path: str | Path, pairs: Sequence[dict], root: str | Path, ds, *, rows: int = 6,
                 height: int = 128) -> Path:
    """A PNG of `rows` pairs side by side: colour label map | render | the original the recipe started from.

    Lets a user see at a glance whether the renders look like the data they are meant to add to.
    """
    root = Path(root)
    palette = ds.label_set.palette
    by_id = {r.id: r for r in ds.samples()}
    lines = []
    for p in list(pairs)[:rows]:
        lab = read_label_png(root / p["label"])
        img = read_png(root / p["image"], color=True)
        src = next((by_id[s] for s in p.get("source_samples") or [] if s in by_id), None)
        orig = ds.load_image(src) if src is not None and src.image_path else np.zeros_like(img)
        tiles = []
        for t in (palette[lab], img, orig):
            h, w = t.shape[:2]
            t = t if h == height else _resize(t, (round(w * height / h), height))
            tiles.append(t)
        width = max(t.shape[1] for t in tiles)
        tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
        sep = np.full((height, 4, 3), 255, np.uint8)
        lines.append(np.concatenate([tiles[0], sep, tiles[1], sep, tiles[2]], axis=1))
    if not lines:
        raise DataError("no pairs to show")
    sep_row = np.full((4, lines[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([x for line in lines for x in (line, sep_row)][:-1], axis=0)
    out = Path(path)
    write_png(out, grid, rgb=True)
    return out


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST)
