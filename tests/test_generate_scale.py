"""Generation at scale: cheaper lossless PNG writes, and one plan split across torchrun processes."""

from __future__ import annotations

import cv2
import numpy as np

from segbalance.core.jobs import PNG_MAP, PNG_PHOTO


def test_fast_png_settings_stay_lossless():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    label = rng.integers(0, 34, (37, 53), dtype=np.uint8)
    inst = (rng.integers(0, 34, (37, 53)) * 1000 + rng.integers(0, 3, (37, 53))).astype(np.uint16)
    for arr, opts in ((photo, PNG_PHOTO), (label, PNG_MAP), (inst, PNG_MAP)):
        ok, buf = cv2.imencode(".png", arr, opts)
        assert ok
        back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        assert back.dtype == arr.dtype and np.array_equal(back, arr)
