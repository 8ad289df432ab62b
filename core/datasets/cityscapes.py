"""Cityscapes layout: leftImg8bit/{split}/{city}/*_leftImg8bit.png + gtFine/{split}/{city}/*_gtFine_*.png."""

from __future__ import annotations

import os
from pathlib import Path

from segbalance.core.datasets.base import Dataset, SampleRef
from segbalance.core.errors import DataError
from segbalance.core.labels import CITYSCAPES, LabelSet

IMG_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = (("_gtFine_labelIds.png", "labelIds"), ("_gtFine_labelTrainIds.png", "trainIds"))
INST_SUFFIX = "_gtFine_instanceIds.png"


def looks_like_cityscapes(root: Path) -> bool:
    return (root / "gtFine").is_dir()


class CityscapesDataset(Dataset):
    """Reads the official layout; labelIds preferred, labelTrainIds accepted."""

    format = "cityscapes"

    def __init__(self, root: str | Path, label_set: LabelSet = CITYSCAPES) -> None:
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
                    img = img_root / split / city_dir.name / (stem + IMG_SUFFIX)
                    if not img.exists():
                        raise DataError(f"label has no image (expected {img})", city_dir / fname)
                    inst = stem + INST_SUFFIX
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
                        if n.endswith(IMG_SUFFIX) and n[: -len(IMG_SUFFIX)] not in have:
                            raise DataError(
                                f"image has no label (expected gtFine/{split}/{city_dir.name}/"
                                f"{n[: -len(IMG_SUFFIX)]}_gtFine_labelIds.png)",
                                city_dir / n,
                            )
            if refs:
                out[split] = refs
        if not out:
            raise DataError("Cityscapes folder holds no *_gtFine_labelIds.png files", gt_root)
        return out
