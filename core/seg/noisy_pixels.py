"""Ignore the pixels of generated pairs that the renderer got wrong, judged by what real pixels cost.

A generated image may not show what its label map says (a wall rendered as building). Such pixels have a
training loss far above what real pixels of the same class give. Following FreeMask (Yang et al., NeurIPS
2023), a synthetic pixel is ignored when its loss exceeds `factor` times the running mean loss of real pixels
of its class (1.25 by default, their setting). Real pixels are never ignored.

Rules the paper leaves open, decided here:
  * the class means are exponential moving averages over steps (momentum 0.9), updated from each batch's real
    pixels before the batch is filtered, so the first batch already has a reference;
  * a class no real pixel has shown yet is judged against the mean loss of all real pixels seen so far
    (the same EMA over every class); before any real pixel at all, nothing is ignored.
"""

from __future__ import annotations

import torch

IGNORE = 255


class NoisyPixelFilter:
    """Per-class running mean of real-pixel loss, and the mask of synthetic pixels to ignore."""

    def __init__(self, num_classes: int, factor: float = 1.25, momentum: float = 0.9,
                 ignore_index: int = IGNORE) -> None:
        if not factor > 0:
            raise ValueError(f"the noisy-pixel factor must be > 0 (got {factor})")
        self.num_classes = num_classes
        self.factor = float(factor)
        self.momentum = float(momentum)
        self.ignore_index = ignore_index
        self.class_mean = torch.full((num_classes,), float("nan"), dtype=torch.float64)
        self.all_mean = float("nan")
        # synthetic pixels seen and ignored per class since the last `take_fractions`
        self.seen = torch.zeros(num_classes, dtype=torch.int64)
        self.ignored = torch.zeros(num_classes, dtype=torch.int64)
        # the same since the run began (what the run's record shows; kept across resumes)
        self.total_seen = torch.zeros(num_classes, dtype=torch.int64)
        self.total_ignored = torch.zeros(num_classes, dtype=torch.int64)

    def _ema(self, old: float, new: float) -> float:
        return new if old != old else self.momentum * old + (1 - self.momentum) * new  # old != old: NaN

    @torch.no_grad()
    def update(self, loss: torch.Tensor, target: torch.Tensor, real: torch.Tensor) -> None:
        """Fold the real pixels of a batch into the class means. loss, target: (B, H, W); real: (B,) bool."""
        m = real.view(-1, *([1] * (target.ndim - 1))).expand_as(target) & (target != self.ignore_index)
        if not m.any():
            return
        lv, tv = loss[m].double().cpu(), target[m].long().cpu()
        sums = torch.zeros(self.num_classes, dtype=torch.float64).index_add_(0, tv, lv)
        counts = torch.bincount(tv, minlength=self.num_classes)
        for c in torch.nonzero(counts).flatten().tolist():
            self.class_mean[c] = self._ema(float(self.class_mean[c]), float(sums[c] / counts[c]))
        self.all_mean = self._ema(self.all_mean, float(lv.mean()))

    @torch.no_grad()
    def ignore_mask(self, loss: torch.Tensor, target: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Bool (B, H, W): synthetic pixels whose loss is above factor x their class's real mean."""
        if self.all_mean != self.all_mean:  # no real pixel seen yet: no reference, keep everything
            return torch.zeros_like(target, dtype=torch.bool)
        valid = target != self.ignore_index
        ref = self.class_mean.clone()
        ref[torch.isnan(ref)] = self.all_mean
        tgt = target.clamp(0, self.num_classes - 1).long()
        thresh = (ref.to(loss.device, loss.dtype) * self.factor)[tgt]
        synth = (~real).view(-1, *([1] * (target.ndim - 1))).expand_as(target) & valid
        out = synth & (loss > thresh)
        seen = torch.bincount(target[synth].long().cpu(), minlength=self.num_classes)
        ignored = torch.bincount(target[out].long().cpu(), minlength=self.num_classes)
        self.seen += seen
        self.ignored += ignored
        self.total_seen += seen
        self.total_ignored += ignored
        return out

    def apply(self, loss: torch.Tensor, target: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The target with ignored pixels set to `ignore_index` (update the means first, then filter)."""
        self.update(loss.detach(), target, real)
        mask = self.ignore_mask(loss.detach(), target, real)
        return target.masked_fill(mask, self.ignore_index)

    def total_fractions(self) -> dict[int, float]:
        """Per class with synthetic pixels since the run began: the fraction ignored."""
        return {c: float(self.total_ignored[c]) / float(self.total_seen[c]) for c in range(self.num_classes)
                if self.total_seen[c] > 0}

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so a resumed run judges pixels against the same running means."""
        return {"factor": self.factor, "momentum": self.momentum, "class_mean": self.class_mean.tolist(),
                "all_mean": self.all_mean, "total_seen": self.total_seen.tolist(),
                "total_ignored": self.total_ignored.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.class_mean = torch.tensor(state["class_mean"], dtype=torch.float64)
        self.all_mean = float(state["all_mean"])
        self.total_seen = torch.tensor(state["total_seen"], dtype=torch.int64)
        self.total_ignored = torch.tensor(state["total_ignored"], dtype=torch.int64)

    def take_fractions(self) -> dict[int, float]:
        """Per class with synthetic pixels since the last call: the fraction ignored. Resets the counters."""
        out = {c: float(self.ignored[c]) / float(self.seen[c]) for c in range(self.num_classes) if self.seen[c] > 0}
        self.seen.zero_()
        self.ignored.zero_()
        return out
