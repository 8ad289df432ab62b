"""Pixel-exact editing of a label map and its instance map, with per-stroke undo stored as compact diffs.

Every tool rasterises to a boolean mask (no anti-aliasing: a GAN fed mixed ids renders garbage) and
writes one class id through it. A stroke (press .. release) is one undo step; its diff keeps only the
bounding box, a bit-packed mask of changed pixels and their old/new values, zlib-compressed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from segbalance.core.datasets.labels import LabelSet

MAX_UNDO = 200  # the issue asks for >= 100 steps
THING_BASE = 1000  # Cityscapes instance encoding: class_id * 1000 + k for things, class id for stuff


# -- rasterisation (all exact, all LINE_8 / integer masks) ---------------------------------
def footprint(size: int, shape: str = "round") -> np.ndarray:
    """Boolean brush stamp of `size` pixels across; round = disk, square = full square."""
    size = max(1, int(size))
    r = size // 2
    n = 2 * r + 1
    if shape == "square":
        return np.ones((n, n), dtype=bool)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (xx * xx + yy * yy) <= (size / 2.0) ** 2


def stroke_mask(
    points: list[tuple[int, int]], size: int, shape: str, hw: tuple[int, int]
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """(bbox, mask) of a brush dragged through `points` (x, y): the stamp at every pixel of the 8-connected
    polyline. bbox is (y0, x0, y1, x1) clipped to the map; None when nothing falls inside."""
    h, w = hw
    fp = footprint(size, shape)
    r = fp.shape[0] // 2
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    x0, y0 = int(pts[:, 0].min()) - r, int(pts[:, 1].min()) - r
    x1, y1 = int(pts[:, 0].max()) + r + 1, int(pts[:, 1].max()) + r + 1
    # draw in a padded local frame so stamps near the border are exact, then clip
    line = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    local = (pts - [x0, y0]).astype(np.int32)
    if len(local) == 1:
        line[local[0, 1], local[0, 0]] = 1
    else:
        cv2.polylines(line, [local.reshape(-1, 1, 2)], False, 1, thickness=1, lineType=cv2.LINE_8)
    mask = cv2.dilate(line, fp.astype(np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return _clip(y0, x0, mask, h, w)


def polygon_mask(points: list[tuple[int, int]], hw: tuple[int, int]) -> tuple[tuple, np.ndarray] | None:
    """(bbox, mask) of a filled polygon given as (x, y) vertices, boundary included, no anti-aliasing."""
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    if len(pts) < 3:
        return None
    x0, y0 = int(pts[:, 0].min()), int(pts[:, 1].min())
    x1, y1 = int(pts[:, 0].max()) + 1, int(pts[:, 1].max()) + 1
    m = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(m, [(pts - [x0, y0]).astype(np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
    return _clip(y0, x0, m.astype(bool), *hw)


def rect_mask(p0: tuple[int, int], p1: tuple[int, int], hw: tuple[int, int]) -> tuple[tuple, np.ndarray] | None:
    """(bbox, mask) of the axis-aligned rectangle with corners p0, p1 (x, y), both inclusive."""
    x0, x1 = sorted((int(p0[0]), int(p1[0])))
    y0, y1 = sorted((int(p0[1]), int(p1[1])))
    return _clip(y0, x0, np.ones((y1 - y0 + 1, x1 - x0 + 1), dtype=bool), *hw)


def flood_mask(label: np.ndarray, x: int, y: int) -> tuple[tuple, np.ndarray] | None:
    """(bbox, mask) of the 4-connected region of equal id containing (x, y)."""
    h, w = label.shape
    if not (0 <= x < w and 0 <= y < h):
        return None
    m = np.zeros((h + 2, w + 2), dtype=np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(label, m, (int(x), int(y)), 0, 0, 0, flags)
    m = m[1:-1, 1:-1]
    ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    return (y0, x0, y1, x1), m[y0:y1, x0:x1].astype(bool)


def layer_mask(mask: np.ndarray, x: int, y: int, scale: float, hw: tuple[int, int]) -> tuple[tuple, np.ndarray] | None:
    """(bbox, mask) of a layer's boolean mask scaled (nearest neighbour) and placed with its top-left at (x, y)."""
    mask = np.asarray(mask, dtype=np.uint8)
    if scale != 1.0:
        nh = max(1, round(mask.shape[0] * scale))
        nw = max(1, round(mask.shape[1] * scale))
        mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return _clip(int(y), int(x), mask.astype(bool), *hw)


