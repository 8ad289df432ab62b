"""Class statistics: exact counts, cache behaviour, CLI output forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.datasets.stats import dataset_stats, pixel_counts
from segbalance.core.workspace import Workspace
from tests.helpers import make_cityscapes


def test_pixel_counts_equal_bincount_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 13), (256, 512)]:
        lab = rng.integers(0, 34, shape, dtype=np.uint8)
        assert np.array_equal(pixel_counts(lab), np.bincount(lab.ravel(), minlength=256))
    # a non-contiguous view counts the same as its copy
    lab = rng.integers(0, 34, (64, 64), dtype=np.uint8)[:, ::2]
    assert np.array_equal(pixel_counts(lab), np.bincount(lab.ravel(), minlength=256))


def _numpy_reference(root: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Independent count: decode every labelIds PNG with cv2 and bincount it."""
    pix = np.zeros(256, np.int64)
    imgs = np.zeros(256, np.int64)
    files = sorted(root.glob("gtFine/train/*/*_gtFine_labelIds.png"))
    for f in files:
        c = np.bincount(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).ravel(), minlength=256)
        pix += c
        imgs += c > 0
    return pix, imgs, len(files)


def test_real_cityscapes_stats_equal_independent_numpy_count(cityscapes_sample: Path, tmp_path: Path) -> None:
    ds = open_dataset(cityscapes_sample)
    st = dataset_stats(ds, "train", workers=2)
    pix, imgs, n = _numpy_reference(cityscapes_sample)
    assert st.n_images == n == 8
    assert np.array_equal(st.pixels, pix)
    assert np.array_equal(st.images, imgs)
    # train-id aggregation: road is train id 0 and id 7
    assert st.train_pixels()[0] == pix[7]
    evaluated = [c.id for c in CITYSCAPES.classes if not c.ignore_in_eval and c.id >= 0]
    assert st.labeled_pixels == pix[evaluated].sum()


def test_stats_json_matches_numpy_and_shares_sum_to_one(cityscapes_sample: Path, capsys) -> None:
    assert main(["stats", str(cityscapes_sample), "--json", "--workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    pix, imgs, n = _numpy_reference(cityscapes_sample)
    assert out["n_images"] == n
    by_name = {c["name"]: c for c in out["classes"]}
    assert by_name["road"]["pixels"] == pix[7] and by_name["road"]["train_id"] == 0
    assert by_name["road"]["images"] == imgs[7]
    assert set(by_name["wall"]) == {"id", "name", "train_id", "pixels", "pixel_share", "images"}
    evaluated_share = sum(c["pixel_share"] for c in out["classes"] if c["train_id"] != 255)
    assert evaluated_share == pytest.approx(1.0)


def test_cache_hit_on_unchanged_and_rescan_on_changed(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "ds", n=6)
    ws = Workspace(tmp_path / "ws")
    ds = open_dataset(root)
    first = dataset_stats(ds, "train", workspace=ws, workers=1)
    assert first.cached == 0
    again = dataset_stats(open_dataset(root), "train", workspace=ws, workers=1)
    assert again.cached == 6 and np.array_equal(again.pixels, first.pixels)
    # rewrite one label: it must be re-scanned and the new counts used
    lab_path = sorted(root.glob("gtFine/train/*/*_labelIds.png"))[0]
    lab = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
    lab[:] = 26  # all car
    cv2.imwrite(str(lab_path), lab)
    os.utime(lab_path, ns=(1, 10**18))
    changed = dataset_stats(open_dataset(root), "train", workspace=ws, workers=1)
    assert changed.cached == 5
    assert changed.pixels[26] > first.pixels[26]
    ws.close()


def test_failed_scan_writes_no_cache_rows(tmp_path: Path) -> None:
    from segbalance.db import models as m

    root = make_cityscapes(tmp_path / "ds", n=4)
    bad = sorted(root.glob("gtFine/train/*/*_labelIds.png"))[-1]
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(Exception, match="truncated"):
        dataset_stats(open_dataset(root), "train", workspace=ws, workers=1)
    with ws.session() as s:
        assert s.query(m.SampleStats).count() == 0
    # --skip-bad keeps the good ones and reports the bad one
    st = dataset_stats(open_dataset(root), "train", workspace=ws, workers=1, skip_bad=True)
    assert st.n_images == 3 and len(st.bad) == 1 and bad.name in st.bad[0].error
    with ws.session() as s:
        assert s.query(m.SampleStats).count() == 3
    ws.close()


def test_parallel_scan_equals_serial(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "ds", n=20)
    a = dataset_stats(open_dataset(root), "train", workers=1)
    b = dataset_stats(open_dataset(root), "train", workers=2)
    assert np.array_equal(a.pixels, b.pixels) and [s.id for s in a.samples] == [s.id for s in b.samples]


def test_stats_table_and_plot(tmp_path: Path, capsys) -> None:
    root = make_cityscapes(tmp_path / "ds", n=4)
    png = tmp_path / "hist.png"
    assert main(["stats", str(root), "--plot", str(png), "--workspace", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.split() and ln.split()[0] in ("road", "car", "sky")]
    assert lines, out
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 400


def test_core_and_db_never_import_qt() -> None:
    code = (
        "import sys, segbalance.core.cli, segbalance.core.datasets.stats, segbalance.core.workspace,"
        " segbalance.core.datasets, segbalance.db.models;"
        "segbalance.core.cli.build_parser();"
        "bad=[m for m in sys.modules if m.startswith(('PySide6','pyqtgraph','shiboken6'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stdout + r.stderr
