"""A tiny synthetic Cityscapes-layout dataset for the pix2pixHD tests (until/unless the sample dataset is used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.io import write_png
from core.labels import CITYSCAPES


def make_synthetic_cityscapes(root: Path, n_train: int = 6, size: tuple[int, int] = (64, 32), seed: int = 0) -> Path:
    """Street-like scenes: sky, building band, road, a few cars (instances) coloured by class with texture."""
    rng = np.random.default_rng(seed)
    w, h = size
    pal = {c.id: np.array(c.color, np.float32) for c in CITYSCAPES.classes}
    for split, n in (("train", n_train), ("val", 2)):
        for k in range(n):
            lab = np.full((h, w), 23, np.uint8)  # sky
            horizon = int(h * rng.uniform(0.35, 0.5))
            lab[int(h * 0.15) + rng.integers(0, 3):horizon, :] = 11  # building
            lab[horizon:, :] = 7  # road
            lab[horizon:horizon + 2, :] = 8  # sidewalk
            inst = lab.astype(np.int32)
            for c in range(int(rng.integers(1, 4))):
                cw, ch = int(rng.integers(w // 8, w // 4)), int(rng.integers(h // 8, h // 4))
                x0, y0 = int(rng.integers(0, w - cw)), int(rng.integers(horizon - ch // 2, h - ch))
                lab[y0:y0 + ch, x0:x0 + cw] = 26
                inst[y0:y0 + ch, x0:x0 + cw] = 26000 + c
            img = np.stack([pal[int(i)] for i in lab.ravel()]).reshape(h, w, 3)
            yy = np.linspace(-20, 20, h)[:, None, None]
            img = np.clip(img + yy + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
            stem = f"synth_{k:06d}_000019"
            d = root / "gtFine" / split / "synth"
            write_png(d / f"{stem}_gtFine_labelIds.png", lab)
            write_png(d / f"{stem}_gtFine_instanceIds.png", inst.astype(np.uint16))
            write_png(root / "leftImg8bit" / split / "synth" / f"{stem}_leftImg8bit.png", img, rgb=True)
    return root
