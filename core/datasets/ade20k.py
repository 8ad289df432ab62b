"""ADE20K (SceneParsing, ADEChallengeData2016): images/{training,validation}/*.jpg + annotations/.../*.png.

Annotations hold 0 (other / unlabeled) and 1..150; as in the benchmark (mmseg's reduce_zero_label), 0 is
ignored and class k trains as k-1. That lives in the label set (id k -> train id k-1, id 0 -> 255), so the
files are read as they are. Splits training/validation are called train/val, as everywhere else in
segbalance. The folder itself or its parent (holding ADEChallengeData2016/) may be given.
"""

from __future__ import annotations

from pathlib import Path

from segbalance.core.datasets.base import Dataset, SampleRef, pair_by_stem
from segbalance.core.datasets.labels import LabelClass, LabelSet, _auto_color
from segbalance.core.errors import DataError

ADE20K_CLASSES = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet',
    'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water',
    'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk',
    'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
    'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path',
    'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase',
    'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm',
    'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light',
    'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver', 'airplane',
    'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster',
    'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool',
    'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank',
    'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture',
    'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor',
    'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
)

# recombination needs an occlusion order (category) per class; indoor and outdoor stuff get the street
# categories they play the part of (floor is ground, ceiling a construction, ...), the rest are objects
_CATEGORY = {
    "sky": ("sky",),
    "flat": ("floor", "road", "grass", "sidewalk", "earth", "field", "sand", "path", "runway", "dirt track",
             "land"),
    "construction": ("wall", "building", "ceiling", "house", "skyscraper", "fence", "railing", "column", "bridge",
                     "tower", "grandstand", "bannister", "hovel", "stairs", "stairway", "escalator", "booth", "pier",
                     "canopy", "swimming pool"),
    "nature": ("tree", "mountain", "plant", "water", "sea", "rock", "river", "hill", "palm", "lake", "waterfall"),
    "human": ("person",),
    "vehicle": ("car", "bus", "truck", "van", "ship", "boat", "airplane", "bicycle", "minibike"),
}
_CAT_OF = {name: cat for cat, names in _CATEGORY.items() for name in names}
SPLITS = ("training", "validation")
SPLIT_NAMES = {"training": "train", "validation": "val"}  # the names every other reader and command use


def ade20k_label_set() -> LabelSet:
    """The 150 SceneParsing classes plus 0 = other (ignored), train ids reduced by one."""
    classes = [LabelClass(0, "other", 255, (0, 0, 0), "void", True, False)]
    classes += [LabelClass(k, name, k - 1, _auto_color(k), _CAT_OF.get(name, "object"), False, False)
                for k, name in enumerate(ADE20K_CLASSES, start=1)]
    return LabelSet("ade20k", tuple(classes), ignore_id=0)


def ade20k_root(root: Path) -> Path | None:
    """The ADEChallengeData2016 folder at or directly under , if it has that layout."""
    for cand in (root, root / "ADEChallengeData2016"):
        if (cand / "annotations").is_dir() and (cand / "images").is_dir() and \
                any((cand / "annotations" / s).is_dir() for s in SPLITS):
            return cand
    return None


def looks_like_ade20k(root: Path) -> bool:
    return ade20k_root(root) is not None


class ADE20KDataset(Dataset):
    format = "ade20k"

    def __init__(self, root: str | Path, label_set: LabelSet | None = None) -> None:
        found = ade20k_root(Path(root))
        if found is None:
            raise DataError("not an ADE20K folder: expected images/{training,validation}/ and "
                            "annotations/{training,validation}/ (ADEChallengeData2016)", root)
        super().__init__(found, label_set or ade20k_label_set())

    def _scan(self) -> dict[str, list[SampleRef]]:
        out: dict[str, list[SampleRef]] = {}
        for split in SPLITS:
            adir, idir = self.root / "annotations" / split, self.root / "images" / split
            if not adir.is_dir():
                continue
            refs = pair_by_stem(SPLIT_NAMES[split], idir, adir, "index", "annotation", image_ext=".jpg")
            if refs:
                out[SPLIT_NAMES[split]] = refs
        if not out:
            raise DataError("ADE20K folder holds no annotations", self.root / "annotations")
        return out
