"""Tiny synthetic Cityscapes-layout street scenes for the recombination tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, VEG, SKY, PERSON, CAR, EGO = 7, 8, 11, 12, 13, 17, 21, 23, 24, 26, 1


def scene(rng: np.random.Generator, h: int = 64, w: int = 128, *, rare: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A street: sky, buildings, sidewalk, road, ego vehicle; optional wall/fence; two touching cars; a person."""
    lab = np.full((h, w), SKY, np.uint8)
    hz = int(h * 0.4)
    lab[int(h * 0.15):hz + 4, :] = BUILDING
    lab[hz + 4:int(h * 0.55), :] = SIDEWALK
    lab[int(h * 0.55):, :] = ROAD
    lab[int(h * 0.9):, :] = EGO
    if rare:
        x = int(rng.integers(0, w // 2))
        lab[hz - 2:hz + 6, x:x + int(rng.integers(8, 24))] = WALL
        x = int(rng.integers(w // 2, w - 10))
        lab[hz:hz + 7, x:x + 10] = FENCE
    lab[int(h * 0.2):int(h * 0.55), w - 6:w - 5] = POLE
    lab[int(h * 0.2):int(h * 0.35), 2:14] = VEG
    inst = lab.astype(np.int32)
    y0 = int(h * 0.6)
    x0 = int(rng.integers(10, w // 2))
    for k in range(2):  # two touching cars: one region of label, two instances
        xs = x0 + 12 * k
        lab[y0:y0 + 10, xs:xs + 12] = CAR
        inst[y0:y0 + 10, xs:xs + 12] = CAR * 1000 + k
    px = int(rng.integers(w // 2, w - 8))
    lab[hz + 2:hz + 16, px:px + 4] = PERSON
    inst[hz + 2:hz + 16, px:px + 4] = PERSON * 1000
    return lab, inst


def make_dataset(root: Path, n: int = 6, seed: int = 0, h: int = 64, w: int = 128) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        lab, inst = scene(rng, h, w, rare=i % 2 == 0)
        stem = f"synth_{i:06d}_000019"
        gt = root / "gtFine" / "train" / "synth"
        im = root / "leftImg8bit" / "train" / "synth"
        gt.mkdir(parents=True, exist_ok=True)
        im.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), lab)
        cv2.imwrite(str(gt / f"{stem}_gtFine_instanceIds.png"), inst.astype(np.uint16))
        cv2.imwrite(str(im / f"{stem}_leftImg8bit.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return root