def _clip(y0: int, x0: int, mask: np.ndarray, h: int, w: int) -> tuple[tuple, np.ndarray] | None:
    y1, x1 = y0 + mask.shape[0], x0 + mask.shape[1]
    cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
    if cy0 >= cy1 or cx0 >= cx1:
        return None
    return (cy0, cx0, cy1, cx1), mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]


# -- undo diffs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Diff:
    """One undo step: changed pixels inside a bbox, with their old and new label and instance values."""

    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1
    mask_bits: bytes  # zlib(np.packbits(changed))
    old_label: bytes  # zlib of uint8 values at changed pixels (row-major order)
    new_label: bytes
    old_inst: bytes  # zlib of int32 values
    new_inst: bytes
    count: int

    @property
    def nbytes(self) -> int:
        return len(self.mask_bits) + len(self.old_label) + len(self.new_label) + len(self.old_inst) + len(
            self.new_inst
        ) + 64

    def _mask(self) -> np.ndarray:
        y0, x0, y1, x1 = self.bbox
        n = (y1 - y0) * (x1 - x0)
        bits = np.frombuffer(zlib.decompress(self.mask_bits), dtype=np.uint8)
        return np.unpackbits(bits, count=n).reshape(y1 - y0, x1 - x0).astype(bool)

    def apply(self, label: np.ndarray, inst: np.ndarray, *, reverse: bool) -> None:
        y0, x0, y1, x1 = self.bbox
        m = self._mask()
        lab = zlib.decompress(self.old_label if reverse else self.new_label)
        ins = zlib.decompress(self.old_inst if reverse else self.new_inst)
        label[y0:y1, x0:x1][m] = np.frombuffer(lab, dtype=np.uint8)
        inst[y0:y1, x0:x1][m] = np.frombuffer(ins, dtype=np.int32)


def make_diff(
    bbox: tuple[int, int, int, int],
    old_label: np.ndarray,
    new_label: np.ndarray,
    old_inst: np.ndarray,
    new_inst: np.ndarray,
) -> Diff | None:
    """Diff of two same-shaped bbox crops; None when nothing changed."""
    changed = (old_label != new_label) | (old_inst != new_inst)
    count = int(changed.sum())
    if count == 0:
        return None
    z = lambda a: zlib.compress(np.ascontiguousarray(a).tobytes(), 1)  # noqa: E731
    return Diff(
        bbox=bbox,
        mask_bits=z(np.packbits(changed)),
        old_label=z(old_label[changed]),
        new_label=z(new_label[changed]),
        old_inst=z(old_inst[changed].astype(np.int32)),
        new_inst=z(new_inst[changed].astype(np.int32)),
        count=count,
    )


def _union(a: tuple | None, b: tuple) -> tuple:
    if a is None:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


# -- the editable map ----------------------------------------------------------------------
def instance_from_label(label: np.ndarray) -> np.ndarray:
    """Instance map for a label map that has none: every pixel is 'stuff' (its class id)."""
    return label.astype(np.int32)


