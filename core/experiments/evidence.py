"""Evidence for an arm against the baseline: paired deltas with 95% intervals, and the word they earn.

Two sources of noise are measured separately, because a user asks both questions:
  * seeds: seed s fixes everything random in both arms (init, batch order, plan, pairs, generator), so the
    per-seed deltas are paired and their t-interval covers re-running the whole pipeline;
  * val images: a paired bootstrap resamples the same val images for both arms (per-image intersection and
    union counts, summed, so each replicate's mIoU is computed exactly as the real one).
The word is decided by every interval there is: *gain* when all lie above 0, *loss* when all lie below 0,
*within noise* otherwise. One seed measures no training noise, and the table says so.

Classes the protocol cannot resolve (objects thinner than the network's output stride, or too few val
images holding them) are marked, not reported as an IoU of 0 that means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from segbalance.core.seg.metrics import iou_from_counts

GAIN, LOSS, NOISE = "gain", "loss", "within noise"

# two-sided 95% quantiles of Student's t, df = 1..30 (beyond: the normal's 1.96 is within 2%)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


@dataclass(frozen=True)
class Interval:
    """A mean delta and its 95% interval; `method` says what noise it covers."""

    mean: float
    lo: float
    hi: float
    n: int
    method: str  # "seeds" (t over paired seeds) or "bootstrap" (val images)

    def fmt(self, scale: float = 100.0, digits: int = 2) -> str:
        f = f"{{:+.{digits}f}}"
        return f"{f.format(self.mean * scale)} [{f.format(self.lo * scale)}, {f.format(self.hi * scale)}]"


def t_quantile(df: int) -> float:
    """Two-sided 95% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("a t interval needs at least 2 values")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def seed_interval(deltas: Sequence[float]) -> Interval | None:
    """The t-interval of paired per-seed deltas (None with fewer than 2 seeds: no training noise measured)."""
    d = np.asarray([x for x in deltas if x is not None and not math.isnan(x)], np.float64)
    if d.size < 2:
        return None
    m = float(d.mean())
    half = t_quantile(d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return Interval(m, m - half, m + half, int(d.size), "seeds")


def decide(*intervals: Interval | None) -> str:
    """gain / loss / within noise, by every interval there is (the strictest reading wins)."""
    ivs = [iv for iv in intervals if iv is not None]
    if not ivs:
        return NOISE
    if all(iv.lo > 0 for iv in ivs):
        return GAIN
    if all(iv.hi < 0 for iv in ivs):
        return LOSS
    return NOISE


# -- per-image counts and the bootstrap ---------------------------------------------------------------
def miou_from_counts(counts: np.ndarray, classes: Sequence[int] | None = None) -> np.ndarray:
    """mIoU over `classes` (all by default), NaN classes left out, as the real evaluation does."""
    iou = iou_from_counts(counts)
    if classes is not None:
        iou = iou[..., list(classes)]
    with np.errstate(invalid="ignore"):
        return np.nanmean(iou, axis=-1) if iou.shape[-1] else np.full(iou.shape[:-1], np.nan)


def bootstrap_deltas(base: Sequence[np.ndarray], arm: Sequence[np.ndarray], *, n_boot: int = 1000,
                     classes: Sequence[int] | None = None, seed: int = 0) -> dict[str, object]:
    """Paired bootstrap over val images of the seed-averaged delta (arm - base).

    `base[s]` and `arm[s]` are (n_images, C, 3) counts of seed s on the same val images. Returns
    {"miou": Interval, "class": [Interval | None per class]}; a class's interval is None when it is absent
    from the val images (nothing to measure). The bootstrap's own seed is fixed so a table re-renders the
    same; it is not a knob of the protocol.
    """
    if len(base) != len(arm) or not base:
        raise ValueError("base and arm need the same, non-zero number of seeds")
    n = base[0].shape[0]
    if any(b.shape != base[0].shape for b in (*base, *arm)):
        raise ValueError("every seed of both arms must be evaluated on the same val images")
    rng = np.random.default_rng(seed)
    # multinomial weights: replicate r draws image i w[r, i] times (same draw for both arms and all seeds)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    num_c = base[0].shape[1]
    miou_d = np.zeros(n_boot)
    cls_d = np.zeros((n_boot, num_c))
    pt_miou, pt_cls = 0.0, np.zeros(num_c)
    for b, a in zip(base, arm, strict=True):
        rb = (w @ b.reshape(n, -1)).reshape(n_boot, num_c, 3)
        ra = (w @ a.reshape(n, -1)).reshape(n_boot, num_c, 3)
        miou_d += miou_from_counts(ra, classes) - miou_from_counts(rb, classes)
        cls_d += iou_from_counts(ra) - iou_from_counts(rb)
        pt_miou += float(miou_from_counts(a.sum(0), classes) - miou_from_counts(b.sum(0), classes))
        pt_cls += iou_from_counts(a.sum(0)) - iou_from_counts(b.sum(0))
    k = len(base)
    miou_d, cls_d, pt_miou, pt_cls = miou_d / k, cls_d / k, pt_miou / k, pt_cls / k

    def iv(point: float, reps: np.ndarray) -> Interval | None:
        reps = reps[~np.isnan(reps)]
        if math.isnan(point) or reps.size < n_boot // 2:
            return None
        lo, hi = np.percentile(reps, [2.5, 97.5])
        return Interval(float(point), float(lo), float(hi), n, "bootstrap")

    present = sum(x.sum(0)[:, 2] for x in base) > 0
    return {"miou": iv(pt_miou, miou_d),
            "class": [iv(float(pt_cls[c]), cls_d[:, c]) if present[c] else None for c in range(num_c)]}


# -- what the protocol can resolve --------------------------------------------------------------------
def bootstrap_ratio(num: Sequence[np.ndarray], den: Sequence[np.ndarray], *, n_boot: int = 1000,
                    seed: int = 0) -> Interval | None:
    """Paired bootstrap of the seed-averaged ratio mIoU(num) / mIoU(den) over the same images.

    For a renderer's score as a share of the oracle's: `num[s]` and `den[s]` are (n_images, C, 3) counts of
    seed s on the same label maps (pair i of both is the same map), so a replicate resamples the maps, not
    the two renderers independently. None when a denominator mIoU is 0 or undefined.
    """
    if len(num) != len(den) or not num:
        raise ValueError("num and den need the same, non-zero number of seeds")
    n = num[0].shape[0]
    if n == 0 or any(x.shape != num[0].shape for x in (*num, *den)):
        raise ValueError("every seed of both renderers must be scored on the same, non-empty set of maps")
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    num_c = num[0].shape[1]
    reps, point = np.zeros(n_boot), 0.0
    for a, b in zip(num, den, strict=True):
        ra = miou_from_counts((w @ a.reshape(n, -1)).reshape(n_boot, num_c, 3))
        rb = miou_from_counts((w @ b.reshape(n, -1)).reshape(n_boot, num_c, 3))
        pb = float(miou_from_counts(b.sum(0)))
        if not pb > 0:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            reps += ra / rb
        point += float(miou_from_counts(a.sum(0))) / pb
    reps, point = reps / len(num), point / len(num)
    reps = reps[np.isfinite(reps)]
    if reps.size < n_boot // 2:
        return None
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return Interval(point, float(lo), float(hi), n, "bootstrap")


def object_sizes(train_ids: np.ndarray, cls: int) -> tuple[list[float], list[int]]:
    """Width in pixels (diameter of the largest inscribed disc) and area of each connected object of `cls`.

    A pole 3 px wide and 40 px tall is 3 px wide whatever its orientation, which a bounding box misses.
    """
    m = (train_ids == cls).astype(np.uint8)
    if not m.any():
        return [], []
    n, comp = cv2.connectedComponents(m, connectivity=8)
    dist = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    widths = np.zeros(n, np.float64)
    np.maximum.at(widths, comp.ravel(), dist.ravel())
    areas = np.bincount(comp.ravel(), minlength=n)
    # distance to the nearest background pixel centre: a 1 px line has distance 1, a 3 px one 2
    keep = [k for k in range(1, n) if widths[k] > 0]
    return [float(2 * widths[k] - 1) for k in keep], [int(areas[k]) for k in keep]


def object_widths(train_ids: np.ndarray, cls: int) -> list[float]:
    """Width in pixels of each connected object of class `cls` (see `object_sizes`)."""
    return object_sizes(train_ids, cls)[0]


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value below which half of the total weight lies."""
    order = np.argsort(values)
    v, w = np.asarray(values, np.float64)[order], np.asarray(weights, np.float64)[order]
    return float(v[np.searchsorted(np.cumsum(w), 0.5 * w.sum())])


@dataclass
class Resolvability:
    """Per class: median object width (by pixel), val images holding it, and why it cannot be resolved (or None)."""

    name: str
    median_width: float | None
    val_images: int
    reason: str | None


def resolvability(val_maps: Iterable[np.ndarray], class_names: Sequence[str], *, output_stride: int = 8,
                  min_images: int = 10, split: str = "val") -> list[Resolvability]:
    """Mark the classes a protocol cannot answer for: thinner than the output stride, or too rare in val.

    `val_maps` are train-id maps at the size the protocol evaluates at; they are read one at a time, so a
    generator over a large val split never holds more than one map.
    """
    widths: list[list[float]] = [[] for _ in class_names]
    areas: list[list[int]] = [[] for _ in class_names]
    images = [0] * len(class_names)
    for t in val_maps:
        present = np.unique(t)
        for c in present[present < len(class_names)].tolist():
            w, a = object_sizes(t, c)
            if w:
                images[c] += 1
                widths[c].extend(w)
                areas[c].extend(a)
    out = []
    for c, name in enumerate(class_names):
        # weighted by area: the width of the object a typical pixel of the class lies in, so the slivers a
        # big class leaves between other objects do not make it look thin
        med = weighted_median(widths[c], areas[c]) if widths[c] else None
        reason = None
        if images[c] < min_images:
            reason = f"in {images[c]} {split} image{'s' if images[c] != 1 else ''} (< {min_images})"
        elif med is not None and med < output_stride:
            reason = f"median width {med:.1f} px < output stride {output_stride}"
        out.append(Resolvability(name, med, images[c], reason))
    return out
