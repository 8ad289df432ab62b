"""CamVid as SegNet's tutorial distributes it: {split}/X.png + {split}annot/X.png, for train, val and test.

Label maps hold one index per pixel (0 sky ... 10 bicyclist, 11 unlabelled, ignored). The files carry no
class list, so the label set is built in (core.datasets.labels.CAMVID). There are no instance maps: layers
are 8-connected regions of each class (core.recombine.layers.decompose), so two touching pedestrians are
one layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from segbalance.core.datasets.base import Dataset, SampleRef
from segbalance.core.datasets.labels import CAMVID, LabelSet
from segbalance.core.errors import DataError

SPLITS = ("train", "val", "test")
ANNOT_SUFFIX = "annot"  # trainannot/, valannot/, testannot/
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
def looks_like_camvid(root: Path) -> bool:
    return (root / "train").is_dir() and (root / ("train" + ANNOT_SUFFIX)).is_dir()


class CamVidDataset(Dataset):
    """SegNet's CamVid folder read in place; any of its three splits may be missing except train."""

    format = "camvid"

    def __init__(self, root: str | Path, label_set: LabelSet = CAMVID) -> None:
        super().__init__(root, label_set)

    def _scan(self) -> dict[str, list[SampleRef]]:
        out: dict[str, list[SampleRef]] = {}
        for split in SPLITS:
            idir, adir = self.root / split, self.root / (split + ANNOT_SUFFIX)
            if not adir.is_dir():
                continue
            try:
                anns = sorted(n for n in os.listdir(adir) if n.lower().endswith(".png"))
                images = {Path(n).stem: n for n in (os.listdir(idir) if idir.is_dir() else [])
                          if n.lower().endswith(IMAGE_EXTS)}
            except OSError as exc:
                raise DataError(f"cannot read folder ({exc.strerror})", adir) from None
            refs = []
            for a in anns:
                stem = Path(a).stem
                if stem not in images:
                    raise DataError(f"label map has no image (expected {idir / a})", adir / a)
                refs.append(SampleRef(stem, split, idir / images[stem], adir / a, None, "index"))
            extra = sorted(set(images) - {Path(a).stem for a in anns})
            if extra:
                raise DataError(f"image has no label map (expected {adir / (extra[0] + '.png')})",
                                idir / images[extra[0]])
            if refs:
                out[split] = refs
        if not out:
            raise DataError("CamVid folder holds no label maps (expected trainannot/*.png)", self.root)
        return out
