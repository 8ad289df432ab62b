"""The noisy-pixel filter on hand-made batches: what is ignored, what never is, and the stated fallbacks."""

from __future__ import annotations

import pytest
import torch

from segbalance.core.seg.noisy_pixels import IGNORE, NoisyPixelFilter


def _batch():
    # image 0 real, image 1 synthetic; 2x4 pixels, classes 0 and 1
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]],
                           [[0, 0, 1, 1], [0, 2, 1, IGNORE]]])
    loss = torch.tensor([[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]],
                         [[1.2, 1.3, 2.4, 2.6], [0.5, 9.0, 9.0, 9.0]]])
    real = torch.tensor([True, False])
    return loss, target, real


def test_synthetic_pixels_above_the_class_threshold_are_ignored_and_real_ones_never():
    loss, target, real = _batch()
    f = NoisyPixelFilter(num_classes=3, factor=1.25)
    out = f.apply(loss, target, real)
    # class 0 real mean 1.0 -> threshold 1.25: 1.3 ignored, 1.2 and 0.5 kept
    # class 1 real mean 2.0 -> threshold 2.5: 2.6 and 9.0 ignored, 2.4 kept
    # class 2 has no real pixel: falls back to the mean of all real pixels (1.5) -> 1.875: 9.0 ignored
    want = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    assert torch.equal(out[0], want)  # the real image is untouched, even its high-loss pixels
    assert out[1].tolist() == [[0, IGNORE, 1, IGNORE], [0, IGNORE, IGNORE, IGNORE]]
    fr = f.take_fractions()
    assert fr[0] == pytest.approx(1 / 3) and fr[1] == pytest.approx(2 / 3) and fr[2] == 1.0
    assert f.take_fractions() == {}  # counters reset


def test_real_pixels_with_huge_loss_are_kept():
    f = NoisyPixelFilter(num_classes=2)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    loss = torch.tensor([[[0.1, 100.0], [0.1, 0.1]]])
    assert torch.equal(f.apply(loss, target, torch.tensor([True])), target)


def test_nothing_is_ignored_before_any_real_pixel_and_means_move_slowly():
    f = NoisyPixelFilter(num_classes=2, factor=1.25, momentum=0.9)
    target = torch.zeros(1, 1, 2, dtype=torch.long)
    synth = torch.tensor([False])
    assert not f.ignore_mask(torch.tensor([[[5.0, 50.0]]]), target, synth).any()
    f.update(torch.tensor([[[1.0, 1.0]]]), target, torch.tensor([True]))
    f.update(torch.tensor([[[3.0, 3.0]]]), target, torch.tensor([True]))
    assert float(f.class_mean[0]) == pytest.approx(0.9 * 1.0 + 0.1 * 3.0)
    with pytest.raises(ValueError):
        NoisyPixelFilter(2, factor=0)
