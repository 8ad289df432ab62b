"""Segmentation metrics from a confusion matrix over train ids (rows: ground truth, columns: prediction).

IoU of a class absent from both ground truth and prediction is NaN and left out of every mean, as in the
official Cityscapes evaluation; a class predicted but absent from the ground truth scores 0.
"""

from __future__ import annotations

import math

import numpy as np

IGNORE = 255


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int = IGNORE) -> np.ndarray:
    """int64 [C, C] counts of (target, pred) over pixels whose target is neither `ignore` nor out of range."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    target = np.asarray(target).ravel().astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.size} pixels, target {target.size}")
    keep = (target != ignore) & (target >= 0) & (target < num_classes)
    idx = target[keep] * num_classes + np.clip(pred[keep], 0, num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU per class; NaN where the class is in neither ground truth nor prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def per_class_accuracy(conf: np.ndarray) -> np.ndarray:
    """Recall per class; NaN where the class has no ground-truth pixel."""
    conf = np.asarray(conf, dtype=np.float64)
    gt = conf.sum(1)
    return np.where(gt > 0, np.diag(conf) / np.maximum(gt, 1), np.nan)


def _nanmean(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def mean_iou(conf: np.ndarray) -> float:
    return _nanmean(per_class_iou(conf))


def pixel_accuracy(conf: np.ndarray) -> float:
    total = float(np.asarray(conf).sum())
    return float(np.trace(conf)) / total if total else math.nan


def mean_accuracy(conf: np.ndarray) -> float:
    return _nanmean(per_class_accuracy(conf))


def summarize(conf: np.ndarray, class_names: list[str]) -> dict:
    """The metrics dict evaluation returns: miou, pixel_acc, mean_acc, per_class {name: IoU or None}."""
    iou = per_class_iou(conf)
    return {
        "miou": _none_if_nan(mean_iou(conf)),
        "pixel_acc": _none_if_nan(pixel_accuracy(conf)),
        "mean_acc": _none_if_nan(mean_accuracy(conf)),
        "per_class": {n: _none_if_nan(float(v)) for n, v in zip(class_names, iou, strict=True)},
    }


def present_miou(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int = IGNORE) -> float:
    """mIoU over the classes present in `target` only (the quality gate: did the image show its labels?)."""
    conf = confusion_matrix(pred, target, num_classes, ignore)
    present = conf.sum(1) > 0
    if not present.any():
        return math.nan
    return float(per_class_iou(conf)[present].mean())


def _none_if_nan(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def image_counts(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """(num_classes, 3) int64: intersection, predicted and true pixels of each class in one image."""
    valid = target != ignore
    p, t = pred[valid].astype(np.int64), target[valid].astype(np.int64)
    p = np.where((p >= 0) & (p < num_classes), p, num_classes)  # out-of-range predictions count as wrong
    out = np.zeros((num_classes, 3), np.int64)
    hit = p == t
    out[:, 0] = np.bincount(t[hit], minlength=num_classes + 1)[:num_classes]
    out[:, 1] = np.bincount(p, minlength=num_classes + 1)[:num_classes]
    out[:, 2] = np.bincount(t, minlength=num_classes + 1)[:num_classes]
    return out


def iou_from_counts(counts: np.ndarray) -> np.ndarray:
    """Per-class IoU from summed counts (..., C, 3); NaN where a class is neither predicted nor present."""
    inter, pred, true = counts[..., 0], counts[..., 1], counts[..., 2]
    union = (pred + true - inter).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
