"""Recipes and the compositor: how one new label map + instance map is made from a base map and layers.

A recipe is fully explicit (every layer's source, key, placed position, size and flip), so replay
needs no random numbers and gives the same maps bit for bit. The same compositor runs at full
resolution (recombine) and on thumbnails (the planner's prediction), so predictions and results agree.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import DataError

STRATEGIES = ("single", "multi", "recon")
# occlusion order: a pasted layer only covers pixels of a category at or below its own rank
DEFAULT_ORDER = {"void": -1, "sky": -1, "flat": 0, "construction": 1, "nature": 2, "object": 3, "vehicle": 4,
                 "human": 5}
THING_CATEGORIES = ("object", "vehicle", "human")  # removed from a recon background
PROTECTED_NAMES = ("ego vehicle", "rectification border", "out of roi")  # never painted over
GROUND_EXTRA = ("terrain",)  # ground classes besides the flat category


# a placed layer may be at most this many times the map's width / height: the planner's --scale-range
# cannot exceed it, and it bounds the memory one layer's resize may take
MAX_LAYER_SCALE = 8


class MissingSourceError(DataError):
    """A file a recipe needs is gone: that recipe fails, the others go on."""


@dataclass
class Placement:
    """One layer placed into the new map: source (sample, key), its source bbox, placed top-left and size."""

    sample: str
    key: int
    class_id: int
    bbox: tuple[int, int, int, int]  # x, y, w, h in the source map
    x: int
    y: int
    w: int
    h: int
    flip: bool = False

    def to_dict(self) -> dict:
        return {"sample": self.sample, "key": self.key, "class_id": self.class_id, "bbox": list(self.bbox),
                "x": self.x, "y": self.y, "w": self.w, "h": self.h, "flip": self.flip}


@dataclass
class Recipe:
    """How one new label map is made: strategy, base sample, placed layers (pasted in occlusion order), seed."""

    strategy: str
    base: str
    size: tuple[int, int]  # (height, width) of the new map
    layers: list[Placement] = field(default_factory=list)
    seed: int = 0
    order: dict[str, int] | None = None  # occlusion ranks per category; None = DEFAULT_ORDER

    def to_dict(self) -> dict:
        d = {"strategy": self.strategy, "base": self.base, "size": list(self.size), "seed": self.seed,
             "layers": [p.to_dict() for p in self.layers]}
        if self.order is not None:
            d["order"] = dict(self.order)
        return d

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "recipe") -> Recipe:
        """Validate and build; any malformed field raises DataError naming it."""
        def bad(msg: str) -> DataError:
            return DataError(f"{where}: {msg}")

        if not isinstance(d, dict):
            raise bad("not an object")
        strategy = d.get("strategy")
        if strategy not in STRATEGIES:
            raise bad(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        base = d.get("base")
        if not isinstance(base, str) or not base:
            raise bad("'base' must be a sample id")
        size = d.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
            raise bad("'size' must be [height, width] with positive integers")
        seed = d.get("seed", 0)
        if not _is_int(seed):
            raise bad("'seed' must be an integer")
        order = d.get("order")
        if order is not None and not (isinstance(order, dict) and all(_is_int(v) for v in order.values())):
            raise bad("'order' must map category names to integer ranks")
        layers_in = d.get("layers")
        if not isinstance(layers_in, list):
            raise bad("'layers' must be a list")
        layers = []
        for j, p in enumerate(layers_in):
            if not isinstance(p, dict):
                raise bad(f"layer {j} is not an object")
            try:
                bbox = tuple(int(v) for v in p["bbox"])
                vals = [p[k] for k in ("key", "class_id", "x", "y", "w", "h")]
                if len(bbox) != 4 or not all(_is_int(v) for v in vals) or not isinstance(p["sample"], str):
                    raise ValueError
                if bbox[2] <= 0 or bbox[3] <= 0 or p["w"] <= 0 or p["h"] <= 0 or not 0 <= p["class_id"] <= 255:
                    raise ValueError
                layers.append(Placement(p["sample"], int(p["key"]), int(p["class_id"]), bbox,  # type: ignore
                                        int(p["x"]), int(p["y"]), int(p["w"]), int(p["h"]), bool(p.get("flip"))))
            except (KeyError, TypeError, ValueError):
                raise bad(f"layer {j} needs sample, key, class_id, bbox [x,y,w,h], x, y, w>0, h>0") from None
        return cls(strategy, base, (int(size[0]), int(size[1])), layers, int(seed), order)

    def sources(self) -> list[str]:
        """Every sample the recipe reads, base first."""
        out = [self.base]
        for p in self.layers:
            if p.sample not in out:
                out.append(p.sample)
        return out

    def classes_added(self) -> list[int]:
        return sorted({p.class_id for p in self.layers})


# called after each layer with (placement, (y0, y1, x0, x1), uint8 mask of the pixels it painted there)
WriteHook = Callable[[Placement, tuple[int, int, int, int], np.ndarray], None]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- class tables the compositor needs, per label set and occlusion order --------------------------
class Rules:
    """Lookup tables: occlusion rank per id, protected ids, sky ids, ground classes, thing classes."""

    def __init__(self, ls: LabelSet, order: dict[str, int] | None = None) -> None:
        order = {**DEFAULT_ORDER, **(order or {})}
        self.rank = np.full(256, -1, np.int16)
        self.protected = np.zeros(256, bool)
        self.sky = np.zeros(256, bool)
        self.ground = np.zeros(256, bool)
        self.thing = np.zeros(256, bool)
        self.has_inst = np.zeros(256, bool)
        for c in ls.classes:
            if not 0 <= c.id <= 255:
                continue
            self.rank[c.id] = order.get(c.category, DEFAULT_ORDER["object"])
            self.protected[c.id] = c.name in PROTECTED_NAMES
            self.sky[c.id] = c.category == "sky"
            self.ground[c.id] = c.category == "flat" or c.name in GROUND_EXTRA
            self.thing[c.id] = c.category in THING_CATEGORIES
            self.has_inst[c.id] = c.has_instances
        # a label set of objects only (no categories given, e.g. a generic folder) has no background to fill
        # removed things with: recon then keeps the base map rather than erasing it to the ignore id
        self.has_stuff = any(0 <= c.id <= 255 and c.category not in THING_CATEGORIES and c.category != "void"
                             and not c.ignore_in_eval for c in ls.classes)
        self.thing_u8 = self.thing.astype(np.uint8)
        self.ignore_id = ls.ignore_id
        self._allow: dict[int, np.ndarray] = {}

    def allow(self, cid: int) -> np.ndarray:
        """bool[256]: which existing ids a layer of class `cid` may paint over."""
        return self.allow_u8(cid).view(bool)

    def allow_u8(self, cid: int) -> np.ndarray:
        """uint8[256] 0/1 form of allow() (what cv2.LUT takes)."""
        a = self._allow.get(cid)
        if a is None:
            b = (self.rank <= self.rank[cid]) & ~self.protected
            if self.ground[cid]:
                b &= ~self.sky  # no road in the sky
            a = self._allow[cid] = b.astype(np.uint8)
        return a


_RULES: dict[tuple[int, tuple], Rules] = {}


def rules_for(ls: LabelSet, order: dict[str, int] | None = None) -> Rules:
    key = (id(ls), tuple(sorted((order or {}).items())))
    r = _RULES.get(key)
    if r is None:
        r = _RULES[key] = Rules(ls, order)
    return r


def sort_layers(layers: list[Placement], rules: Rules) -> list[Placement]:
    """Paste order: lower occlusion rank first (stable), so humans end up in front of cars in front of walls."""
    return sorted(layers, key=lambda p: int(rules.rank[p.class_id]))


# -- compositing ---------------------------------------------------------------------------------
def recon_background(label: np.ndarray, rules: Rules, step: int = 4) -> np.ndarray:
    """The base with every thing (object/vehicle/human) replaced by the nearest background class.

    The nearest-class fill runs on a `step`-times smaller grid and is written back at full resolution only
    where things were, which keeps recon compositing within a few milliseconds at 2048x1024.
    """
    if not rules.has_stuff:
        return label.copy()
    removed = cv2.LUT(label, rules.thing_u8)
    if not cv2.countNonZero(removed):
        return label.copy()
    H, W = label.shape
    lr = np.ascontiguousarray(label[::step, ::step])
    rm = rules.thing[lr]
    out = label.copy()
    if rm.all():
        out[removed.view(bool)] = rules.ignore_id
        return out
    # zero pixels are sources; every other pixel gets the label index of its nearest source
    _, idx = cv2.distanceTransformWithLabels(rm.view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    src_vals = lr[~rm]  # raster order == label index order
    fill_lr = src_vals[idx - 1]
    # nearest up-sampling: full-resolution pixel (y, x) reads low-resolution cell (y // step, x // step)
    if step > 1:
        # only the box holding things needs the up-sampled fill; grid-aligned so cell (y//step, x//step) is read
        x, y, w, h = cv2.boundingRect(removed)
        x0, y0 = x // step * step, y // step * step
        x1, y1 = min(W, x + w), min(H, y + h)
        cy1, cx1 = (y1 + step - 1) // step, (x1 + step - 1) // step
        part = np.ascontiguousarray(fill_lr[y0 // step : cy1, x0 // step : cx1])
        fill = cv2.resize(part, (part.shape[1] * step, part.shape[0] * step), interpolation=cv2.INTER_NEAREST)
        cv2.copyTo(fill[: y1 - y0, : x1 - x0], removed[y0:y1, x0:x1], out[y0:y1, x0:x1])
    else:
        cv2.copyTo(fill_lr, removed, out)
    return out


def placed_mask(mask: np.ndarray, p: Placement, f: int = 1) -> tuple[np.ndarray, int, int]:
    """The layer mask (uint8 0/1) resized and flipped to its placement at 1/f resolution; returns (mask, x0, y0)."""
    x0, y0 = p.x // f, p.y // f
    w = max(1, (p.x + p.w) // f - x0)
    h = max(1, (p.y + p.h) // f - y0)
    m = mask.view(np.uint8)
    if (h, w) != m.shape:
        interp = cv2.INTER_AREA if h * w < m.size else cv2.INTER_LINEAR
        m = cv2.resize(m, (w, h), interpolation=interp)
    if p.flip:
        m = cv2.flip(m, 1)
    return m, x0, y0


def _thing_ids_in_use(inst: np.ndarray) -> np.ndarray:
    """int64[...] count per instance value (values >= 65536 clipped): which thing ids already exist."""
    top = int(inst.max()) if inst.size else 0
    if top < 65536 and inst.size < (1 << 24):
        return cv2.calcHist([inst.astype(np.uint16)], [0], None, [top + 1], [0, top + 1]).ravel()
    return np.bincount(inst.ravel().clip(0), minlength=top + 1)


def compose(label: np.ndarray, inst: np.ndarray | None, layers: list[Placement],
            get_mask: Callable[[Placement], np.ndarray], rules: Rules, f: int = 1, *,
            inst_has_things: bool = True, on_write: WriteHook | None = None) -> None:
    """Paste layers (already in paste order) into label (uint8) and inst (int32) in place.

    A layer paints only pixels its class may cover (occlusion rank, protected ego-vehicle/out-of-roi,
    no ground over sky). Pasted thing layers get fresh instance ids (class*1000 + unused k);
    stuff pixels carry their class id in the instance map, as in Cityscapes.
    """
    H, W = label.shape
    next_k: dict[int, int] = {}
    hist = None if inst_has_things else np.zeros(0)  # recon backgrounds hold no thing ids to avoid
    for p in layers:
        m, x0, y0 = placed_mask(get_mask(p), p, f)
        h, w = m.shape
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if xa >= xb or ya >= yb:
            continue
        m = m[ya - y0 : yb - y0, xa - x0 : xb - x0]
        sub = label[ya:yb, xa:xb]
        cid = p.class_id
        # OpenCV's LUT/and/copyTo work in place on these views and are far faster than numpy masking
        write = cv2.bitwise_and(np.ascontiguousarray(m), cv2.LUT(sub, rules.allow_u8(cid)))
        cv2.copyTo(np.full(sub.shape, cid, np.uint8), write, sub)
        if on_write is not None:
            on_write(p, (ya, yb, xa, xb), write)
        if inst is not None:
            if rules.has_inst[cid]:
                if hist is None:
                    hist = _thing_ids_in_use(inst)
                k = next_k.get(cid)
                if k is None:
                    used = np.flatnonzero(hist[cid * 1000 : cid * 1000 + 1000]) if hist.size > cid * 1000 else []
                    k = int(used[-1]) + 1 if len(used) else 0
                    k = max(k, 1)
                next_k[cid] = k + 1
                val = cid * 1000 + k
            else:
                val = cid
            cv2.copyTo(np.full(sub.shape, val, np.int32), write, inst[ya:yb, xa:xb])


# -- replay on a dataset ----------------------------------------------------------------------------
_REF_INDEX: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sample_refs(ds: Dataset) -> dict[str, SampleRef]:
    idx = _REF_INDEX.get(ds)
    if idx is None:
        idx = _REF_INDEX[ds] = {r.id: r for r in ds.samples()}
    return idx


def check_sources(recipe: Recipe, ds: Dataset) -> None:
    """MissingSourceError naming the first source file (label or image) that is gone."""
    refs = sample_refs(ds)
    for name in recipe.sources():
        ref = refs.get(name)
        if ref is None:
            raise DataError(f"recipe refers to sample {name!r}, which the dataset does not have", ds.root)
        for path in (ref.label_path, ref.image_path):
            if path is not None and not Path(path).exists():
                raise MissingSourceError("source file is missing", path)


def load_base(recipe: Recipe, ds: Dataset, rules: Rules, *, background: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """Decoded base label and instance maps of a recipe (recon: with things removed when `background`)."""
    ref = sample_refs(ds)[recipe.base]
    label = ds.load_label(ref)
    if tuple(label.shape) != tuple(recipe.size):
        raise DataError(f"base map is {label.shape[1]}x{label.shape[0]}, recipe expects "
                        f"{recipe.size[1]}x{recipe.size[0]} (dataset changed since planning?)", ref.label_path)
    if recipe.strategy == "recon" and background:
        label = recon_background(label, rules)
        return label, label.astype(np.int32)
    inst = None if recipe.strategy == "recon" else ds.load_instance(ref)
    if inst is None or inst.shape != label.shape:
        inst = label.astype(np.int32)
    return label, inst


def apply_recipe(recipe: Recipe, ds: Dataset, bank, *, on_write: WriteHook | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(label uint8, instance int32) of a recipe at full resolution; the same recipe always gives the same maps.

    `on_write` sees every layer's painted pixels (the copy-paste renderer blends exactly those).
    """
    check_sources(recipe, ds)
    rules = rules_for(ds.label_set, recipe.order)
    label, inst = load_base(recipe, ds, rules, background=False)
    return compose_recipe(recipe, label, inst, bank, rules, on_write=on_write)


def compose_recipe(recipe: Recipe, label: np.ndarray, inst: np.ndarray, bank, rules: Rules, *,
                   on_write: WriteHook | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The compositing half of apply_recipe on an already decoded base (modified in place unless recon)."""
    if recipe.strategy == "recon":
        label = recon_background(label, rules)
        inst = label.astype(np.int32)  # no things remain: every pixel is stuff, carrying its class id
    layers = sort_layers(recipe.layers, rules)
    rows = {id(p): _checked_row(bank, p) for p in layers}
    compose(label, inst, layers, lambda p: bank.mask(rows[id(p)]), rules,
            inst_has_things=recipe.strategy != "recon", on_write=on_write)
    return label, inst


def _checked_row(bank, p: Placement) -> int:
    r = bank.row(p.sample, p.key)
    c = bank.cols
    got = (int(c["x"][r]), int(c["y"][r]), int(c["w"][r]), int(c["h"][r]))
    if got != tuple(p.bbox) or int(c["class_id"][r]) != p.class_id:
        raise DataError(f"layer {p.sample}#{p.key} does not match the layer bank (bbox {list(p.bbox)} vs "
                        f"{list(got)}); the plan was made on different data")
    return r
