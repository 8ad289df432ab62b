"""Generation job speed at 256x512: pairs/s end to end, DB + file overhead over rendering, RSS over 1000 pairs.

Data: the real Cityscapes sample scaled to 512x256 when SEGBALANCE_CITYSCAPES_SAMPLE is set, else synthetic
scenes. Renderers: copypaste always; pix2pixHD (tiny preset, CPU) when core.render.pix2pixhd is available
(--checkpoint CKPT, or an untrained tiny generator if the module can make one). Prints figures only.

    python benchmarks/bench_generate.py [--pairs 1000] [--overhead-pairs 100] [--rounds 5] [--checkpoint CKPT]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2

from segbalance.core.datasets import open_dataset  # noqa: E402
from segbalance.core.datasets.stats import dataset_stats  # noqa: E402
from segbalance.core.io import encode_png
from segbalance.core.jobs.generate import run_generate
from segbalance.core.planning.balance import Plan, plan_balance  # noqa: E402
from segbalance.core.recombine import apply_recipe, build_layer_bank  # noqa: E402
from segbalance.core.render.interface import LayerWrite, RenderItem
from segbalance.core.render.registry import load_renderer
from segbalance.core.workspace import Workspace  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def small_cityscapes(src: Path, dst: Path, size=(512, 256)) -> Path:
    for p in src.rglob("*.png"):
        q = dst / p.relative_to(src)
        q.parent.mkdir(parents=True, exist_ok=True)
        arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        interp = cv2.INTER_AREA if p.name.endswith("_leftImg8bit.png") else cv2.INTER_NEAREST
        cv2.imwrite(str(q), cv2.resize(arr, size, interpolation=interp))
    return dst


def make_plan(ds, ws, n: int) -> Plan:
    bank = build_layer_bank(ds, ws, workers=1)
    stats = dataset_stats(ds, "train", workspace=ws, workers=1)
    recipes, seed = [], 0
    while len(recipes) < n:
        p = plan_balance(stats, bank, "wall=0.1,fence=0.1,pole=0.05,traffic light=0.03", min(300, n), seed=seed)
        recipes += p.recipes
        seed += 1
    p.recipes = recipes[:n]
    p.dataset = str(ds.root)
    return p


def render_only(ds, ws, plan: Plan, rend, encode: list | None = None) -> float:
    """Seconds to recombine + render every recipe (no files, no DB); `encode` collects PNG encoding time."""
    from segbalance.core.recombine.write import instance_png

    bank = build_layer_bank(ds, ws, workers=1)
    t = time.perf_counter()
    t_enc = 0.0
    for i in range(0, len(plan.recipes), rend.batch_size):
        items = []
        for r in plan.recipes[i : i + rend.batch_size]:
            writes: list = []
            lab, inst = apply_recipe(r, ds, bank, on_write=lambda p, b, mk, w=writes: w.append(LayerWrite(p, b, mk)))
            items.append(RenderItem(lab, inst, r, writes))
        imgs = rend.render(items)
        if encode is not None:
            t0 = time.perf_counter()
            for it, im in zip(items, imgs, strict=True):  # the encodings generate uses
                encode_png(im, photo=True)
                encode_png(it.label, photo=False)
                encode_png(instance_png(it.instance), photo=False)
            t_enc += time.perf_counter() - t0
    if encode is not None:
        encode.append(t_enc)
    return time.perf_counter() - t - t_enc


def median_interval(vals: list[float], n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median: one run's rounds swing by tens of %, so a median
    alone cannot say whether a target is met or missed."""
    import numpy as np

    v = np.asarray(vals, float)
    idx = np.random.default_rng(seed).integers(0, len(v), (n_boot, len(v)))
    lo, hi = np.percentile(np.median(v[idx], axis=1), [2.5, 97.5])
    return float(lo), float(hi)


