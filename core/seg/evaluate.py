"""Evaluate a PSPNet checkpoint (or model) on a dataset split: confusion matrix over train ids -> metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from segbalance.core.datasets import Dataset, open_dataset
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import Cancelled, DataError
from segbalance.core.runs.runtime import autocast, load_state_checked, memory_format, resolve_amp, resolve_device
from segbalance.core.seg.data import check_same_classes, label_set_from_stored, normalize, train_class_names
from segbalance.core.seg.metrics import confusion_matrix, image_counts, summarize
from segbalance.core.seg.model import PSPNet, PSPNetConfig

CHECKPOINT_NAME = "checkpoint.pt"
VAL_COUNTS_NAME = "val_counts.npy"  # a finished run's per-val-image counts (train_seg writes them)
CHECKPOINT_FORMAT = "segbalance-pspnet-1"


def checkpoint_path(run_or_ckpt: str | Path) -> Path:
    """A run folder's checkpoint, or the given file; missing -> DataError."""
    p = Path(run_or_ckpt)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise DataError("checkpoint not found" if p.name == CHECKPOINT_NAME else "no such checkpoint file", p)
    return p


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict (weights_only load); anything else than ours is a one-line error."""
    p = checkpoint_path(path)
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        raise DataError(f"cannot read checkpoint ({type(exc).__name__}: {str(exc)[:120]})", p) from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise DataError("not a segbalance PSPNet checkpoint", p)
    return ck


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[PSPNet, LabelSet, dict]:
    """(model in eval mode on `device`, its label set, the checkpoint dict without weights)."""
    ck = read_checkpoint(path)
    try:
        cfg = ck["model_config"]
        model = PSPNet(PSPNetConfig(**{**cfg, "bins": tuple(cfg["bins"])}))
        label_set = label_set_from_stored(ck["label_set"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"checkpoint has a broken model config or label set ({type(exc).__name__}: {exc})",
                        checkpoint_path(path)) from None
    load_state_checked(model, ck.get("model"), checkpoint_path(path),
                       f"PSPNet {cfg.get('backbone')} with {cfg.get('num_classes')} classes in its config")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model.to(dev).eval()
    info = {k: v for k, v in ck.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
    return model, label_set, info


@torch.no_grad()
def predict_logits(model: PSPNet, image: np.ndarray, device: torch.device, *, mode: str = "whole",
                   crop: tuple[int, int] | None = None, amp: str = "off") -> torch.Tensor:
    """Class scores [C, H, W] (float32, on device) for one RGB uint8 image."""
    x = normalize(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device))
    x = x.contiguous(memory_format=memory_format(amp))
    if mode == "whole" or crop is None:
        with autocast(device, amp):
            return model(x)[0].float()
    if mode != "slide":
        raise DataError(f"unknown evaluation mode {mode!r}; use whole or slide")
    h, w = image.shape[:2]
    ch, cw = min(crop[0], h), min(crop[1], w)
    sh, sw = max(1, math.ceil(ch * 2 / 3)), max(1, math.ceil(cw * 2 / 3))
    out = None
    count = torch.zeros(1, h, w, device=device)
    ys = list(range(0, max(h - ch, 0) + 1, sh))
    xs = list(range(0, max(w - cw, 0) + 1, sw))
    if ys[-1] + ch < h:
        ys.append(h - ch)
    if xs[-1] + cw < w:
        xs.append(w - cw)
    for y in ys:
        for x0 in xs:
            with autocast(device, amp):
                logit = model(x[:, :, y : y + ch, x0 : x0 + cw])[0].float()
            if out is None:
                out = torch.zeros(logit.shape[0], h, w, device=device)
            out[:, y : y + ch, x0 : x0 + cw] += logit
            count[:, y : y + ch, x0 : x0 + cw] += 1
    return out / count


def predict(model: PSPNet, image: np.ndarray, device: torch.device, **kw) -> np.ndarray:
    """Train-id prediction (uint8 HxW) for one RGB image."""
    return predict_logits(model, image, device, **kw).argmax(0).to(torch.uint8).cpu().numpy()


def evaluate(
    checkpoint_or_model: str | Path | PSPNet,
    dataset: str | Path | Dataset,
    split: str = "val",
    *,
    mode: str = "whole",
    crop: tuple[int, int] | None = None,
    device: str | torch.device = "auto",
    amp: str = "off",
    label_set: LabelSet | None = None,
    save_predictions: str | Path | None = None,
    max_images: int | None = None,
    per_image: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """Metrics of a model on a split: {"miou", "pixel_acc", "mean_acc", "per_class", "n_images", "confusion"}.

    `per_image` adds "image_counts", an (n_images, C, 3) array of each image's intersection, predicted and
    true pixels per class: what a bootstrap over val images resamples (core.experiments.evidence).

    A checkpoint's classes must match the dataset's; predictions can be written as label-id PNGs
    (`<sample id>.png`) that the official Cityscapes scripts accept.
    """
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if isinstance(checkpoint_or_model, PSPNet):
        model = checkpoint_or_model
        ls = label_set or ds.label_set
    else:
        model, ls, info = load_model(checkpoint_or_model, dev)
        crop = crop or tuple(info.get("config", {}).get("crop") or ()) or None
    check_same_classes(ls, ds.label_set, ds.root)
    amp = resolve_amp(amp, dev)
    refs = ds.samples(split)[: max_images or None]
    n_cls = ls.num_train_classes
    conf = np.zeros((n_cls, n_cls), np.int64)
    counts = np.zeros((len(refs), n_cls, 3), np.int64) if per_image else None
    out_dir = Path(save_predictions) if save_predictions else None
    was_training = model.training
    model.eval().to(memory_format=memory_format(amp))
    try:
        for i, ref in enumerate(refs):
            if cancel and cancel():
                raise Cancelled()
            image = ds.load_image(ref)
            target = ls.id_to_train_lut[ds.load_label(ref)]
            if image.shape[:2] != target.shape:
                raise DataError("image and label sizes differ", ref.image_path)
            pred = predict(model, image, dev, mode=mode, crop=crop, amp=amp)
            conf += confusion_matrix(pred, target, n_cls)
            if counts is not None:
                counts[i] = image_counts(pred, target, n_cls)
            if out_dir is not None:
                from segbalance.core.io import write_png

                write_png(out_dir / f"{ref.id}.png", ls.train_to_id_lut[pred])
            if progress:
                progress(i + 1, len(refs))
    finally:
        model.train(was_training)
    res = summarize(conf, train_class_names(ls))
    res["n_images"] = len(refs)
    res["confusion"] = conf.tolist()
    if counts is not None:
        res["image_counts"] = counts
    return res
