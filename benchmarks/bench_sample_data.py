"""Prints how fast the built-in sample dataset is generated and how its class shares compare to Cityscapes.

    python benchmarks/bench_sample_data.py [--n-train 200] [--n-val 50] [--size 256x128] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from segbalance.core.commands.sample_data import parse_size
from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.datasets.sample import make_sample_dataset, render_scene
from segbalance.core.datasets.stats import pixel_counts

# Cityscapes train split, % of the pixels of the 19 evaluated classes
CITYSCAPES_SHARES = {
    "road": 36.9, "building": 22.8, "vegetation": 15.9, "car": 7.0, "sidewalk": 6.1, "sky": 4.0, "pole": 1.2,
    "person": 1.2, "terrain": 1.2, "fence": 0.9, "wall": 0.7, "traffic sign": 0.6, "bicycle": 0.4, "truck": 0.3,
    "bus": 0.2, "train": 0.2, "traffic light": 0.2, "rider": 0.14, "motorcycle": 0.1,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-val", type=int, default=50)
    ap.add_argument("--size", default="256x128")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_sample_dataset(Path(tmp) / "s", args.n_train, args.n_val, size, args.seed)
        dt = time.perf_counter() - t0
        n = args.n_train + args.n_val
        print(f"generated {n} samples at {size[0]}x{size[1]} in {dt:.2f} s ({dt / max(n, 1) * 1000:.1f} ms/sample,"
              " including PNG writes)")
        from segbalance.core.datasets import open_dataset

        ds = open_dataset(root)
        counts = np.zeros(256, np.int64)
        images = np.zeros(256, np.int64)
        for ref in ds.samples("train"):
            c = pixel_counts(ds.load_label(ref))
            counts += c
            images += c > 0
        if args.n_val:
            print(_colour_lookup(ds))
        # the renderer alone, on the generated maps
        ref = ds.samples("train")[0]
        lab, inst = ds.load_label(ref), ds.load_instance(ref)
        t0 = time.perf_counter()
        for k in range(20):
            render_scene(lab, inst, k)
        print(f"render_scene: {(time.perf_counter() - t0) / 20 * 1000:.1f} ms per {size[0]}x{size[1]} map")
    train = CITYSCAPES.train_classes
    total = sum(int(counts[c.id]) for c in train)
    print(f"\ntrain split ({args.n_train} images): share of the 19 evaluated classes")
    print(f"{'class':<15}{'sample %':>10}{'cityscapes %':>14}{'ratio':>8}{'images':>8}")
    for c in sorted(train, key=lambda c: -CITYSCAPES_SHARES[c.name]):
        share = counts[c.id] / max(total, 1) * 100
        target = CITYSCAPES_SHARES[c.name]
        print(f"{c.name:<15}{share:>10.2f}{target:>14.2f}{share / target:>8.2f}{int(images[c.id]):>8}")


def _colour_lookup(ds) -> str:
    """How far a pure colour lookup gets: majority train id per quantised RGB (4096 bins), learned on train."""
    lut = CITYSCAPES.id_to_train_lut

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for ref in ds.samples(split):
            xs.append(ds.load_image(ref).reshape(-1, 3))
            ys.append(lut[ds.load_label(ref)].ravel())
        x, y = np.concatenate(xs), np.concatenate(ys)
        keep = y < 19
        return (x[keep] // 16).astype(np.int64) @ np.array([256, 16, 1]), y[keep]

    qt, yt = load("train")
    qv, yv = load("val")
    table = np.zeros((4096, 19), np.int64)
    np.add.at(table, (qt, yt), 1)
    pred = table.argmax(1)[qv]
    ious = [((pred == c) & (yv == c)).sum() / ((pred == c) | (yv == c)).sum() for c in range(19) if (yv == c).any()]
    return (f"colour-lookup baseline on val: pixel accuracy {(pred == yv).mean():.3f}, mIoU {np.mean(ious):.3f} "
            f"(always-road: {(yv == 0).mean():.3f})")


if __name__ == "__main__":
    main()
