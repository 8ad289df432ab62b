"""Copy-paste renderer: the RGB of a recombined map built from the original pixels of every pasted layer.

The "traditional" comparator of the method and the fallback when no generator is trained. The base
map's photo is the canvas; each layer's source photo is cut with exactly the pixels the compositor
painted, resized and flipped like the layer, and blended in with a feathered edge or Poisson
(OpenCV seamlessClone). For recon, the things removed from the base are inpainted first.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from segbalance.core.datasets import Dataset
from segbalance.core.errors import DataError
from segbalance.core.recombine.compose import rules_for, sample_refs
from segbalance.core.render.interface import LayerWrite, Renderer, RenderItem

BLENDS = ("feather", "poisson", "none")


class CopyPasteRenderer(Renderer):
    name = "copypaste"

    def __init__(self, ds: Dataset, blend: str = "feather", cache: int = 16, batch_size: int = 1) -> None:
        if blend not in BLENDS:
            raise DataError(f"unknown blend {blend!r}; choose one of {', '.join(BLENDS)}")
        self.ds = ds
        self.blend = blend
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache

    def close(self) -> None:
        self._cache.clear()

    def image(self, sample: str) -> np.ndarray:
        """Decoded RGB of a sample (a few are kept: recipes reuse popular sources)."""
        img = self._cache.get(sample)
        if img is None:
            img = self.ds.load_image(sample_refs(self.ds)[sample])
            self._cache[sample] = img
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(sample)
        return img

    def render(self, items: list[RenderItem]) -> list[np.ndarray]:
        return [self.render_one(it) for it in items]

    def render_one(self, item: RenderItem) -> np.ndarray:
        r = item.recipe
        if r is None:
            raise DataError("the copypaste renderer needs the recipe of each map")
        H, W = item.label.shape
        out = self.image(r.base).copy()
        if out.shape[:2] != (H, W):
            raise DataError(f"base image is {out.shape[1]}x{out.shape[0]}, its map {W}x{H}", r.base)
        if r.strategy == "recon":
            rules = rules_for(self.ds.label_set, r.order)
            removed = rules.thing_u8[self.ds.load_label(sample_refs(self.ds)[r.base])]
            out = inpaint(out, removed)
        for w in item.writes:
            self._paste(out, w)
        return out

    def _paste(self, out: np.ndarray, w: LayerWrite) -> None:
        p = w.placement
        y0, y1, x0, x1 = w.box
        if not w.mask.any():
            return
        src = self.image(p.sample)
        bx, by, bw, bh = p.bbox
        patch = src[by : by + bh, bx : bx + bw]
        if (p.h, p.w) != patch.shape[:2]:
            interp = cv2.INTER_AREA if p.h * p.w < bw * bh else cv2.INTER_LINEAR
            patch = cv2.resize(patch, (p.w, p.h), interpolation=interp)
        if p.flip:
            patch = cv2.flip(patch, 1)
        patch = np.ascontiguousarray(patch[y0 - p.y : y1 - p.y, x0 - p.x : x1 - p.x])
        if self.blend == "poisson" and _poisson(out, patch, w.mask, x0, y0):
            return
        roi = out[y0:y1, x0:x1]
        if self.blend == "none":
            cv2.copyTo(patch, w.mask, roi)
            return
        feather(roi, patch, w.mask)


def feather(roi: np.ndarray, patch: np.ndarray, mask: np.ndarray) -> None:
    """Blend patch into roi (in place) inside mask, with alpha falling off over a few pixels at the edge."""
    k = max(3, (min(mask.shape) // 24) | 1)
    k = min(k, 9)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (k, k), 0)
    # full weight a few pixels inside the edge, half at the edge, nothing outside the painted pixels
    a = (np.clip(alpha * 2, 0, 1) * mask)[..., None]
    roi[...] = (patch.astype(np.float32) * a + roi.astype(np.float32) * (1 - a) + 0.5).astype(np.uint8)


def _poisson(out: np.ndarray, patch: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> bool:
    """Poisson-blend (seamlessClone) in place; False when OpenCV cannot (region at the border, too small)."""
    m = mask.copy()
    H, W = out.shape[:2]
    # seamlessClone needs a margin around the region inside the destination
    if y0 == 0:
        m[0] = 0
    if x0 == 0:
        m[:, 0] = 0
    if y0 + m.shape[0] >= H:
        m[-1] = 0
    if x0 + m.shape[1] >= W:
        m[:, -1] = 0
    x, y, w, h = cv2.boundingRect(m)
    if w < 3 or h < 3:
        return False
    pc = np.ascontiguousarray(patch[y : y + h, x : x + w])
    mc = np.ascontiguousarray(m[y : y + h, x : x + w]) * 255
    center = (x0 + x + w // 2, y0 + y + h // 2)
    try:
        res = cv2.seamlessClone(pc, out, mc, center, cv2.NORMAL_CLONE)
    except cv2.error:
        return False
    out[...] = res
    return True


def inpaint(img: np.ndarray, mask: np.ndarray, long_side: int = 512) -> np.ndarray:
    """Fill masked pixels from their surroundings (Telea), at reduced size for speed, only inside the mask."""
    if not mask.any():
        return img
    H, W = mask.shape
    m = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    s = min(1.0, long_side / max(H, W))
    if s < 1.0:
        size = (max(1, int(W * s)), max(1, int(H * s)))
        small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        ms = (cv2.resize(m, size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
        filled = cv2.resize(cv2.inpaint(small, ms, 3, cv2.INPAINT_TELEA), (W, H), interpolation=cv2.INTER_LINEAR)
    else:
        filled = cv2.inpaint(img, m, 3, cv2.INPAINT_TELEA)
    out = img.copy()
    cv2.copyTo(filled, m, out)
    return out
