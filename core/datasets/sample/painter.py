"""Painter of the built-in sample dataset: what each class looks like, for ANY Cityscapes label map.

Kept apart from the layout on purpose: recombined maps made by other tools render with the same
procedural look, which makes this the experiments' "oracle" renderer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import cv2
import numpy as np

from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.datasets.sample.layout import (
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    EGO,
    FENCE,
    LIGHT,
    MOTORCYCLE,
    OUT_OF_ROI,
    PERSON,
    POLE,
    RAIL_TRACK,
    RIDER,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
)
from segbalance.core.errors import DataError


def _fractal(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Value noise in 0..1 with feature size `cell` pixels (several octaves)."""
    out = np.zeros((h, w), np.float32)
    amp, tot = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
        small = rng.random((gh, gw), dtype=np.float32)
        big = cv2.resize(small, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        if big.shape[0] < h or big.shape[1] < w:
            big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        out += amp * big[:h, :w]
        tot += amp
        amp *= 0.5
        cell = max(1.0, cell / 2)
    return np.clip(out / tot, 0, 1)


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float = 0.08) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.normal(0, amount, 3).astype(np.float32), 0, 1)


def _pick(rng: np.random.Generator, colors: list[tuple[float, float, float]], amount: float = 0.05) -> np.ndarray:
    return _jitter(rng, colors[int(rng.integers(len(colors)))], amount)


