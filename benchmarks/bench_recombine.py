"""Recombination speed at Cityscapes resolution (2048x1024): compose time, end-to-end vs PNG I/O, maps/s, RSS.

Uses the real Cityscapes sample when SEGBALANCE_CITYSCAPES_SAMPLE is set, else synthetic 2048x1024 scenes.
Runs on one core (OpenCV threads = 1). Prints figures; asserts nothing.

    python benchmarks/bench_recombine.py [--recipes 500]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segbalance.core.datasets import open_dataset  # noqa: E402
from segbalance.core.datasets.stats import dataset_stats  # noqa: E402
from segbalance.core.io import read_label_png, write_png  # noqa: E402
from segbalance.core.planning.balance import plan_balance  # noqa: E402
from segbalance.core.recombine import build_layer_bank, rules_for  # noqa: E402
from segbalance.core.recombine.compose import compose_recipe, load_base  # noqa: E402
from segbalance.core.recombine.write import instance_png, recombine_recipes  # noqa: E402
from segbalance.core.workspace import Workspace  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(root: Path, n: int = 8) -> Path:
    from tests.recombine_helpers import make_dataset

    small = make_dataset(root / "small", n=n, h=128, w=256)
    big = root / "big"
    for p in small.rglob("*.png"):
        q = big / p.relative_to(small)
        q.parent.mkdir(parents=True, exist_ok=True)
        arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(q), cv2.resize(arr, (2048, 1024), interpolation=cv2.INTER_NEAREST))
    return big


def bank_scale(tmp: Path, n: int) -> None:
    root = synthetic(tmp, n)
    ds = open_dataset(root)
    rss0 = rss_mb()
    with Workspace(tmp / "ws") as ws:
        t = time.perf_counter()
        bank = build_layer_bank(ds, ws, workers=2)
        dt = time.perf_counter() - t
        disk = sum(p.stat().st_size for p in bank.root.iterdir())
    print(f"layer bank of {n} maps at 2048x1024: {len(bank)} layers, {dt:.1f} s ({dt / n * 1000:.0f} ms/map, 2 "
          f"workers), shards {disk / 1e6:.1f} MB ({disk / n / 1e3:.0f} kB/map); peak RSS {rss_mb():.0f} MB "
          f"(before {rss0:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", type=int, default=500)
    ap.add_argument("--bank-maps", type=int, default=0,
                    help="only measure building a layer bank of N synthetic 2048x1024 maps (RSS, disk, time)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_recombine_"))
    if args.bank_maps:
        bank_scale(tmp, args.bank_maps)
        return
    src = os.environ.get("SEGBALANCE_CITYSCAPES_SAMPLE")
    root = Path(src) if src and Path(src).is_dir() else synthetic(tmp)
    ds = open_dataset(root)
    print(f"dataset: {root} ({len(ds.samples())} maps)")
    ws = Workspace(tmp / "ws")
    t = time.perf_counter()
    bank = build_layer_bank(ds, ws, workers=1)
    print(f"layer bank: {len(bank)} layers in {time.perf_counter() - t:.2f} s "
          f"({(time.perf_counter() - t) / len(bank.samples) * 1000:.0f} ms/map); "
          f"masks {os.path.getsize(bank.root / 'masks.bin') / 1e6:.2f} MB, "
          f"thumbs {os.path.getsize(bank.root / 'thumbs.bin') / 1e6:.2f} MB")
    t = time.perf_counter()
    bank = build_layer_bank(ds, ws, workers=1)
    print(f"layer bank reuse: {(time.perf_counter() - t) * 1000:.0f} ms")
    stats = dataset_stats(ds, "train", workspace=ws, workers=1)
    recipes = []
    seed = 0
    t = time.perf_counter()
    while len(recipes) < args.recipes:
        plan = plan_balance(stats, bank, "wall=0.1,fence=0.1,pole=0.05,traffic light=0.03", min(200, args.recipes),
                            seed=seed)
        recipes += plan.recipes
        seed += 1
    print(f"planning: {len(recipes)} recipes in {time.perf_counter() - t:.2f} s "
          f"({(time.perf_counter() - t) / len(recipes) * 1000:.1f} ms/recipe)")
    recipes = recipes[: args.recipes]
    rules = rules_for(ds.label_set)

    # 1) the whole run (first, so peak RSS is the run's own)
    rss0 = rss_mb()
    t = time.perf_counter()
    recombine_recipes(recipes, ds, bank, tmp / "all")
    dt = time.perf_counter() - t
    print(f"{len(recipes)} recipes: {len(recipes) / dt:.1f} maps/s ({dt:.1f} s); peak RSS {rss_mb():.0f} MB "
          f"(before the run {rss0:.0f} MB)")
    # 2) compositing alone, base already decoded (best of 3 per recipe: the box is shared)
    n_c = min(100, len(recipes))
    per: dict[str, list[float]] = {}
    for r in recipes[:n_c]:
        lab0, inst0 = load_base(r, ds, rules, background=False)
        best = 1e9
        for _ in range(3):
            lab, inst = lab0.copy(), inst0.copy()
            t = time.perf_counter()
            compose_recipe(r, lab, inst, bank, rules)
            best = min(best, time.perf_counter() - t)
        per.setdefault(r.strategy, []).append(best)
    allt = [v for vs in per.values() for v in vs]
    print(f"compose per 2048x1024 map (no PNG I/O): mean {np.mean(allt) * 1000:.2f} ms, "
          f"median {np.median(allt) * 1000:.2f} ms, p95 {np.percentile(allt, 95) * 1000:.2f} ms  [target < 5 ms]")
    for k, vs in sorted(per.items()):
        print(f"  {k:<7} n={len(vs):<4} mean {np.mean(vs) * 1000:.2f} ms  p95 {np.percentile(vs, 95) * 1000:.2f} ms")

    # 3) PNG I/O alone vs end to end, same recipes
    out_io = tmp / "io"
    out_io.mkdir()
    refs = {s.id: s for s in ds.samples()}
    t = time.perf_counter()
    for i, r in enumerate(recipes[:n_c]):
        ref = refs[r.base]
        lab = read_label_png(ref.label_path)
        inst = read_label_png(ref.instance_path).astype(np.int32) if ref.instance_path else lab.astype(np.int32)
        write_png(out_io / f"{i}_l.png", lab)
        write_png(out_io / f"{i}_i.png", instance_png(inst))
    t_io = time.perf_counter() - t
    t = time.perf_counter()
    recombine_recipes(recipes[:n_c], ds, bank, tmp / "e2e")
    t_e2e = time.perf_counter() - t
    print(f"PNG I/O alone (decode label+instance, encode both): {t_io / n_c * 1000:.1f} ms/map; "
          f"end-to-end recombine: {t_e2e / n_c * 1000:.1f} ms/map; ratio {t_e2e / t_io:.2f}x  [target <= 1.5x]")

    ws.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
