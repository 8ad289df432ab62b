"""Generic folder: images/ + masks/ (same stem; index or colour PNG) + classes.json.

Splits are sub-folders of images/ and masks/ (images/train, masks/train, ...); a flat
images/ folder is one split called "train".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segbalance.core.datasets.base import Dataset, SampleRef, pair_by_stem
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import DataError
from segbalance.core.io import read_mask_png


def looks_like_folder(root: Path) -> bool:
    return (root / "masks").is_dir() and (root / "classes.json").is_file()


class FolderDataset(Dataset):
    format = "folder"

    def __init__(self, root: str | Path, label_set: LabelSet | None = None) -> None:
        root = Path(root)
        super().__init__(root, label_set or LabelSet.from_json(root / "classes.json"))
        self._color_lut: dict[int, int] | None = None

    def _scan(self) -> dict[str, list[SampleRef]]:
        img_root, mask_root = self.root / "images", self.root / "masks"
        for d in (img_root, mask_root):
            if not d.is_dir():
                raise DataError("missing folder (expected images/, masks/ and classes.json)", d)
        subdirs = sorted(p.name for p in mask_root.iterdir() if p.is_dir())
        layout = [(s, img_root / s, mask_root / s) for s in subdirs] or [("train", img_root, mask_root)]
        out: dict[str, list[SampleRef]] = {}
        for split, idir, mdir in layout:
            refs = pair_by_stem(split, idir, mdir, "index", "mask")
            if refs:
                out[split] = refs
        if not out:
            raise DataError("no masks found", mask_root)
        return out

    def _decode_label(self, s: SampleRef) -> np.ndarray:
        arr = read_mask_png(s.label_path)
        if arr.ndim == 2:
            return super()._decode_label(s)
        # colour mask: map every colour through the palette, unknown colours are an error
        rgb = arr[..., 2::-1] if arr.shape[2] >= 3 else arr
        key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        if self._color_lut is None:
            self._color_lut = {
                (c.color[0] << 16) | (c.color[1] << 8) | c.color[2]: c.id for c in self.label_set.classes
            }
        uniq, inv = np.unique(key, return_inverse=True)
        ids = np.empty(len(uniq), dtype=np.uint8)
        for i, k in enumerate(uniq.tolist()):
            if k not in self._color_lut:
                col = ((k >> 16) & 255, (k >> 8) & 255, k & 255)
                raise DataError(f"colour {col} is not in classes.json", s.label_path)
            ids[i] = self._color_lut[k]
        return ids[inv].reshape(key.shape)
