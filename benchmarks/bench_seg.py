"""PSPNet on CPU: training step time and img/s (fp32 vs bf16 autocast), evaluation img/s, memory, and the
overhead of train_seg's loop (data loading in workers, metrics, DB writes) over a bare eager fp32 loop.

Prints figures only (no assertions). The numbers depend heavily on how loaded the machine is.
    python benchmarks/bench_seg.py [--threads 2] [--batch 2] [--steps 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from segbalance.core.experiments.estimate import peak_mb, reset_peak  # noqa: E402
from segbalance.core.runs.runtime import autocast  # noqa: E402
from segbalance.core.seg.data import normalize  # noqa: E402
from segbalance.core.seg.model import PSPNet, PSPNetConfig  # noqa: E402
from segbalance.core.seg.train import SegTrainConfig, segmentation_loss, train_seg  # noqa: E402

H, W = 256, 512
CPU = torch.device("cpu")


def bare_steps(model: PSPNet, batch: int, steps: int, amp: str, warmup: int = 1) -> list[float]:
    """Eager training steps on fixed tensors: the floor train_seg's loop is measured against."""
    dev = torch.device("cpu")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    x = torch.randint(0, 255, (batch, 3, H, W), dtype=torch.uint8)
    y = torch.randint(0, 19, (batch, H, W))
    model.train()
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        with autocast(dev, amp):
            out, aux = model(normalize(x))
        loss = segmentation_loss(out, aux, y, 0.4)
        float(loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


@torch.no_grad()
def eval_ips(model: PSPNet, n: int, amp: str) -> float:
    dev = torch.device("cpu")
    model.eval()
    x = normalize(torch.randint(0, 255, (1, 3, H, W), dtype=torch.uint8))
    with autocast(dev, amp):
        model(x)
    t = time.perf_counter()
    for _ in range(n):
        with autocast(dev, amp):
            model(x).argmax(1)
    return n / (time.perf_counter() - t)


def make_dataset(root: Path, n: int) -> Path:
    from segbalance.core.io import write_png

    rng = np.random.default_rng(0)
    ids = np.array([7, 8, 11, 21, 23, 24, 26], np.uint8)
    for split, k in (("train", n), ("val", 1)):
        for i in range(k):
            lab = ids[rng.integers(0, len(ids), (H // 32, W // 32))].repeat(32, 0).repeat(32, 1)
            img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            stem = f"bench_{i:06d}_000019"
            write_png(root / "leftImg8bit" / split / "bench" / f"{stem}_leftImg8bit.png", img, rgb=True)
            write_png(root / "gtFine" / split / "bench" / f"{stem}_gtFine_labelIds.png", lab)
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    ap.add_argument("--loop-iters", type=int, default=12, help="iterations of the train_seg overhead run")
    ap.add_argument("--backbones", default="resnet18,resnet50")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, cpu count {os.cpu_count()}, "
          f"load avg {os.getloadavg()[0]:.1f}, crop {H}x{W}, batch {args.batch}")
    print(f"{'model':<10}{'amp':<6}{'step s':>9}{'train img/s':>13}{'eval img/s':>12}{'peak RSS MB':>13}")
    bare_r18 = None
    for name in args.backbones.split(","):
        for amp in ("off", "bf16"):
            torch.manual_seed(0)
            reset_peak(CPU)
            model = PSPNet(PSPNetConfig(19, name))
            times = bare_steps(model, args.batch, args.steps, amp)
            step = float(np.median(times))
            ev = eval_ips(model, 2, amp)
            print(f"{name:<10}{'fp32' if amp == 'off' else amp:<6}{step:>9.3f}{args.batch / step:>13.2f}{ev:>12.2f}"
                  f"{peak_mb(CPU):>13.0f}", flush=True)
            if name == "resnet18" and amp == "off":
                bare_r18 = step
            del model

    # loop overhead: the real train_seg (2 loader workers, metrics every 5 its, DB writes) vs the bare loop
    with tempfile.TemporaryDirectory() as tmp:
        ds = make_dataset(Path(tmp) / "ds", 8)
        cfg = SegTrainConfig(dataset=str(ds), out_dir=str(Path(tmp) / "run"), workspace=str(Path(tmp) / "ws"),
                             backbone="resnet18", crop=(H, W), batch=args.batch, iters=args.loop_iters, workers=2,
                             log_interval=5, amp="off", device="cpu", stdout_json=False, threads=args.threads,
                             max_val_images=1)
        torch.manual_seed(0)
        skip = 2  # first iterations: allocator / oneDNN warm-up in both loops
        bare = bare_steps(PSPNet(PSPNetConfig(19, "resnet18")), args.batch, args.loop_iters - skip, "off", warmup=skip)
        stamps: list[float] = []
        t0 = time.perf_counter()
        res = train_seg(cfg, progress=lambda done, total: stamps.append(time.perf_counter()))
        loop = np.diff(stamps[skip - 1:])  # per-iteration wall time incl. data wait, logging, DB writes
        bare_step, loop_step = float(np.mean(bare)), float(np.mean(loop))
        print(f"\ntrain_seg loop vs bare eager loop, resnet18 fp32, batch {args.batch}, "
              f"mean of iterations {skip + 1}..{args.loop_iters} (2 loader workers, DB every 5 its):")
        print(f"  bare eager loop   {bare_step:.3f} s/step")
        print(f"  train_seg loop    {loop_step:.3f} s/step  (data wait {res['data_wait_s']:.2f} s in total)")
        print(f"  overhead          {(loop_step / bare_step - 1) * 100:+.1f}%  (two separate timings: noisy on a "
              "shared machine)")
        # same iterations, same process: the model step (what a bare eager loop does) vs the whole loop
        wall, step, first = res["train_time_s"], res["step_time_s"], res["first_batch_s"]
        print(f"  within train_seg: model steps {step:.2f} s of {wall:.2f} s loop wall time; first batch "
              f"(worker start-up) {first:.2f} s")
        print(f"  loop overhead after start-up: {((wall - first) / step - 1) * 100:.1f}%  (target < 10%); "
              f"incl. start-up: {(wall / step - 1) * 100:.1f}%")
        print(f"  one-time start-up (dataset scan, model build, worker start, first batch): "
              f"{stamps[0] - t0 - float(loop.mean() if len(loop) else 0):.1f} s")
        if bare_r18:
            print(f"  (warm bare resnet18 fp32 step in the table: {bare_r18:.3f} s)")

if __name__ == "__main__":
    main()
