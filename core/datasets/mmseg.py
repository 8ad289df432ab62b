"""mmsegmentation's custom-dataset layout: img_dir/{split}/X.(png|jpg) + ann_dir/{split}/X.png + classes.json.

Masks hold train ids (0..C-1, 255 = ignore), as mmseg trains on them. The class list lives in mmseg's
config, not on disk, so the folder needs a classes.json: a label set (what `export --format mmseg` writes)
or a plain list of names in train-id order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from segbalance.core.datasets.base import Dataset, SampleRef, pair_by_stem
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import NESTED, DataError


def looks_like_mmseg(root: Path) -> bool:
    return (root / "img_dir").is_dir() and (root / "ann_dir").is_dir()


def mmseg_label_set(path: Path) -> LabelSet:
    """classes.json as a label set, or a list of names (train ids 0..C-1, plus 'ignore' at 255)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("mmseg layout needs a classes.json beside img_dir/ (a list of class names in train-id "
                        "order, or a label set)", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the class list ({exc})", path) from None
    except RecursionError:
        raise DataError(f"cannot read the class list (JSON {NESTED})", path) from None
    names = data.get("classes") if isinstance(data, dict) else data
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        items = [{"id": i, "name": n, "train_id": i} for i, n in enumerate(names)]
        if len(names) < 255:
            items.append({"id": 255, "name": "ignore", "train_id": 255, "ignore_in_eval": True,
                          "category": "void", "color": [0, 0, 0]})
        name = data.get("name", root_name(path)) if isinstance(data, dict) else root_name(path)
        return LabelSet.from_dict({"name": name, "classes": items, "ignore_id": 255 if len(names) < 255 else 0},
                                  source=path)
    return LabelSet.from_json(path)


def root_name(path: Path) -> str:
    return path.parent.name or "mmseg"


class MmsegDataset(Dataset):
    format = "mmseg"

    def __init__(self, root: str | Path, label_set: LabelSet | None = None) -> None:
        root = Path(root)
        super().__init__(root, label_set or mmseg_label_set(root / "classes.json"))

    def _scan(self) -> dict[str, list[SampleRef]]:
        img_root, ann_root = self.root / "img_dir", self.root / "ann_dir"
        out: dict[str, list[SampleRef]] = {}
        try:
            splits = sorted(d.name for d in os.scandir(ann_root) if d.is_dir())
        except OSError as exc:
            raise DataError(f"cannot read folder ({exc.strerror})", ann_root) from None
        for split in splits:
            adir, idir = ann_root / split, img_root / split
            refs = pair_by_stem(split, idir, adir, "trainIds", "mask")
            if refs:
                out[split] = refs
        if not out:
            raise DataError("mmseg folder holds no masks (expected ann_dir/{split}/*.png)", ann_root)
        return out