class _Canvas:
    """The image being rendered plus what every class texture needs to know about the scene."""

    def __init__(self, label: np.ndarray, inst: np.ndarray, rng: np.random.Generator) -> None:
        self.label, self.inst, self.rng = label, inst, rng
        self.h, self.w = label.shape
        self.H, self.W = label.shape  # full image size: texture scales use it, crops keep it
        self.k = self.W / 256.0
        self.img = np.zeros((self.h, self.w, 3), np.float32)
        self.yy, self.xx = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32)
        ground = np.isin(label, (ROAD, SIDEWALK, TERRAIN, 9, 6))
        rows = np.flatnonzero(ground.any(axis=1))
        # horizon and vanishing column, estimated from where the ground starts (any map works)
        self.yh = float(rows[0]) - 1.0 if rows.size else self.h * 0.42
        road_top = np.flatnonzero((label == ROAD).any(axis=1))
        if road_top.size:
            top = label[road_top[0] : road_top[0] + max(2, self.h // 32)] == ROAD
            self.vx = float(np.nonzero(top)[1].mean())
        else:
            self.vx = self.w / 2.0
        dyg = np.maximum(self.yy - self.yh, 1.0)
        self.gz = (self.h / dyg).astype(np.float32)  # ground depth (relative units)
        self.gx = ((self.xx - self.vx) / dyg).astype(np.float32)  # ground lateral position

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> _Canvas:
        """A view of one region (textures are computed only where a class is); writes reach the image."""
        v = copy.copy(self)
        for name in ("img", "label", "inst", "yy", "xx", "gz", "gx"):
            setattr(v, name, getattr(self, name)[y0:y1, x0:x1])
        v.h, v.w = y1 - y0, x1 - x0
        return v

    def fill(self, m: np.ndarray, rgb: np.ndarray) -> None:
        self.img[m] = rgb[m] if rgb.ndim == 3 else rgb

    def noise(self, cell: float, octaves: int = 3) -> np.ndarray:
        """Value noise of this region; `cell` is in pixels of a 256-wide image, so textures scale with size."""
        return _fractal(self.rng, self.h, self.w, max(1.0, cell * self.k), octaves)

    def grain(self) -> np.ndarray:
        """Per-pixel grain (coarser on big images so it survives downscaling)."""
        if self.k <= 1.5:
            return self.rng.random((self.h, self.w), dtype=np.float32)
        return _fractal(self.rng, self.h, self.w, self.k, 1)


def _shade(base: np.ndarray, field: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """base colour modulated by a 0..1 field into the range lo..hi of brightness."""
    return base[None, None, :] * (lo + (hi - lo) * field)[..., None]


def _r_road(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    # asphalt is grey: vary its brightness a lot and its tint only a little
    tint = (1.0, 0.98, 1.02) if cls == ROAD else (1.1, 1.0, 1.0)
    base = np.clip(rng.uniform(0.27, 0.46) * np.array(tint, np.float32) * (1 + rng.normal(0, 0.025, 3)), 0, 1)
    base = base.astype(np.float32)
    tex = 0.35 * c.noise(21) + 0.25 * c.noise(1.5, 1) + 0.4 * c.grain()
    col = _shade(base, tex, 0.8, 1.15)
    # repaired patches and oil stains: soft-edged darker areas
    patches = np.clip((c.noise(13, 2) - 0.6) * 8, 0, 1)
    col *= (1 - rng.uniform(0.05, 0.18) * patches)[..., None]
    c.fill(m, col)
    if cls != ROAD:
        return
    # lane marks: a dashed centre line and solid edge lines, in perspective from the mask itself
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size < 3:
        return
    mark = _jitter(rng, (0.88, 0.88, 0.84) if rng.random() < 0.85 else (0.9, 0.78, 0.3), 0.03)
    dash_period = rng.uniform(0.6, 1.0)
    offset = rng.uniform(-0.25, 0.25)
    for y in rows:
        xs = np.flatnonzero(m[y])
        x0, x1 = xs[0], xs[-1]
        width = x1 - x0 + 1
        if width < 8:
            continue
        lw = max(1, int(round(width * 0.012)))
        dash = (c.gz[y, 0] * dash_period) % 1.0 < 0.5
        if dash:
            cx = int(round(x0 + width * (0.5 + offset * min(1.0, width / c.W))))
            sl = slice(max(x0, cx - lw // 2), min(x1, cx + lw // 2 + 1))
            c.img[y, sl] = mark
        if width > c.W * 0.25 and rng.random() < 0.97:
            c.img[y, x0 + lw : x0 + 2 * lw] = mark * 0.95
            c.img[y, max(x0, x1 - 2 * lw) : x1 - lw] = mark * 0.95


def _r_sidewalk(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    base = _pick(rng, [(0.62, 0.6, 0.58), (0.7, 0.62, 0.55), (0.55, 0.52, 0.5), (0.66, 0.5, 0.45)])
    col = _shade(base, 0.5 * c.noise(16) + 0.5 * c.grain(),
                 0.85, 1.1)
    k = rng.uniform(1.5, 3.0)
    joints = ((c.gz * k) % 1.0 < 0.12) | ((c.gx * k * 2.5) % 1.0 < 0.1)
    col[joints] *= 0.72
    c.fill(m, col)


def _r_building(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    palette = [(0.55, 0.5, 0.45), (0.7, 0.65, 0.55), (0.6, 0.4, 0.32), (0.78, 0.76, 0.7), (0.45, 0.45, 0.48),
               (0.72, 0.6, 0.45), (0.5, 0.55, 0.6)]
    # facades change colour from house to house: hash of a coarse column band
    dx = c.xx - c.vx
    dxa = np.maximum(np.abs(dx), c.W * 0.06)
    along = c.W * 1.5 / dxa  # distance along the street for facades seen at the side
    band = np.floor(along / rng.uniform(1.5, 3.0)).astype(np.int64) + (dx > 0) * 1000
    cols = np.array([_pick(rng, palette, 0.06) for _ in range(16)], np.float32)
    base = cols[band % 16]
    tex = 0.6 + 0.4 * (0.5 * c.noise(13) + 0.5 * c.grain())
    col = base * tex[..., None]
    # window grid in the facade's perspective: a floor is ~3 m, i.e. ~0.37*|dx| pixels high on a
    # facade ~8 m from the camera axis; bays ~3.5 m along the street
    floors = (c.yh - c.yy) / dxa * rng.uniform(2.3, 3.3) + rng.uniform(0, 1)
    bays = along * rng.uniform(1.4, 2.2)
    fh, fw = floors % 1.0, bays % 1.0
    win = (fh > 0.3) & (fh < rng.uniform(0.7, 0.85)) & (fw > 0.2) & (fw < rng.uniform(0.65, 0.8))
    win &= floors > 1.0  # shop fronts / doors at street level, not windows
    glass = _pick(rng, [(0.2, 0.24, 0.3), (0.35, 0.4, 0.45), (0.15, 0.15, 0.18), (0.55, 0.5, 0.35)], 0.04)
    gl = _shade(glass, c.grain(), 0.7, 1.2)
    col[win] = gl[win]
    c.fill(m, col)


def _r_wall(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    base = _pick(rng, [(0.62, 0.6, 0.55), (0.58, 0.35, 0.28), (0.5, 0.5, 0.52)])
    col = _shade(base, 0.5 * c.noise(4) + 0.5 * c.grain(), 0.75, 1.1)
    ph = max(2, c.H // 48)
    row = (c.yy // ph).astype(np.int64)
    mortar = (c.yy % ph < 1) | (((c.xx + (row % 2) * ph) % (2 * ph)) < 1)
    col[mortar] *= 0.7
    c.fill(m, col)


def _r_fence(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    metal = _pick(rng, [(0.55, 0.5, 0.45), (0.35, 0.4, 0.35), (0.6, 0.6, 0.62), (0.5, 0.38, 0.25)])
    behind = _shade(_jitter(rng, (0.3, 0.35, 0.28)), c.noise(3), 0.4, 0.9)
    p = max(3, c.W // 64)
    lattice = ((c.xx + c.yy) % p < 1.2) | ((c.xx - c.yy) % p < 1.2)
    if rng.random() < 0.5:  # vertical bars instead of a mesh
        lattice = (c.xx % p < 1.3) | (c.yy % (4 * p) < 1)
    col = np.where(lattice[..., None], _shade(metal, c.grain(), 0.85, 1.1), behind)
    c.fill(m, col)


def _r_sky(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    kind = rng.choice(["blue", "overcast", "hazy"], p=[0.45, 0.35, 0.2])
    top, bot = {
        "blue": ((0.35, 0.55, 0.85), (0.75, 0.85, 0.95)),
        "overcast": ((0.7, 0.72, 0.75), (0.85, 0.86, 0.88)),
        "hazy": ((0.7, 0.75, 0.8), (0.9, 0.88, 0.82)),
    }[str(kind)]
    t = np.clip(c.yy / max(1.0, c.yh), 0, 1)[..., None]
    col = _jitter(rng, top, 0.04) * (1 - t) + _jitter(rng, bot, 0.03) * t
    clouds = np.clip((c.noise(43, 4) - rng.uniform(0.45, 0.6)) * 4, 0, 1)[..., None]
    col = col * (1 - clouds) + np.float32(rng.uniform(0.85, 1.0)) * clouds
    c.fill(m, col.astype(np.float32))


def _r_vegetation(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    base = _pick(rng, [(0.25, 0.38, 0.15), (0.3, 0.42, 0.2), (0.2, 0.3, 0.12), (0.38, 0.42, 0.2)])
    leaves = c.noise(1.5, 2)
    clumps = c.noise(11, 3)
    col = _shade(base, 0.55 * leaves + 0.45 * clumps, 0.45, 1.45)
    hue = c.noise(26, 1)[..., None]
    col = col * (1 - 0.3 * hue) + col[..., [1, 1, 0]] * 0.3 * hue  # yellower patches
    col[(leaves < 0.25)] *= 0.5  # dark gaps between leaves
    c.fill(m, col)


def _r_terrain(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    base = _pick(rng, [(0.45, 0.5, 0.28), (0.52, 0.5, 0.32), (0.4, 0.48, 0.25), (0.5, 0.42, 0.3)])
    streak = cv2.resize(rng.random((c.h, max(2, int(c.w / (3 * c.k)))), dtype=np.float32), (c.w, c.h),
                        interpolation=cv2.INTER_LINEAR)
    col = _shade(base, 0.4 * c.grain() + 0.3 * streak + 0.3 * c.noise(5), 0.7, 1.2)
    c.fill(m, col)


def _r_pole(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    base = _pick(rng, [(0.45, 0.45, 0.47), (0.3, 0.32, 0.3), (0.55, 0.55, 0.5)])
    # round poles catch light on one side
    lit = m & ~np.roll(m, 1, axis=1)
    col = _shade(base, c.grain(), 0.85, 1.1)
    col[lit] *= 1.35
    c.fill(m, col)


def _components(m: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    out = []
    for i in range(1, n):
        x, y, w, h, _a = stats[i]
        out.append((lab[y : y + h, x : x + w] == i, (int(x), int(y), int(w), int(h))))
    return out


def _r_sign(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    kinds = [((0.8, 0.1, 0.1), (0.95, 0.95, 0.95)), ((0.1, 0.3, 0.7), (0.95, 0.95, 0.95)),
             ((0.95, 0.8, 0.1), (0.1, 0.1, 0.1)), ((0.95, 0.95, 0.95), (0.8, 0.1, 0.1)),
             ((0.5, 0.5, 0.52), (0.45, 0.45, 0.47))]  # the grey back of a sign
    for cm, (x, y, w, h) in _components(m):
        face, rim = (np.asarray(v, np.float32) for v in kinds[int(rng.integers(len(kinds)))])
        face = np.clip(face + rng.normal(0, 0.04, 3).astype(np.float32), 0, 1)
        inner = cv2.erode(cm.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) if min(w, h) > 4 else cm
        patch = np.where(inner[..., None], face, rim)
        # a symbol in the middle
        if min(w, h) >= 6:
            cy, cx = h // 2, w // 2
            r = max(1, min(w, h) // 5)
            patch[cy - r : cy + r + 1, cx - r // 2 : cx + r // 2 + 1] = rim
        patch = patch * rng.uniform(0.9, 1.05, (h, w, 1)).astype(np.float32)
        sub = c.img[y : y + h, x : x + w]
        sub[cm] = patch[cm]


def _r_light(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    lamps = [np.array(v, np.float32) for v in ((1.0, 0.15, 0.1), (1.0, 0.7, 0.1), (0.2, 1.0, 0.4))]
    for cm, (x, y, w, h) in _components(m):
        housing = _jitter(rng, (0.12, 0.12, 0.1), 0.03)
        patch = np.broadcast_to(housing, (h, w, 3)).copy()
        on = int(rng.integers(3))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = max(0.8, min(w * 0.35, h / 7))
        for k in range(3):
            d = np.hypot(yy - h * (k * 2 + 1) / 6, xx - (w - 1) / 2)
            col = lamps[k] if k == on else lamps[k] * 0.25
            patch[d <= r] = col
        sub = c.img[y : y + h, x : x + w]
        sub[cm] = patch[cm]


VEHICLE_COLORS = [(0.85, 0.85, 0.85), (0.6, 0.6, 0.62), (0.1, 0.1, 0.12), (0.6, 0.1, 0.1), (0.15, 0.2, 0.5),
                  (0.3, 0.3, 0.3), (0.2, 0.35, 0.25), (0.75, 0.7, 0.55), (0.9, 0.9, 0.95)]


def _instances(c: _Canvas, m: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Per-instance masks (bbox-local) of the pixels in m; maps without instance ids fall back to components."""
    ids = c.inst[m]
    uniq = np.unique(ids)
    if uniq.size == 1 and uniq[0] < 1000:
        return _components(m)
    out = []
    for iid in uniq:
        im = m & (c.inst == iid)
        ys, xs = np.nonzero(im)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        out.append((im[y0:y1, x0:x1], (int(x0), int(y0), int(x1 - x0), int(y1 - y0))))
    return out


def _r_vehicle(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    for cm, (x, y, w, h) in _instances(c, m):
        if cls == BUS:
            body = _pick(rng, [(0.9, 0.75, 0.1), (0.75, 0.1, 0.1), (0.2, 0.35, 0.7), (0.9, 0.9, 0.9)])
        elif cls == TRAIN:
            body = _pick(rng, [(0.85, 0.1, 0.1), (0.9, 0.9, 0.85), (0.95, 0.8, 0.1), (0.2, 0.4, 0.6)])
        elif cls in (TRUCK, 29, 30):
            body = _pick(rng, [(0.9, 0.9, 0.9), (0.7, 0.3, 0.1), (0.3, 0.4, 0.55), (0.55, 0.55, 0.5)])
        elif cls == MOTORCYCLE:
            body = _pick(rng, [(0.1, 0.1, 0.1), (0.7, 0.1, 0.1), (0.2, 0.2, 0.5)])
        else:
            body = _pick(rng, VEHICLE_COLORS, 0.06)
        v = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
        u = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w
        vv, uu = np.broadcast_arrays(v, u)
        patch = body[None, None, :] * (0.9 + 0.25 * (1 - vv) + rng.normal(0, 0.03, (h, w)))[..., None]
        glass = _jitter(rng, (0.15, 0.18, 0.22), 0.03) * (0.8 + 0.5 * (1 - vv))[..., None]
        if cls == CAR:
            win = (vv > 0.08) & (vv < 0.4) & (uu > 0.12) & (uu < 0.88)
            wheels = (vv > 0.8) & ((uu < 0.22) | (uu > 0.78))
            lights = (vv > 0.45) & (vv < 0.58) & ((uu < 0.14) | (uu > 0.86))
            patch[lights] = _jitter(rng, (0.8, 0.1, 0.1) if rng.random() < 0.7 else (0.95, 0.95, 0.85), 0.04)
            plate = (vv > 0.62) & (vv < 0.72) & (np.abs(uu - 0.5) < 0.12)
            patch[plate] = (0.9, 0.9, 0.88)
        elif cls in (BUS, TRAIN):
            win = (vv > 0.15) & (vv < 0.5)
            if cls == TRAIN:
                win &= (uu * max(1, w / max(h, 1)) * 3) % 1.0 < 0.7
            wheels = (vv > 0.9) & ((uu < 0.25) | (uu > 0.75))
        elif cls in (TRUCK, 29, 30):
            win = (vv > 0.45) & (vv < 0.6) & (uu > 0.1) & (uu < 0.9) & (rng.random() < 0.5)
            wheels = (vv > 0.85) & ((uu < 0.25) | (uu > 0.75))
        else:  # motorcycle: dark parts and wheel
            win = (vv > 0.3) & (vv < 0.45) & (np.abs(uu - 0.5) < 0.3)
            wheels = vv > 0.7
        patch[win] = glass[win]
        patch[wheels] = _jitter(rng, (0.06, 0.06, 0.07), 0.02)
        sub = c.img[y : y + h, x : x + w]
        sub[cm] = patch[cm]


def _r_human(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    skins = [(0.9, 0.72, 0.6), (0.75, 0.55, 0.4), (0.45, 0.3, 0.2), (0.95, 0.8, 0.7)]
    clothes = [(0.1, 0.1, 0.12), (0.2, 0.25, 0.45), (0.7, 0.15, 0.15), (0.85, 0.85, 0.8), (0.4, 0.35, 0.3),
               (0.2, 0.4, 0.25), (0.9, 0.6, 0.1), (0.5, 0.5, 0.55)]
    for cm, (x, y, w, h) in _instances(c, m):
        v = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None] * np.ones((1, w), np.float32)
        top = _pick(rng, clothes, 0.06)
        legs = _pick(rng, clothes[:5], 0.05)
        head = _pick(rng, skins, 0.04) if cls == PERSON else _pick(rng, [(0.9, 0.9, 0.9), (0.1, 0.1, 0.1),
                                                                          (0.8, 0.2, 0.1)], 0.05)
        patch = np.where((v < 0.14)[..., None], head, np.where((v < 0.52)[..., None], top, legs))
        patch = patch * (0.85 + 0.3 * rng.random((h, w, 1), dtype=np.float32))
        sub = c.img[y : y + h, x : x + w]
        sub[cm] = patch[cm]


def _r_bicycle(c: _Canvas, m: np.ndarray, cls: int) -> None:
    rng = c.rng
    for cm, (x, y, w, h) in _instances(c, m):
        frame = _pick(rng, [(0.1, 0.1, 0.1), (0.6, 0.1, 0.1), (0.1, 0.3, 0.6), (0.7, 0.7, 0.7), (0.2, 0.45, 0.3)])
        tyre = np.array([0.04, 0.04, 0.05], np.float32)
        # see-through between the spokes: a dim, noisy grey; tyres on the outline; frame tubes as diagonals
        patch = _jitter(rng, (0.3, 0.3, 0.3), 0.05) * (0.6 + 0.6 * rng.random((h, w, 1), dtype=np.float32))
        yy, xx = np.mgrid[0:h, 0:w]
        p = max(3, min(w, h) // 3)
        tubes = ((xx + yy) % p == 0) | ((xx - yy) % p == 0) | (yy == h // 3)
        patch[tubes] = frame
        edge = cm & ~cv2.erode(cm.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        patch[edge] = tyre
        sub = c.img[y : y + h, x : x + w]
        sub[cm] = patch[cm]


def _r_flat(rgb: tuple[float, float, float], grain: float = 0.15) -> Callable[[_Canvas, np.ndarray, int], None]:
    def render(c: _Canvas, m: np.ndarray, cls: int) -> None:
        base = _jitter(c.rng, rgb, 0.04)
        c.fill(m, _shade(base, 0.5 * c.noise(4) + 0.5 * c.grain(),
                         1 - grain, 1 + grain))
    return render


def _r_ego(c: _Canvas, m: np.ndarray, cls: int) -> None:
    base = _pick(c.rng, [(0.1, 0.1, 0.12), (0.7, 0.7, 0.72), (0.2, 0.2, 0.35)])
    t = np.clip((c.yy - c.H * 0.85) / (c.H * 0.15), 0, 1)
    col = base[None, None, :] * (0.7 + 0.6 * (1 - t))[..., None]
    c.fill(m, col.astype(np.float32))


def _r_rail(c: _Canvas, m: np.ndarray, cls: int) -> None:
    _r_flat((0.42, 0.36, 0.3), 0.3)(c, m, cls)
    rails = (np.abs(c.gx - np.median(c.gx[m]) + 0.35) < 0.05) | (np.abs(c.gx - np.median(c.gx[m]) - 0.35) < 0.05)
    c.img[m & rails] = (0.7, 0.7, 0.72)


_RENDERERS: dict[int, Callable[[_Canvas, np.ndarray, int], None]] = {
    0: _r_flat((0.05, 0.05, 0.05), 0.5),
    EGO: _r_ego,
    2: _r_flat((0.0, 0.0, 0.0), 0.0),
    OUT_OF_ROI: _r_flat((0.0, 0.0, 0.0), 0.0),
    4: _r_flat((0.45, 0.42, 0.38), 0.4),
    5: _r_flat((0.4, 0.3, 0.15), 0.4),
    6: _r_flat((0.45, 0.4, 0.35), 0.3),
    ROAD: _r_road,
    SIDEWALK: _r_sidewalk,
    9: _r_road,
    RAIL_TRACK: _r_rail,
    BUILDING: _r_building,
    WALL: _r_wall,
    FENCE: _r_fence,
    14: _r_flat((0.7, 0.7, 0.72), 0.2),
    15: _r_flat((0.55, 0.5, 0.45), 0.3),
    16: _r_flat((0.15, 0.13, 0.12), 0.3),
    POLE: _r_pole,
    18: _r_pole,
    LIGHT: _r_light,
    SIGN: _r_sign,
    VEGETATION: _r_vegetation,
    TERRAIN: _r_terrain,
    SKY: _r_sky,
    PERSON: _r_human,
    RIDER: _r_human,
    CAR: _r_vehicle,
    TRUCK: _r_vehicle,
    BUS: _r_vehicle,
    29: _r_vehicle,
    30: _r_vehicle,
    TRAIN: _r_vehicle,
    MOTORCYCLE: _r_vehicle,
    BICYCLE: _r_bicycle,
}


def render_scene(label: np.ndarray, instance: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """RGB uint8 photo-like image of any Cityscapes label-id map (+ optional instance map).

    Textures, colours, lighting and noise all come from `seed`, so one map renders differently
    per seed and a class can never be recognised by its colour alone.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise DataError(f"render_scene needs a 2-D label map, got shape {label.shape}")
    label = label.astype(np.uint8)
    inst = label.astype(np.int32) if instance is None else np.asarray(instance).astype(np.int32)
    if inst.shape != label.shape:
        raise DataError(f"instance map {inst.shape} and label map {label.shape} differ in size")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7])
    c = _Canvas(label, inst, rng)
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    for cid in present:
        m = label == cid
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        fn = _RENDERERS.get(int(cid))
        if fn is None:
            pal = CITYSCAPES.palette[int(cid)].astype(np.float32) / 255
            fn = _r_flat(tuple(pal), 0.3)  # type: ignore[arg-type]
        fn(c.crop(y0, y1, x0, x1), m[y0:y1, x0:x1], int(cid))
    img = c.img
    # scene lighting: global brightness, colour temperature, soft shadows, sensor noise
    gain = rng.uniform(0.7, 1.25)
    temp = rng.uniform(-1, 1)
    wb = np.array([1 + 0.08 * temp, 1.0, 1 - 0.1 * temp], np.float32)
    shadow = 1 - rng.uniform(0.0, 0.3) * np.clip((c.noise(51, 2) - 0.45) * 4, 0, 1)
    img = img * (gain * wb)[None, None, :] * shadow[..., None]
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.7))
    img = img + rng.normal(0, rng.uniform(0.01, 0.035), img.shape).astype(np.float32)
    gamma = rng.uniform(0.85, 1.15)
    img = np.clip(img, 0, 1) ** gamma
    return (img * 255 + 0.5).astype(np.uint8)
