"""A tiny Cityscapes-layout dataset for the segmentation tests (colour -> class, learnable in seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.io import write_png
from core.labels import CITYSCAPES


def make_synth_cityscapes(root: Path, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (128, 64),
                          seed: int = 0) -> Path:
    """Street-like scenes: sky / building / road bands with car and person boxes; image = class colour + noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    pal = CITYSCAPES.palette.astype(np.int16)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            lab = np.zeros((h, w), np.uint8)
            sky = int(rng.integers(h // 6, h // 3))
            road = int(rng.integers(h // 2, 2 * h // 3))
            lab[:sky] = 23
            lab[sky:road] = 11
            lab[road:] = 7
            lab[road:, : int(rng.integers(0, w // 6))] = 8  # sidewalk strip
            for cls, bw, bh in ((26, w // 4, h // 5), (24, w // 16, h // 4)):
                for _ in range(int(rng.integers(1, 3))):
                    x = int(rng.integers(0, w - bw))
                    y = int(rng.integers(max(0, road - bh), h - bh))
                    lab[y : y + bh, x : x + bw] = cls
            lab[:2] = 0  # a void border (ignored in training and evaluation)
            img = np.clip(pal[lab] + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
            stem = f"synth_{i:06d}_000019"
            write_png(root / "leftImg8bit" / split / "synth" / f"{stem}_leftImg8bit.png", img, rgb=True)
            write_png(root / "gtFine" / split / "synth" / f"{stem}_gtFine_labelIds.png", lab)
    return root
