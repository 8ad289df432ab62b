"""Shared fixtures: offscreen Qt, the real Cityscapes and CamVid samples (when available), small sample datasets."""

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


@pytest.fixture(scope="session")
def camvid_sample() -> Path:
    """16/6/6 real CamVid frames in SegNet's layout, read in place (skips when SEGBALANCE_CAMVID_SAMPLE is unset)."""
    p = os.environ.get("SEGBALANCE_CAMVID_SAMPLE")
    if not p or not Path(p).is_dir():
        pytest.skip("SEGBALANCE_CAMVID_SAMPLE not set")
    return Path(p)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small built-in procedural dataset (24 train / 8 val, 256x128, seed 0) in the Cityscapes layout."""
    from segbalance.core.datasets.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "sample", n_train=24, n_val=8,
                               size=(256, 128), seed=0)
