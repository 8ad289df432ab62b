"""Quality gate for generated pairs: does a segmentation model see the label map in the rendered image?

score = mIoU of the model's prediction on the image against the pair's label map, over the classes the
label map contains (a class the renderer failed to draw scores 0; classes only hallucinated in the
prediction do not dilute the score of a small map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import DataError
from segbalance.core.runs.runtime import autocast, memory_format, resolve_amp, resolve_device
from segbalance.core.seg.data import normalize
from segbalance.core.seg.evaluate import load_model
from segbalance.core.seg.metrics import present_miou


class SegScorer:
    """A loaded PSPNet that scores (image, label-id map) pairs; NaN when the map has no evaluated class."""

    def __init__(self, model: torch.nn.Module, label_set: LabelSet, device: torch.device, amp: str = "off",
                 batch_size: int = 4) -> None:
        self.model = model.eval()
        self.batch_size = max(1, batch_size)  # images per forward pass (memory bound on full-size frames)
        self.label_set = label_set
        self.device = device
        self.amp = amp
        self.model.to(memory_format=memory_format(amp))
        self.num_classes = label_set.num_train_classes

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Train-id predictions; images of one size go through the network as one batch."""
        out: list[np.ndarray | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise DataError(f"image #{i}: expected an RGB uint8 HxWx3 array, got {im.dtype} {im.shape}")
            by_size.setdefault(im.shape[:2], []).append(i)
        for same in by_size.values():
            for k in range(0, len(same), self.batch_size):
                idx = same[k : k + self.batch_size]
                batch = torch.from_numpy(np.stack([images[i] for i in idx]).transpose(0, 3, 1, 2).copy())
                x = normalize(batch.to(self.device)).contiguous(memory_format=memory_format(self.amp))
                with autocast(self.device, self.amp):
                    logits = self.model(x)
                pred = logits.argmax(1).to(torch.uint8).cpu().numpy()
                for j, i in enumerate(idx):
                    out[i] = pred[j]
        return out  # type: ignore[return-value]

    def score(self, image_rgb: np.ndarray, label_ids: np.ndarray) -> float:
        return self.score_batch([image_rgb], [label_ids])[0]

    def score_batch(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> list[float]:
        """One score in [0, 1] (or NaN) per pair."""
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} label maps")
        preds = self.predict(images)
        lut = self.label_set.id_to_train_lut
        scores = []
        for i, (pred, lab) in enumerate(zip(preds, labels, strict=True)):
            if lab.shape != pred.shape:
                raise DataError(f"pair #{i}: label map is {lab.shape[1]}x{lab.shape[0]} but the image is "
                                f"{pred.shape[1]}x{pred.shape[0]}")
            s = present_miou(pred, lut[np.asarray(lab, dtype=np.uint8)], self.num_classes)
            scores.append(s if not math.isnan(s) else math.nan)
        return scores


def load_scorer(checkpoint: str | Path, device: str = "auto", amp: str = "off", batch_size: int = 4) -> SegScorer:
    """A SegScorer from a train-seg run folder or checkpoint file."""
    dev = resolve_device(device)
    model, ls, _ = load_model(checkpoint, dev)
    return SegScorer(model, ls, dev, resolve_amp(amp, dev), batch_size)
