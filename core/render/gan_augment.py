"""Differentiable augmentation of what pix2pixHD's discriminator sees (DiffAugment, Zhao et al. 2020).

Why: on a few hundred training pairs the discriminator starts to remember the real images (its output on real
train pairs drifts above its output on real val pairs: benchmarks/gan_d_memory.py), the small-data failure
behind late-training artefacts. Shifting and cutting out D's (label, image) input, with one draw for the real
and the fake pair and differentiably so G's gradient passes through, is DiffAugment's remedy; applying the same
transform to both sides is what keeps it out of the renders.

Only geometric transforms: D's judgement of colour, the thing a segmenter reads classes from, stays untouched.
The draws are a function of (seed, iteration, stream), like the training noise, so resume stays exact. Every
preset leaves it off: on the sample dataset at 1500 iterations it cost the tiny generator score (docs/pix2pixhd.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segbalance.core.errors import SegbalanceError
from segbalance.core.runs.runtime import keyed_generator

POLICIES = ("translation", "cutout")
SHIFT_RATIO = 0.125  # translation: up to 1/8 of each side, zero padded (DiffAugment's default)
CUT_RATIO = 0.5  # cutout: a rectangle of half of each side, zeroed (DiffAugment's default)


def parse_policy(text: str | None) -> str | None:
    """'translation,cutout' -> the canonical policy string; None, '' or 'off' -> None."""
    if text is None or text.strip().lower() in ("", "off", "none"):
        return None
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise SegbalanceError(f"unknown discriminator augmentation {', '.join(bad)!s} (choose from "
                              f"{', '.join(POLICIES)}, comma separated, or off)")
    return ",".join(p for p in POLICIES if p in parts)


@dataclass(frozen=True)
class DAugment:
    """One draw of per-sample transforms; call it on every tensor of the step that must move together."""

    shift: torch.Tensor | None  # (B, 2) long: (dy, dx)
    cut: torch.Tensor | None  # (B, 2) long: top-left corner (may lie outside; the rectangle is clipped)
    cut_size: tuple[int, int]  # (h, w)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.shift is not None:
            ph, pw = int(h * SHIFT_RATIO + 0.5), int(w * SHIFT_RATIO + 0.5)
            padded = torch.nn.functional.pad(x, (pw, pw, ph, ph))
            x = torch.stack([padded[i, :, ph + dy:ph + dy + h, pw + dx:pw + dx + w]
                             for i, (dy, dx) in enumerate(self.shift.tolist())])
        if self.cut is not None:
            mask = torch.ones(b, 1, h, w, dtype=x.dtype, device=x.device)
            ch, cw = self.cut_size
            for i, (y0, x0) in enumerate(self.cut.tolist()):
                mask[i, :, max(y0, 0):max(y0 + ch, 0), max(x0, 0):max(x0 + cw, 0)] = 0
            x = x * mask
        return x


def draw(policy: str | None, n: int, h: int, w: int, seed_key: list[int]) -> DAugment | None:
    """Transforms for n samples of an h x w input, from a key such as [seed, iteration, stream]."""
    if not policy:
        return None
    parts = policy.split(",")
    gen = keyed_generator(seed_key)
    shift = cut = None
    if "translation" in parts:
        ph, pw = int(h * SHIFT_RATIO + 0.5), int(w * SHIFT_RATIO + 0.5)
        shift = torch.stack([torch.randint(-ph, ph + 1, (n,), generator=gen),
                             torch.randint(-pw, pw + 1, (n,), generator=gen)], 1)
    ch, cw = int(h * CUT_RATIO + 0.5), int(w * CUT_RATIO + 0.5)
    if "cutout" in parts:
        # the centre anywhere on the image, so the rectangle may hang over an edge, as in DiffAugment
        cy = torch.randint(0, h + (1 - ch % 2), (n,), generator=gen) - ch // 2
        cx = torch.randint(0, w + (1 - cw % 2), (n,), generator=gen) - cw // 2
        cut = torch.stack([cy, cx], 1)
    return DAugment(shift, cut, (ch, cw))


def sliced(aug: DAugment | None, part: slice) -> DAugment | None:
    """This process's share of a draw made for the whole global batch (DDP sees what one process would)."""
    if aug is None:
        return None
    return DAugment(aug.shift[part] if aug.shift is not None else None,
                    aug.cut[part] if aug.cut is not None else None, aug.cut_size)


__all__ = ["CUT_RATIO", "DAugment", "POLICIES", "SHIFT_RATIO", "draw", "parse_policy", "sliced"]
