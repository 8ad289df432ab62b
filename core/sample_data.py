"""Built-in sample dataset: procedural street scenes in the Cityscapes layout.

Layout (where each class is) and rendering (what it looks like) are separate on purpose: the
renderer paints ANY Cityscapes label + instance map, so recombined maps made by other tools can be
rendered with the same procedural look (the "oracle" renderer of the experiments).

The layout is a tiny pinhole-camera world: a flat street with sidewalks and facades on both sides,
objects standing on the ground, and a z-buffer so near objects hide far ones. Everything is seeded
from (seed, split, index), so sample i does not depend on how many samples are generated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from segbalance.core.errors import Cancelled, DataError
from segbalance.core.io import write_png
from segbalance.core.labels import CITYSCAPES

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

TRAIN_CITIES = ("synthville", "procburg")
VAL_CITIES = ("renderstadt",)
FRAME = 19  # Cityscapes' annotated frame number

# Cityscapes label ids used here
UNLABELED, EGO, OUT_OF_ROI = 0, 1, 3
ROAD, SIDEWALK, RAIL_TRACK = 7, 8, 10
BUILDING, WALL, FENCE = 11, 12, 13
POLE, LIGHT, SIGN = 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 31, 32, 33
THING_IDS = frozenset(c.id for c in CITYSCAPES.classes if c.has_instances)

_SPLIT_CODE = {"train": 1, "val": 2, "test": 3}


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------
class _Scene:
    """Label, instance and depth buffers plus the camera that projects world points into them."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]) -> None:
        w, h = size
        self.w, self.h = w, h
        self.rng = rng
        self.f = 1.1 * w  # Cityscapes' focal length relative to the image width
        self.hc = 1.3  # camera height (m)
        self.yh = h * rng.uniform(0.34, 0.44)  # horizon row
        self.vx = w * rng.uniform(0.42, 0.58)  # vanishing point column
        self.label = np.full((h, w), SKY, np.uint8)
        self.inst = np.full((h, w), SKY, np.int32)
        self.z = np.full((h, w), np.inf, np.float32)
        self.next_k: dict[int, int] = {}
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.dx = xx + 0.5 - self.vx
        self.dy = yy + 0.5 - self.yh

    # -- projection ----------------------------------------------------------------
    def px(self, x: float, y: float, z: float) -> tuple[float, float]:
        """Image point of world point (lateral x, height y, depth z)."""
        return self.vx + self.f * x / z, self.yh + self.f * (self.hc - y) / z

    def instance_id(self, cls: int) -> int:
        k = self.next_k.get(cls, 0)
        self.next_k[cls] = k + 1
        return cls * 1000 + k

    def paint(self, mask: np.ndarray, depth: np.ndarray | float, cls: int, inst: int | None = None,
              box: tuple[int, int, int, int] | None = None) -> None:
        """Write cls where mask is set and nearer than what is there; box = (x0, y0, x1, y1) of mask."""
        if box is None:
            x0, y0, x1, y1 = 0, 0, self.w, self.h
        else:
            x0, y0, x1, y1 = box
        zs = self.z[y0:y1, x0:x1]
        m = mask & (depth < zs)
        if not m.any():
            return
        zs[m] = depth if np.isscalar(depth) else depth[m]
        self.label[y0:y1, x0:x1][m] = cls
        self.inst[y0:y1, x0:x1][m] = cls if inst is None else inst

    def paint_polys(self, polys: list[np.ndarray], depth: float, cls: int, inst: int | None = None) -> None:
        """Fill image-space polygons (float Nx2 arrays) at one depth."""
        pts = np.concatenate(polys)
        x0 = max(0, int(np.floor(pts[:, 0].min())))
        y0 = max(0, int(np.floor(pts[:, 1].min())))
        x1 = min(self.w, int(np.ceil(pts[:, 0].max())) + 1)
        y1 = min(self.h, int(np.ceil(pts[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shift = 4  # sub-pixel precision keeps thin poles and far objects from vanishing or jumping
        for p in polys:
            q = np.round((p - [x0, y0]) * (1 << shift)).astype(np.int32)
            cv2.fillPoly(m, [q], 1, lineType=cv2.LINE_8, shift=shift)
        self.paint(m.astype(bool), depth, cls, inst, (x0, y0, x1, y1))

    def box_poly(self, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
        """Silhouette (convex hull) of a world box."""
        pts = np.array([self.px(x, y, z) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], np.float32)
        return cv2.convexHull(pts).reshape(-1, 2)

    def ellipse_poly(self, cx: float, cy: float, z: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.array([self.px(cx + rx * np.cos(a), cy + ry * np.sin(a), z) for a in t], np.float32)

    def visible(self, x: float, z: float) -> bool:
        u, _ = self.px(x, 0, z)
        return -0.3 * self.w < u < 1.3 * self.w


def make_layout(rng: np.random.Generator, size: tuple[int, int] = (256, 128)) -> tuple[np.ndarray, np.ndarray]:
    """A random street-scene label map (uint8 Cityscapes ids) and instance map (int32, class*1000+k).

    size is (W, H). Shares of the 19 train classes roughly follow the Cityscapes train split.
    """
    s = _Scene(rng, size)
    street = _street(s)
    _ground(s, street)
    _facades(s, street)
    _far_end(s, street)
    for side in (-1, 1):
        _side_objects(s, street, side)
    _road_objects(s, street)
    _ego_and_border(s)
    return s.label, s.inst


def _street(s: _Scene) -> dict:
    rng = s.rng
    lanes_l = int(rng.integers(1, 4))
    lanes_r = int(rng.integers(0, 2))
    lane = rng.uniform(3.2, 3.8)
    road_l = -(lanes_l * lane - rng.uniform(1.0, 2.2))
    road_r = lanes_r * lane + rng.uniform(1.0, 2.2)
    st: dict = {"lane": lane, "road": (road_l, road_r), "tram": rng.random() < 0.05}
    for side, edge in ((-1, road_l), (1, road_r)):
        walk = rng.uniform(1.2, 2.6)
        grass = rng.uniform(1.0, 3.5) if rng.random() < 0.18 else 0.0
        kind = rng.choice(["building", "park"], p=[0.87, 0.13])
        facade = edge + side * (walk + grass + rng.uniform(0.0, 0.4))
        st[side] = {"edge": edge, "walk": edge + side * walk, "grass": grass, "facade": facade, "kind": kind,
                    "wall": rng.random() < 0.24, "fence": rng.random() < 0.15}
    st["z_end"] = rng.uniform(60, 220)
    return st


def _ground(s: _Scene, st: dict) -> None:
    below = s.dy > 0.05
    dyc = np.where(below, s.dy, 1.0)
    depth = np.where(below, s.f * s.hc / dyc, np.inf).astype(np.float32)
    lat = s.dx * s.hc / dyc  # lateral world position of each ground pixel
    road_l, road_r = st["road"]
    cls = np.full(s.label.shape, TERRAIN, np.uint8)
    cls[(lat >= st[-1]["walk"]) & (lat <= st[1]["walk"])] = SIDEWALK
    cls[(lat >= road_l) & (lat <= road_r)] = ROAD
    if st["tram"]:
        cls[np.abs(lat - st["lane"] * 0.2) < 0.9] = RAIL_TRACK
    for cid in (ROAD, SIDEWALK, TERRAIN, RAIL_TRACK):
        s.paint(below & (cls == cid), depth, cid)


def _blocks(rng: np.random.Generator, z_end: float) -> tuple[np.ndarray, np.ndarray]:
    """Building blocks along the street: their far ends and heights (0 = a gap / side street)."""
    ends, heights = [], []
    z = 0.0
    while z < z_end:
        z += rng.uniform(8, 35)
        ends.append(z)
        heights.append(0.0 if rng.random() < 0.12 else rng.uniform(7, 26))
    return np.array(ends), np.array(heights)


def _facades(s: _Scene, st: dict) -> None:
    rng = s.rng
    for side in (-1, 1):
        d = st[side]
        xf = d["facade"]
        cols = (s.dx * side) > 0.5
        dxc = np.where(cols, s.dx, side * 1.0)
        zf = (s.f * xf / dxc).astype(np.float32)  # depth of the facade seen in each column
        ok = cols & (zf > 0.5) & (zf < st["z_end"])
        height_at = s.dy * (-xf / dxc)  # world height seen at each pixel on the facade plane
        ends, heights = _blocks(rng, st["z_end"])
        hz = heights[np.minimum(np.searchsorted(ends, zf), len(heights) - 1)]
        body = ok & (height_at >= -s.hc) & (height_at <= hz - s.hc)
        if d["kind"] == "park":
            # a tree line instead of houses: ragged top, vegetation all the way down
            tops = 4 + 6 * _noise1d(rng, zf, 6.0)
            s.paint(ok & (height_at >= -s.hc) & (height_at <= tops - s.hc), zf, VEGETATION)
        else:
            s.paint(body, zf, BUILDING)
            # hedges and front-yard bushes hide part of the ground floor
            if rng.random() < 0.35:
                hh = 0.8 + 1.6 * _noise1d(rng, zf, 4.0)
                s.paint(ok & (height_at >= -s.hc) & (height_at <= hh - s.hc), zf * 0.97, VEGETATION)
        if d["wall"]:
            _barrier(s, rng, cols, dxc, d["walk"] + side * 0.15, (4, 25), (10, 60), (1.0, 2.6), WALL)
        if d["fence"]:
            _barrier(s, rng, cols, dxc, d["walk"] + side * 0.05, (3, 20), (15, 80), (1.1, 2.2), FENCE)


def _barrier(s: _Scene, rng: np.random.Generator, cols: np.ndarray, dxc: np.ndarray, x: float,
             start: tuple[float, float], length: tuple[float, float], height: tuple[float, float], cls: int) -> None:
    """A wall or fence along the sidewalk at lateral position x: a random stretch of random height."""
    z0 = rng.uniform(*start)
    z1 = z0 + rng.uniform(*length)
    top = rng.uniform(*height)
    zw = (s.f * x / dxc).astype(np.float32)
    hw = s.dy * (-x / dxc)
    s.paint(cols & (zw > z0) & (zw < z1) & (hw >= -s.hc) & (hw <= top - s.hc), zw, cls)


def _far_end(s: _Scene, st: dict) -> None:
    """The street's far end: a cross facade (or a tree line), and background buildings behind gaps."""
    rng = s.rng
    ze = st["z_end"]
    xl, xr = st[-1]["facade"], st[1]["facade"]
    u0, _ = s.px(xl, 0, ze)
    u1, _ = s.px(xr, 0, ze)
    cls = VEGETATION if rng.random() < 0.2 else BUILDING
    hgt = rng.uniform(8, 30)
    _, top = s.px(0, hgt, ze)
    _, bot = s.px(0, 0, ze)
    poly = np.array([[u0, top], [u1, top], [u1, bot], [u0, bot]], np.float32)
    s.paint_polys([poly], ze, cls)
    # skyline behind everything so gaps do not show only sky
    zb = 400.0
    xs = np.arange(s.w)
    skyline = _noise1d(rng, xs.astype(np.float32), 14.0)
    tops = s.yh - s.f * (rng.uniform(5, 25) * skyline) / zb
    m = (np.arange(s.h)[:, None] >= tops[None, :]) & (s.dy < 2)
    s.paint(m, zb, VEGETATION if rng.random() < 0.4 else BUILDING)


def _noise1d(rng: np.random.Generator, t: np.ndarray, period: float) -> np.ndarray:
    """Smooth random values in 0..1 along coordinate t (period in t's units)."""
    knots = rng.random(64)
    u = np.nan_to_num(np.asarray(t, np.float64) / period, posinf=0.0, neginf=0.0) % 63
    i = np.floor(u).astype(np.int64)
    fr = u - i
    fr = fr * fr * (3 - 2 * fr)
    return (knots[i] * (1 - fr) + knots[i + 1] * fr).astype(np.float32)


def _side_objects(s: _Scene, st: dict, side: int) -> None:
    """Things on one sidewalk: trees, poles with signs and lights, people, parked bicycles."""
    rng = s.rng
    d = st[side]
    edge, walk = d["edge"], d["walk"]
    # trees along the kerb
    if rng.random() < 0.5:
        z = rng.uniform(4, 14)
        step = rng.uniform(7, 16)
        while z < min(st["z_end"], 120):
            if rng.random() < 0.8:
                _tree(s, edge + side * rng.uniform(0.6, 1.4), z)
            z += step * rng.uniform(0.7, 1.3)
    # poles: street lamps, sign posts, traffic lights
    z = rng.uniform(4, 20)
    while z < min(st["z_end"], 90):
        _pole(s, edge + side * rng.uniform(0.3, 0.7), z, side)
        z += rng.uniform(12, 38)
    # pedestrians
    n = int(rng.poisson(1.6))
    for _ in range(n):
        x = rng.uniform(min(edge, walk), max(edge, walk))
        zz = rng.uniform(4, 50)
        if s.visible(x, zz):
            _person(s, x, zz, PERSON)
    # a parked motorcycle
    if rng.random() < 0.04:
        zz = rng.uniform(5, 30)
        x = edge + side * rng.uniform(0.5, 1.0)
        s.paint_polys([s.box_poly(x - 0.35, x + 0.35, 0, 1.1, zz, zz + 2.0)], zz, MOTORCYCLE, s.instance_id(MOTORCYCLE))
    # parked bicycles
    if rng.random() < 0.38:
        zz = rng.uniform(5, 25)
        for _ in range(int(rng.integers(1, 6))):
            _bicycle(s, edge + side * rng.uniform(0.4, 1.2), zz, side_view=True)
            zz += rng.uniform(0.7, 1.2)


def _tree(s: _Scene, x: float, z: float) -> None:
    rng = s.rng
    th = rng.uniform(2.0, 3.5)
    tw = rng.uniform(0.2, 0.4)
    s.paint_polys([s.box_poly(x - tw / 2, x + tw / 2, 0, th + 0.5, z, z)], z, VEGETATION)
    r = rng.uniform(1.8, 3.2)
    blobs = [s.ellipse_poly(x + rng.normal(0, r * 0.4), th + r * rng.uniform(0.5, 1.1), z,
                            r * rng.uniform(0.6, 1.0), r * rng.uniform(0.6, 1.0)) for _ in range(4)]
    s.paint_polys(blobs, z - 0.01, VEGETATION)


def _pole(s: _Scene, x: float, z: float, side: int) -> None:
    rng = s.rng
    kind = rng.choice(["lamp", "sign", "light", "light_sign"], p=[0.35, 0.35, 0.15, 0.15])
    pw = rng.uniform(0.09, 0.14)
    ph = {"lamp": rng.uniform(6, 9), "sign": rng.uniform(2.5, 3.5)}.get(str(kind), rng.uniform(3.5, 5.5))
    s.paint_polys([s.box_poly(x - pw / 2, x + pw / 2, 0, ph, z, z)], z, POLE)
    if kind in ("sign", "light_sign"):
        sw = rng.uniform(0.5, 0.75)
        sy = ph - (0.1 if kind == "sign" else 1.6)
        if rng.random() < 0.5:
            poly = s.ellipse_poly(x, sy - sw / 2, z - 0.05, sw / 2, sw / 2, 16)
        else:
            poly = s.box_poly(x - sw / 2, x + sw / 2, sy - sw, sy, z - 0.05, z - 0.05)
        s.paint_polys([poly], z - 0.05, SIGN)
        if rng.random() < 0.3:  # a second sign below
            s.paint_polys([s.box_poly(x - sw / 2, x + sw / 2, sy - 1.5 * sw, sy - 1.05 * sw, z - 0.05, z - 0.05)],
                          z - 0.05, SIGN)
    if kind in ("light", "light_sign"):
        lw, lh = rng.uniform(0.3, 0.4), rng.uniform(0.9, 1.1)
        s.paint_polys([s.box_poly(x - lw / 2, x + lw / 2, ph - lh, ph, z - 0.08, z - 0.08)], z - 0.08, LIGHT)
        if rng.random() < 0.5:  # a mast arm with a second light over the road
            ax = x - side * rng.uniform(2.0, 4.0)
            s.paint_polys([s.box_poly(min(x, ax), max(x, ax), ph - 0.15, ph, z, z)], z, POLE)
            s.paint_polys([s.box_poly(ax - lw / 2, ax + lw / 2, ph - lh - 0.1, ph - 0.1, z - 0.08, z - 0.08)],
                          z - 0.08, LIGHT)
    if kind == "lamp":
        arm = -side * rng.uniform(0.8, 1.6)
        s.paint_polys([s.box_poly(min(x, x + arm), max(x, x + arm), ph - 0.15, ph, z, z)], z, POLE)


def _person_polys(s: _Scene, x: float, z: float, h: float, base: float = 0.0) -> list[np.ndarray]:
    """Head, torso, arms and legs of a standing figure of height h whose feet are at height base."""
    rng = s.rng
    w = h * 0.27
    stride = rng.uniform(0, 0.18) * h
    head = s.ellipse_poly(x, base + h * 0.93, z, h * 0.065, h * 0.07, 12)
    torso = s.box_poly(x - w / 2, x + w / 2, base + h * 0.47, base + h * 0.86, z, z)
    leg1 = np.array([s.px(x - w * 0.45, base + h * 0.48, z), s.px(x - 0.02, base + h * 0.48, z),
                     s.px(x - stride / 2, base, z), s.px(x - stride / 2 - w * 0.35, base, z)], np.float32)
    leg2 = np.array([s.px(x + 0.02, base + h * 0.48, z), s.px(x + w * 0.45, base + h * 0.48, z),
                     s.px(x + stride / 2 + w * 0.35, base, z), s.px(x + stride / 2, base, z)], np.float32)
    arms = s.box_poly(x - w * 0.65, x + w * 0.65, base + h * 0.5, base + h * 0.84, z, z)
    return [head, torso, leg1, leg2, arms]


def _person(s: _Scene, x: float, z: float, cls: int) -> None:
    h = s.rng.uniform(1.55, 1.95)
    s.paint_polys(_person_polys(s, x, z, h), z, cls, s.instance_id(cls))


def _bicycle(s: _Scene, x: float, z: float, side_view: bool, rider: bool = False) -> None:
    """Filled wheels (annotators outline the whole wheel) and a frame of thin boxes; rider=True seats a rider."""
    inst = s.instance_id(BICYCLE)
    r = 0.34
    if side_view:
        za, zb = z, z + 1.05
        # annotators outline the whole wheel, spokes included: filled wheels
        for zc in (za, zb):
            outer = _wheel(s, x, r, zc, r)
            s.paint_polys([outer], zc, BICYCLE, inst)
        frame = [s.box_poly(x - 0.03, x + 0.03, r, r + 0.5, za + 0.2, zb - 0.2),
                 s.box_poly(x - 0.03, x + 0.03, r, r + 0.08, za, zb)]
        s.paint_polys(frame, za + 0.3, BICYCLE, inst)
    else:
        poly = [s.box_poly(x - 0.04, x + 0.04, 0, 2 * r, z, z), s.box_poly(x - 0.3, x + 0.3, 0.95, 1.02, z, z)]
        s.paint_polys(poly, z, BICYCLE, inst)
    if rider:
        h = s.rng.uniform(1.6, 1.9)
        s.paint_polys(_person_polys(s, x, z + (0.5 if side_view else 0.2), h * 0.78, base=0.55), z - 0.1, RIDER,
                      s.instance_id(RIDER))


def _wheel(s: _Scene, x: float, cy: float, z: float, r: float) -> np.ndarray:
    # a side-view wheel lies in the plane x = const, so it projects to a thin ellipse
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    pts = [s.px(x + 0.04 * np.cos(a), cy + r * np.sin(a), z + r * np.cos(a)) for a in t]
    return cv2.convexHull(np.array(pts, np.float32)).reshape(-1, 2)


def _vehicle(s: _Scene, cls: int, x: float, z: float, heading: int = 1) -> None:
    """A vehicle seen from behind/front (heading +-1 along the street)."""
    rng = s.rng
    inst = s.instance_id(cls)
    if cls == CAR:
        w, ln, h = rng.uniform(1.7, 1.95), rng.uniform(3.9, 4.8), rng.uniform(1.4, 1.6)
        polys = [s.box_poly(x - w / 2, x + w / 2, 0, h * 0.6, z, z + ln),
                 s.box_poly(x - w * 0.42, x + w * 0.42, h * 0.55, h, z + ln * 0.25, z + ln * 0.75)]
    elif cls == TRUCK:
        w, ln, h = 2.5, rng.uniform(6, 9), rng.uniform(3.0, 3.8)
        polys = [s.box_poly(x - w / 2, x + w / 2, 0.3, h, z, z + ln),
                 s.box_poly(x - w / 2, x + w / 2, 0, 2.6, z + ln, z + ln + 2)]
    elif cls == BUS:
        w, ln, h = 2.55, rng.uniform(11, 13), rng.uniform(3.0, 3.3)
        polys = [s.box_poly(x - w / 2, x + w / 2, 0.1, h, z, z + ln)]
    elif cls == TRAIN:
        w, ln, h = 2.6, rng.uniform(25, 40), rng.uniform(3.3, 3.7)
        polys = [s.box_poly(x - w / 2, x + w / 2, 0.2, h, z, z + ln)]
    elif cls == MOTORCYCLE:
        polys = [s.box_poly(x - 0.3, x + 0.3, 0, 1.0, z, z + 2.0),
                 s.box_poly(x - 0.4, x + 0.4, 0.8, 1.1, z + 1.5, z + 1.6)]
        s.paint_polys(polys, z, cls, inst)
        h = rng.uniform(1.6, 1.85)
        s.paint_polys(_person_polys(s, x, z + 0.3, h * 0.75, base=0.5), z - 0.1, RIDER, s.instance_id(RIDER))
        return
    else:  # pragma: no cover - guarded by callers
        raise ValueError(cls)
    s.paint_polys(polys, z, cls, inst)


def _road_objects(s: _Scene, st: dict) -> None:
    """Moving and parked traffic on the road."""
    rng = s.rng
    road_l, road_r = st["road"]
    lane = st["lane"]
    placed: list[tuple[float, float]] = []

    def free(x: float, z: float, ln: float) -> bool:
        return all(abs(x - px_) > 2.2 or not (z - ln < pz < z + ln) for px_, pz in placed)

    if st["tram"]:
        _vehicle(s, TRAIN, lane * 0.2, rng.uniform(14, 30))
        placed.append((lane * 0.2, 30.0))
    # parked cars along both kerbs
    for side, edge in ((-1, road_l), (1, road_r)):
        if rng.random() < 0.55:
            z = rng.uniform(6, 14)
            while z < min(st["z_end"], 90):
                if rng.random() < 0.6:
                    cls = CAR if rng.random() < 0.985 or z < 15 else TRUCK
                    x = edge - side * 1.1
                    _vehicle(s, cls, x, z)
                    placed.append((x, z))
                z += rng.uniform(5.0, 7.5)
    # traffic in the lanes: rare large vehicles first (their own draws keep their share steady), then cars
    lanes_x = lambda: rng.uniform(road_l + 1.5, road_r - 1.5) if road_r - road_l > 3 else 0.0  # noqa: E731
    for cls, p, z0, z1 in ((BUS, 0.09, 16, 38), (TRUCK, 0.1, 16, 40), (MOTORCYCLE, 0.12, 8, 35)):
        if rng.random() < p:
            x, z = lanes_x(), rng.uniform(z0, z1)
            if free(x, z, 6) and s.visible(x, z):
                _vehicle(s, cls, x, z)
                placed.append((x, z))
    for _ in range(int(rng.poisson(2.0))):
        x, z = lanes_x(), rng.uniform(8, 70)
        if free(x, z, 6) and s.visible(x, z):
            _vehicle(s, CAR, x, z)
            placed.append((x, z))
    # cyclists
    for _ in range(int(rng.random() < 0.28) + int(rng.random() < 0.08)):
        x = road_r - 1.3 if rng.random() < 0.5 else road_l + 1.3
        z = rng.uniform(5, 35)
        if free(x, z, 3):
            _bicycle(s, x, z, side_view=False, rider=True)
            placed.append((x, z))
    # a pedestrian crossing
    if rng.random() < 0.15:
        z = rng.uniform(6, 25)
        for _ in range(int(rng.integers(1, 4))):
            _person(s, rng.uniform(road_l, road_r), z + rng.uniform(-1, 1), PERSON)


def _ego_and_border(s: _Scene) -> None:
    rng = s.rng
    if rng.random() < 0.5:  # the bonnet of the recording car
        hh = s.h * rng.uniform(0.05, 0.12)
        xs = np.arange(s.w, dtype=np.float32)
        curve = s.h - hh * (1 - 0.5 * ((xs - s.w / 2) / (s.w / 2)) ** 2)
        m = np.arange(s.h)[:, None] >= curve[None, :]
        s.label[m] = EGO
        s.inst[m] = EGO
        s.z[m] = 0
    if rng.random() < 0.3:  # a thin out-of-roi frame, as Cityscapes has at the image border
        b = max(1, s.w // 128)
        m = np.zeros(s.label.shape, bool)
        m[:b], m[-b:], m[:, :b], m[:, -b:] = True, True, True, True
        s.label[m] = OUT_OF_ROI
        s.inst[m] = OUT_OF_ROI


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Dataset writer
# ---------------------------------------------------------------------------------------------
def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one sample: independent of how many others are generated."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _SPLIT_CODE.get(split, 9), int(index)])


def sample_name(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of sample `index` of `split`."""
    cities = TRAIN_CITIES if split == "train" else VAL_CITIES
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{FRAME:06d}"


def make_sample(seed: int, split: str, index: int, size: tuple[int, int] = (256, 128)) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """(image RGB, label ids uint8, instance ids int32) of one sample."""
    rng = sample_rng(seed, split, index)
    label, inst = make_layout(rng, size)
    img = render_scene(label, inst, int(rng.integers(2**31)))
    return img, label, inst


_NAME_RE = re.compile(r"^(?P<stem>[a-z]+_(?P<seq>\d{6})_\d{6})_(leftImg8bit|gtFine_\w+)\.png$")


def make_sample_dataset(
    out: str | Path,
    n_train: int = 200,
    n_val: int = 50,
    size: tuple[int, int] = (256, 128),
    seed: int = 0,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    color: bool = True,
) -> Path:
    """Write the procedural sample dataset under `out` (Cityscapes layout) and return its root.

    Re-running into the same folder rewrites identical files and removes generated samples beyond
    the requested counts, so the folder always holds exactly what was asked for.
    """
    w, h = (int(v) for v in size)
    if w < 32 or h < 16:
        raise DataError(f"sample size {w}x{h} is too small (minimum 32x16)")
    if n_train < 0 or n_val < 0:
        raise DataError("sample counts must be >= 0")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError("exists and is not a folder", root)
    jobs = [("train", i) for i in range(n_train)] + [("val", i) for i in range(n_val)]
    total = len(jobs)
    if progress:
        progress(0, total)
    palette = CITYSCAPES.palette
    for done, (split, i) in enumerate(jobs, 1):
        if cancel is not None and cancel():
            raise Cancelled()
        img, label, inst = make_sample(seed, split, i, (w, h))
        city, stem = sample_name(split, i)
        gt = root / "gtFine" / split / city
        write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", img, rgb=True)
        write_png(gt / f"{stem}_gtFine_labelIds.png", label)
        write_png(gt / f"{stem}_gtFine_instanceIds.png", inst.astype(np.uint16))
        if color:
            write_png(gt / f"{stem}_gtFine_color.png", palette[label], rgb=True)
        if progress:
            progress(done, total)
    _remove_stale(root, {"train": n_train, "val": n_val})
    return root


def _remove_stale(root: Path, counts: dict[str, int]) -> None:
    """Delete generated files of ours with indices beyond the requested counts (from an earlier, larger run)."""
    for top in ("leftImg8bit", "gtFine"):
        for split, n in counts.items():
            cities = TRAIN_CITIES if split == "train" else VAL_CITIES
            for ci, city in enumerate(cities):
                d = root / top / split / city
                if not d.is_dir():
                    continue
                for p in d.iterdir():
                    mt = _NAME_RE.match(p.name)
                    if mt and mt.group("stem").startswith(city + "_"):
                        index = int(mt.group("seq")) * len(cities) + ci
                        if index >= n:
                            p.unlink()
