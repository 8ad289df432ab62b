"""Scene layout of the built-in sample dataset: where each class is, in a tiny pinhole-camera world.

A flat street with sidewalks and facades on both sides, objects standing on the ground, and a z-buffer
so near objects hide far ones. Everything is drawn from one generator, so a sample depends only on it.
"""

from __future__ import annotations

import cv2
import numpy as np

from segbalance.core.datasets.labels import CITYSCAPES

# Cityscapes label ids used here
UNLABELED, EGO, OUT_OF_ROI = 0, 1, 3
ROAD, SIDEWALK, RAIL_TRACK = 7, 8, 10
BUILDING, WALL, FENCE = 11, 12, 13
POLE, LIGHT, SIGN = 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 31, 32, 33
THING_IDS = frozenset(c.id for c in CITYSCAPES.classes if c.has_instances)


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