class LabelEdit:
    """A label map + instance map under edit, with strokes, undo and redo.

    Usage: begin_stroke(class_id) .. paint(bbox, mask) xN .. end_stroke(); or the one-shot tools
    (fill_polygon, fill_rect, flood_fill, paste_mask) which are one stroke each.
    """

    def __init__(
        self,
        label: np.ndarray,
        label_set: LabelSet,
        instance: np.ndarray | None = None,
        *,
        max_undo: int = MAX_UNDO,
    ) -> None:
        if label.ndim != 2 or label.dtype != np.uint8:
            raise ValueError("label map must be a 2-D uint8 array")
        self.label = np.ascontiguousarray(label).copy()
        self.instance = (
            instance_from_label(self.label) if instance is None else np.ascontiguousarray(instance, np.int32).copy()
        )
        if self.instance.shape != self.label.shape:
            raise ValueError("instance map size differs from the label map")
        self.label_set = label_set
        self.max_undo = max_undo
        self.undo_stack: list[Diff] = []
        self.redo_stack: list[Diff] = []
        self.only_over: int | None = None  # "paint only over class X"
        self.revision = 0  # bumps on every change, so views know when to refresh
        self._stroke: dict | None = None
        self._next_k: dict[int, int] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.label.shape  # type: ignore[return-value]

    # -- strokes -------------------------------------------------------------------------
    def begin_stroke(self, class_id: int) -> None:
        """Start one undoable stroke painting `class_id` (things get one fresh instance id per stroke)."""
        if self._stroke is not None:
            self.end_stroke()
        cls = self.label_set.by_id.get(int(class_id))
        if cls is not None and cls.has_instances:
            inst_value = self.fresh_instance_id(int(class_id))
        else:
            inst_value = int(class_id)
        self._stroke = {"id": int(class_id), "inst": inst_value, "bbox": None, "old": {}}

    def paint(self, region: tuple[tuple, np.ndarray] | None) -> tuple | None:
        """Write the stroke's id through a (bbox, mask) region; returns the bbox actually changed (or None)."""
        if region is None or self._stroke is None:
            return None
        (y0, x0, y1, x1), m = region
        st = self._stroke
        lab = self.label[y0:y1, x0:x1]
        ins = self.instance[y0:y1, x0:x1]
        self._remember(st, (y0, x0, y1, x1))
        if self.only_over is not None:
            # the constraint looks at the map as it was before this stroke, so a stroke can cross itself
            m = m & (self._orig_label(st, (y0, x0, y1, x1)) == self.only_over)
        if not m.any():
            return None
        lab[m] = st["id"]
        ins[m] = st["inst"]
        st["bbox"] = _union(st["bbox"], (y0, x0, y1, x1))
        self.revision += 1
        return (y0, x0, y1, x1)

    def end_stroke(self) -> Diff | None:
        """Close the stroke and push its diff on the undo stack (nothing if it changed no pixel)."""
        st, self._stroke = self._stroke, None
        if st is None or st["bbox"] is None:
            return None
        y0, x0, y1, x1 = st["bbox"]
        old_l = self._orig_label(st, st["bbox"])
        old_i = self._orig_inst(st, st["bbox"])
        d = make_diff(st["bbox"], old_l, self.label[y0:y1, x0:x1], old_i, self.instance[y0:y1, x0:x1])
        if d is None:
            return None
        self.undo_stack.append(d)
        if len(self.undo_stack) > self.max_undo:
            del self.undo_stack[0]
        self.redo_stack.clear()
        return d

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    # Originals of a stroke are kept as tiles copied the first time the stroke touches them, so a stroke
    # costs memory proportional to what it covers, not to the map.
    TILE = 128

    def _tiles(self, bbox: tuple) -> list[tuple[int, int]]:
        y0, x0, y1, x1 = bbox
        t = self.TILE
        return [(ty, tx) for ty in range(y0 // t, (y1 - 1) // t + 1) for tx in range(x0 // t, (x1 - 1) // t + 1)]

    def _remember(self, st: dict, bbox: tuple) -> None:
        t = self.TILE
        for ty, tx in self._tiles(bbox):
            if (ty, tx) not in st["old"]:
                sl = np.s_[ty * t : (ty + 1) * t, tx * t : (tx + 1) * t]
                st["old"][(ty, tx)] = (self.label[sl].copy(), self.instance[sl].copy())

    def _orig(self, st: dict, bbox: tuple, which: int, dtype: type) -> np.ndarray:
        y0, x0, y1, x1 = bbox
        out = np.empty((y1 - y0, x1 - x0), dtype=dtype)
        t = self.TILE
        src = self.label if which == 0 else self.instance
        for ty, tx in self._tiles(bbox):
            ty0, tx0 = ty * t, tx * t
            tile = st["old"][(ty, tx)][which] if (ty, tx) in st["old"] else src[ty0 : ty0 + t, tx0 : tx0 + t]
            ay0, ax0 = max(y0, ty0), max(x0, tx0)
            ay1, ax1 = min(y1, ty0 + tile.shape[0]), min(x1, tx0 + tile.shape[1])
            out[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] = tile[ay0 - ty0 : ay1 - ty0, ax0 - tx0 : ax1 - tx0]
        return out

    def _orig_label(self, st: dict, bbox: tuple) -> np.ndarray:
        return self._orig(st, bbox, 0, np.uint8)

    def _orig_inst(self, st: dict, bbox: tuple) -> np.ndarray:
        return self._orig(st, bbox, 1, np.int32)

    # -- one-shot tools ---------------------------------------------------------------------
    def _one_shot(self, class_id: int, region: tuple | None) -> tuple | None:
        self.begin_stroke(class_id)
        changed = self.paint(region)
        self.end_stroke()
        return changed

    def brush(self, class_id: int, points: list[tuple[int, int]], size: int, shape: str = "round") -> tuple | None:
        """One brush stroke through `points` (x, y)."""
        return self._one_shot(class_id, stroke_mask(points, size, shape, self.shape))

    def erase(self, points: list[tuple[int, int]], size: int, shape: str = "round") -> tuple | None:
        """A brush stroke painting the label set's ignore id."""
        return self.brush(self.label_set.ignore_id, points, size, shape)

    def fill_polygon(self, class_id: int, points: list[tuple[int, int]]) -> tuple | None:
        return self._one_shot(class_id, polygon_mask(points, self.shape))

    def fill_rect(self, class_id: int, p0: tuple[int, int], p1: tuple[int, int]) -> tuple | None:
        return self._one_shot(class_id, rect_mask(p0, p1, self.shape))

    def flood_fill(self, class_id: int, x: int, y: int) -> tuple | None:
        return self._one_shot(class_id, flood_mask(self.label, x, y))

    def paste_mask(self, class_id: int, mask: np.ndarray, x: int, y: int, scale: float = 1.0) -> tuple | None:
        """Drop a layer (boolean mask of one class region) at (x, y), scaled; a thing gets a fresh instance."""
        return self._one_shot(class_id, layer_mask(mask, x, y, scale, self.shape))

    # -- undo / redo ------------------------------------------------------------------------
    def undo(self) -> tuple | None:
        """Revert the last stroke; returns its bbox (None when there is nothing to undo)."""
        if self._stroke is not None:
            self.end_stroke()
        if not self.undo_stack:
            return None
        d = self.undo_stack.pop()
        d.apply(self.label, self.instance, reverse=True)
        self.redo_stack.append(d)
        self.revision += 1
        return d.bbox

    def redo(self) -> tuple | None:
        if not self.redo_stack:
            return None
        d = self.redo_stack.pop()
        d.apply(self.label, self.instance, reverse=False)
        self.undo_stack.append(d)
        self.revision += 1
        return d.bbox

    def undo_nbytes(self) -> int:
        """Memory held by the undo and redo history."""
        return sum(d.nbytes for d in self.undo_stack) + sum(d.nbytes for d in self.redo_stack)

    # -- instances --------------------------------------------------------------------------
    def fresh_instance_id(self, class_id: int) -> int:
        """class_id*1000 + k with k unused in the map (and by earlier strokes of this session)."""
        base = class_id * THING_BASE
        if class_id not in self._next_k:
            ids = self.instance[(self.instance >= base) & (self.instance < base + THING_BASE)]
            self._next_k[class_id] = int(ids.max() - base + 1) if ids.size else 0
        k = self._next_k[class_id]
        if k >= THING_BASE:  # exhausted: fall back to the stuff encoding rather than collide with another class
            return class_id
        self._next_k[class_id] = k + 1
        return base + k

    def class_at(self, x: int, y: int) -> int | None:
        h, w = self.shape
        if 0 <= x < w and 0 <= y < h:
            return int(self.label[y, x])
        return None
