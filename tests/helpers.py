"""Small hand-made datasets for tests that need exact control over every pixel."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def make_cityscapes(root: Path, n: int = 4, size: tuple[int, int] = (64, 32), seed: int = 0,
                    split: str = "train", city: str = "testcity") -> Path:
    """A tiny Cityscapes-layout dataset with random blocks of road/sky/car/building (W, H = size)."""
    rng = np.random.default_rng(seed)
    w, h = size
    gt = root / "gtFine" / split / city
    im = root / "leftImg8bit" / split / city
    gt.mkdir(parents=True, exist_ok=True)
    im.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        lab = np.full((h, w), 7, np.uint8)  # road
        lab[: h // 3] = 23  # sky
        lab[h // 3 : h // 2, : w // 2] = 11  # building
        x = int(rng.integers(0, w - 8))
        lab[h // 2 : h // 2 + 6, x : x + 8] = 26  # car
        inst = lab.astype(np.uint16)
        inst[lab == 26] = 26000
        stem = f"{city}_{i:06d}_000019"
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), lab)
        cv2.imwrite(str(gt / f"{stem}_gtFine_instanceIds.png"), inst)
        cv2.imwrite(str(im / f"{stem}_leftImg8bit.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return root


def make_folder(root: Path, n: int = 3, size: tuple[int, int] = (32, 16), color: bool = False) -> Path:
    """A generic images/ + masks/ + classes.json dataset with 3 classes."""
    classes = [
        {"id": 0, "name": "background", "color": [0, 0, 0]},
        {"id": 1, "name": "crack", "color": [255, 0, 0]},
        {"id": 2, "name": "rust", "color": [0, 255, 0]},
    ]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps({"name": "defects", "classes": classes}))
    w, h = size
    for i in range(n):
        lab = np.zeros((h, w), np.uint8)
        lab[:, : w // 4] = 1
        lab[: h // 2, w // 2 :] = 2
        if color:
            rgb = np.array([c["color"] for c in classes], np.uint8)[lab]
            cv2.imwrite(str(root / "masks" / f"img{i}.png"), rgb[..., ::-1])
        else:
            cv2.imwrite(str(root / "masks" / f"img{i}.png"), lab)
        cv2.imwrite(str(root / "images" / f"img{i}.png"), np.full((h, w, 3), 100, np.uint8))
    return root
