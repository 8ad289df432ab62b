"""CamVid as SegNet's tutorial distributes it: {split}/X.png + {split}annot/X.png, for train, val and test.

Label maps hold one index per pixel (0 sky ... 10 bicyclist, 11 unlabelled, ignored). The files carry no
class list, so the label set is built in (core.datasets.labels.CAMVID). There are no instance maps: layers
are 8-connected regions of each class (core.recombine.layers.decompose), so two touching pedestrians are
one layer.
"""

from __future__ import annotations

from pathlib import Path

from segbalance.core.datasets.base import Dataset, SampleRef, pair_by_stem
from segbalance.core.datasets.labels import CAMVID, LabelSet
from segbalance.core.errors import DataError

SPLITS = ("train", "val", "test")
ANNOT_SUFFIX = "annot"  # trainannot/, valannot/, testannot/
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
            refs = pair_by_stem(split, idir, adir, "index", "label map")
            if refs:
                out[split] = refs
        if not out:
            raise DataError("CamVid folder holds no label maps (expected trainannot/*.png)", self.root)
        return out
