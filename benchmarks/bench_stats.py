"""Class-statistics scan cost vs bare PNG decode, and the warm (cached) re-scan time.

Targets (foundation issue): a cold scan costs at most 1.3x decoding the same label PNGs;
a warm re-scan of 3000 unchanged samples takes under 1 s.

    python benchmarks/bench_stats.py [--synthetic 48] [--warm 3000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segbalance.core.datasets import open_dataset  # noqa: E402
from segbalance.core.datasets.sample import make_layout, sample_rng  # noqa: E402
from segbalance.core.datasets.stats import dataset_stats  # noqa: E402
from segbalance.core.workspace import Workspace  # noqa: E402


def bare_decode(files: list[Path]) -> float:
    t = time.perf_counter()
    for f in files:
        cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
    return time.perf_counter() - t


def bincount_cost(files: list[Path]) -> float:
    t = time.perf_counter()
    for f in files:
        np.bincount(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).ravel(), minlength=256)
    return time.perf_counter() - t


def scan(root: Path, workers: int) -> float:
    ds = open_dataset(root)
    t = time.perf_counter()
    dataset_stats(ds, "train", workers=workers)
    return time.perf_counter() - t


def make_fullres(root: Path, n: int) -> None:
    """n synthetic 2048x1024 samples: sample-data layouts upscaled (labels nearest)."""
    gt = root / "gtFine" / "train" / "big"
    im = root / "leftImg8bit" / "train" / "big"
    gt.mkdir(parents=True)
    im.mkdir(parents=True)
    for i in range(n):
        lab, inst = make_layout(sample_rng(0, "train", i), (512, 256))
        lab = cv2.resize(lab, (2048, 1024), interpolation=cv2.INTER_NEAREST)
        stem = f"big_{i:06d}_000019"
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), lab)
        rgb = cv2.resize(np.random.default_rng(i).integers(0, 255, (64, 128, 3), dtype=np.uint8), (2048, 1024))
        cv2.imwrite(str(im / f"{stem}_leftImg8bit.png"), rgb, [cv2.IMWRITE_PNG_COMPRESSION, 1])


def make_tiny(root: Path, n: int) -> None:
    gt = root / "gtFine" / "train" / "tiny"
    im = root / "leftImg8bit" / "train" / "tiny"
    gt.mkdir(parents=True)
    im.mkdir(parents=True)
    lab = np.full((32, 64), 7, np.uint8)
    lab[:10] = 23
    img = np.zeros((32, 64, 3), np.uint8)
    for i in range(n):
        stem = f"tiny_{i:06d}_000019"
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), lab)
        cv2.imwrite(str(im / f"{stem}_leftImg8bit.png"), img)


def report(name: str, root: Path) -> None:
    files = sorted(root.glob("gtFine/train/*/*_gtFine_labelIds.png"))
    scan(root, 1)  # warm the page cache
    dec = min(bare_decode(files) for _ in range(2))
    binc = min(bincount_cost(files) for _ in range(2))
    s1 = min(scan(root, 1) for _ in range(2))
    s2 = min(scan(root, 2) for _ in range(2))
    print(f"{name}: {len(files)} label maps")
    print(f"  bare decode            {dec:7.3f} s  ({dec / len(files) * 1000:6.1f} ms/map)")
    print(f"  decode + np.bincount   {binc:7.3f} s  ratio {binc / dec:5.2f}x")
    print(f"  scan, 1 process        {s1:7.3f} s  ratio {s1 / dec:5.2f}x   (target <= 1.30x)")
    print(f"  scan, 2 workers        {s2:7.3f} s  ratio {s2 / dec:5.2f}x   (wall clock, parallel)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=48, help="synthetic 2048x1024 samples")
    ap.add_argument("--warm", type=int, default=3000, help="samples for the warm re-scan")
    args = ap.parse_args()
    print(f"cpus={os.cpu_count()}  opencv={cv2.__version__}  numpy={np.__version__}")
    real = os.environ.get("SEGBALANCE_CITYSCAPES_SAMPLE")
    if real and Path(real).is_dir():
        report("real Cityscapes sample", Path(real))
    else:
        print("real Cityscapes sample: SEGBALANCE_CITYSCAPES_SAMPLE not set, skipped")
    tmp = Path(tempfile.mkdtemp(prefix="bench_stats_"))
    try:
        make_fullres(tmp / "full", args.synthetic)
        report("synthetic 2048x1024", tmp / "full")
        make_tiny(tmp / "tiny", args.warm)
        ws = Workspace(tmp / "ws")
        ds = open_dataset(tmp / "tiny")
        t = time.perf_counter()
        dataset_stats(ds, "train", workspace=ws)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        st = dataset_stats(open_dataset(tmp / "tiny"), "train", workspace=ws)
        warm = time.perf_counter() - t
        ws.close()
        assert st.cached == args.warm
        print(f"warm re-scan of {args.warm} unchanged samples: {warm:.3f} s (target < 1 s); cold scan {cold:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