def bench_renderer(name: str, ds, tmp: Path, plan: Plan, n_overhead: int, rounds: int = 1, **kw) -> None:
    """Writing overhead = generate's pair loop / recombine+render alone. The two alternate, round by round, so
    that a shared machine's drift (the same render varies by tens of % between minutes) hits both alike; the
    median and range of the per-round ratios, and the fastest rounds' ratio, are printed."""
    import statistics

    sub = Plan.from_json(plan.to_json())
    sub.recipes = sub.recipes[:n_overhead]
    sub.dataset = plan.dataset
    rows = []  # per round: t_render, c_render, t_e2e, c_e2e, t_loop, c_loop, pairs
    with Workspace(tmp / f"ws_{name}_ref") as ref:
        rend = load_renderer(name, ds=ds, **kw)
        enc: list[float] = []
        render_only(ds, ref, sub, rend, enc)  # warm caches (bank, decoded images, torch)
        for r in range(rounds):
            c = time.process_time()
            t_render = render_only(ds, ref, sub, rend)
            c_render = time.process_time() - c
            marks: list[tuple[float, float]] = []  # (wall, cpu) at each progress call: the first comes when the
            # pair loop starts (after validation, the layer bank, the job row), the last after every row is in
            with Workspace(tmp / f"ws_{name}_{r}") as ws:
                build_layer_bank(ds, ws, workers=1)  # cached per workspace, as in the reference's
                t, c = time.perf_counter(), time.process_time()
                res = run_generate(ws, ds, sub, name, **kw, progress=lambda d, n, marks=marks: marks.append(
                    (time.perf_counter(), time.process_time())))
                t_e2e, c_e2e = time.perf_counter() - t, time.process_time() - c
            rows.append((t_render, c_render, t_e2e, c_e2e, marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1],
                         res.new))
    n = rows[0][6]

    def pct(vals: list[float]) -> str:
        vals = [(v - 1) * 100 for v in vals]
        spread = f" (rounds: {', '.join(f'{v:.0f}' for v in vals)})" if len(vals) > 1 else ""
        return f"{statistics.median(vals):.1f}%{spread}"

    med = statistics.median
    print(f"[{name}] {n} pairs x {rounds} round(s), medians: end to end {med(r[2] for r in rows) / n * 1000:.1f} "
          f"ms/pair, recombine+render alone {med(r[0] for r in rows) / n * 1000:.1f} ms/pair; PNG encoding of the "
          f"3 files alone {enc[0] / len(sub.recipes) * 1000:.1f} ms/pair; one-off setup (validate plan, open layer "
          f"bank, job row) {med(r[2] - r[4] for r in rows) * 1000:.0f} ms")
    # the median of per-round ratios is the figure the target is judged on (one round slowed by a neighbour
    # moves it little); the fastest round of each against the other (timeit's rule) is shown beside it
    best = min(r[4] for r in rows) / min(r[0] for r in rows)
    loop = [r[4] / r[0] for r in rows]
    print(f"[{name}] writing adds, per pair (pair loop / render alone): per-round median "
          f"{pct(loop)} [target < 25%]; fastest round vs fastest round {(best - 1) * 100:.1f}%; "
          f"end to end {pct([r[2] / r[0] for r in rows])}")
    if len(rows) >= 5:
        lo, hi = median_interval([(v - 1) * 100 for v in loop])
        word = "met" if hi < 25 else "missed" if lo >= 25 else "not separated from 25%"
        print(f"[{name}] per-round median's 95% bootstrap interval over the {len(rows)} rounds: [{lo:.1f}%, "
              f"{hi:.1f}%]; target < 25%: {word}")
    # CPU seconds of all threads: what writing costs when no core is free to overlap it (a loaded machine)
    print(f"[{name}] CPU time: writing costs {pct([r[5] / r[1] for r in rows])} more CPU than rendering in the "
          f"pair loop; cores busy: render alone {med(r[1] / r[0] for r in rows):.2f}, pair loop "
          f"{med(r[5] / r[4] for r in rows):.2f}")


def tiny_generator(path: Path, size: tuple[int, int]) -> str:
    """An untrained generator of the 'tiny' train-gan preset, saved like a train-gan checkpoint (arch + size)."""
    from dataclasses import asdict

    import torch

    from segbalance.core.render.gan_train import make_config
    from segbalance.core.render.pix2pixhd_nets import build_generator

    arch = make_config("tiny", label_nc=35).arch
    torch.manual_seed(0)
    g = build_generator(arch)
    torch.save({"G": g.state_dict(), "config": {"arch": asdict(arch), "size": list(size)}}, path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--overhead-pairs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5, help="render-alone / generate rounds for the overhead figure")
    ap.add_argument("--checkpoint", help="pix2pixHD checkpoint for the generator run")
    ap.add_argument("--only-copypaste", action="store_true",
                    help="the copypaste overhead figure only (no pix2pixHD run, no long-job RSS run)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    src = os.environ.get("SEGBALANCE_CITYSCAPES_SAMPLE")
    if src and Path(src).is_dir():
        root = small_cityscapes(Path(src), tmp / "ds")
    else:
        from tests.recombine_helpers import make_dataset

        root = make_dataset(tmp / "ds", n=12, h=256, w=512)
    ds = open_dataset(root)
    with Workspace(tmp / "ws_plan") as ws:
        plan = make_plan(ds, ws, args.pairs)
    print(f"dataset {root} ({len(ds.samples())} maps, 512x256); plan of {len(plan.recipes)} recipes")

    bench_renderer("copypaste", ds, tmp, plan, args.overhead_pairs, args.rounds)
    if args.only_copypaste:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        import torch

        torch.set_num_threads(1)
        ckpt = args.checkpoint or tiny_generator(tmp / "tiny_G.pt", (512, 256))
        bench_renderer("pix2pixhd", ds, tmp, plan, min(args.overhead_pairs, 40), 1, checkpoint=ckpt, device="cpu")
    except ImportError as exc:
        print(f"[pix2pixhd] skipped: {exc}")

    # memory over a long job
    samples: list[float] = []
    with Workspace(tmp / "ws_long") as ws:
        r0 = rss_mb()
        t = time.perf_counter()
        res = run_generate(ws, ds, plan, "copypaste",
                           progress=lambda d, n: samples.append(rss_mb()) if d % 100 == 0 else None)
        dt = time.perf_counter() - t
    print(f"[copypaste] {res.new} pairs in one job: {res.new / dt:.1f} pairs/s; RSS start {r0:.0f} MB, "
          f"after 100 pairs {samples[1] if len(samples) > 1 else float('nan'):.0f} MB, end {rss_mb():.0f} MB "
          f"(max during run {max(samples or [0]):.0f} MB)")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
