"""Cityscapes layout: leftImg8bit/{split}/{city}/*_leftImg8bit.png + gtFine/{split}/{city}/*_gtFine_*.png."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segbalance.core.datasets.base import Dataset, SampleRef
from segbalance.core.datasets.labels import CITYSCAPES, LabelSet
from segbalance.core.errors import DataError

# the layout's file names, defined once: every reader and writer of Cityscapes folders uses these
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
COLOR_SUFFIX = "_gtFine_color.png"
LABEL_SUFFIXES = ((LABEL_SUFFIX, "labelIds"), (TRAIN_ID_SUFFIX, "trainIds"))


@dataclass(frozen=True)
class CityscapesPaths:
    """Where one sample's files go in a Cityscapes folder (the one writer of the layout builds on it)."""

    image: Path
    label: Path
    train_ids: Path
    instance: Path
    color: Path


def cityscapes_paths(root: str | Path, split: str, city: str, stem: str) -> CityscapesPaths:
    """The files of sample `stem` of `city` in `split`: leftImg8bit/... and gtFine/..."""
    root = Path(root)
    gt = root / "gtFine" / split / city
    return CityscapesPaths(root / "leftImg8bit" / split / city / (stem + IMAGE_SUFFIX), gt / (stem + LABEL_SUFFIX),
                           gt / (stem + TRAIN_ID_SUFFIX), gt / (stem + INSTANCE_SUFFIX), gt / (stem + COLOR_SUFFIX))


def write_cityscapes_sample(paths: CityscapesPaths, *, image=None, label=None, instance=None, train_ids=None,
                            color=None) -> None:
    """Write the given arrays (RGB image, label ids, uint16 instance ids, train ids, RGB colour) atomically."""
    from segbalance.core.io import write_png

    if image is not None:
        write_png(paths.image, image, rgb=True)
    if label is not None:
        write_png(paths.label, label)
    if instance is not None:
        write_png(paths.instance, instance)
    if train_ids is not None:
        write_png(paths.train_ids, train_ids)
    if color is not None:
        write_png(paths.color, color, rgb=True)


def looks_like_cityscapes(root: Path) -> bool:
    return (root / "gtFine").is_dir()


class CityscapesDataset(Dataset):
    """Reads the official layout; labelIds preferred, labelTrainIds accepted. A classes.json beside gtFine/
    (what `export --format cityscapes` writes) names the label set, so an exported CamVid or custom dataset
    reads back with its own classes; without one the classes are Cityscapes'."""

    format = "cityscapes"

    def __init__(self, root: str | Path, label_set: LabelSet | None = None) -> None:
        if label_set is None:
            own = Path(root) / "classes.json"
            label_set = LabelSet.from_json(own) if own.is_file() else CITYSCAPES
        super().__init__(root, label_set)

    def _scan(self) -> dict[str, list[SampleRef]]:
        gt_root = self.root / "gtFine"
        img_root = self.root / "leftImg8bit"
        if not gt_root.is_dir():
            raise DataError("not a Cityscapes folder: expected gtFine/{split}/{city}/", self.root)
        out: dict[str, list[SampleRef]] = {}
        try:
            splits = sorted(d.name for d in os.scandir(gt_root) if d.is_dir())
        except OSError as exc:
            raise DataError(f"cannot read folder ({exc.strerror})", gt_root) from None
        for split in splits:
            refs: list[SampleRef] = []
            for city_dir in sorted(p for p in (gt_root / split).iterdir() if p.is_dir()):
                try:
                    names = os.listdir(city_dir)
                except OSError as exc:
                    raise DataError(f"cannot read folder ({exc.strerror})", city_dir) from None
                nameset = set(names)
                stems: dict[str, tuple[str, str]] = {}
                for suffix, kind in LABEL_SUFFIXES:
                    for n in names:
                        if n.endswith(suffix):
                            stem = n[: -len(suffix)]
                            stems.setdefault(stem, (n, kind))
                for stem in sorted(stems):
                    fname, kind = stems[stem]
                    img = img_root / split / city_dir.name / (stem + IMAGE_SUFFIX)
                    if not img.exists():
                        raise DataError(f"label has no image (expected {img})", city_dir / fname)
                    inst = stem + INSTANCE_SUFFIX
                    refs.append(
                        SampleRef(
                            id=stem,
                            split=split,
                            image_path=img,
                            label_path=city_dir / fname,
                            instance_path=city_dir / inst if inst in nameset else None,
                            label_kind=kind,
                        )
                    )
            # an image whose label is missing is as much an error as the reverse
            img_split = img_root / split
            if img_split.is_dir():
                have = {r.id for r in refs}
                for city_dir in sorted(p for p in img_split.iterdir() if p.is_dir()):
                    for n in sorted(os.listdir(city_dir)):
                        if n.endswith(IMAGE_SUFFIX) and n[: -len(IMAGE_SUFFIX)] not in have:
                            raise DataError(
                                f"image has no label (expected gtFine/{split}/{city_dir.name}/"
                                f"{n[: -len(IMAGE_SUFFIX)]}_gtFine_labelIds.png)",
                                city_dir / n,
                            )
            if refs:
                out[split] = refs
        if not out:
            raise DataError("Cityscapes folder holds no *_gtFine_labelIds.png files", gt_root)
        return out
