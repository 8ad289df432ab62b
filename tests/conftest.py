"""Shared fixtures: offscreen Qt, the real Cityscapes sample (when available), small sample datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def cityscapes_sample() -> Path:
    """The 8 real Cityscapes frames of shared/ (skips when SEGBALANCE_CITYSCAPES_SAMPLE is unset)."""
    p = os.environ.get("SEGBALANCE_CITYSCAPES_SAMPLE")
    if not p or not Path(p).is_dir():
        pytest.skip("SEGBALANCE_CITYSCAPES_SAMPLE not set")
    return Path(p)
