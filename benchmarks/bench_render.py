"""Benchmark the pix2pixHD renderer and trainer on this machine; prints figures, asserts nothing.

Default 512p generator (random weights: speed does not depend on them) at 256x512 and 512x1024 (HxW):
fp32 eager vs bf16 autocast eager vs torch.compile'd bf16, compile warm-up reported separately; bf16-vs-fp32
mean absolute difference on the [-1, 1] scale; the tiny preset's images/s at 256x128; the tiny preset's
training step time at 256x128; peak RSS. Also the CPU's bf16/fp32 matmul ceiling and the generator's conv
FLOPs, which bound what any kernel tuning can reach here (without AMX, bf16 runs on AVX512-BF16 dot products).

    python benchmarks/bench_render.py [--reps 3] [--no-compile] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from segbalance.core.render.gan_train import PRESETS, GANTrainConfig, make_config, train_step  # noqa: E402
from segbalance.core.render.pix2pixhd import Renderer, label_input  # noqa: E402
from segbalance.core.render.pix2pixhd_nets import (  # noqa: E402
    Pix2PixHDConfig,
    build_discriminator,
    build_generator,
    init_weights,
    param_count,
)
from segbalance.core.runs.runtime import choose_precision  # noqa: E402


def street_label(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A Cityscapes-like label map and instance map: sky, buildings, road, sidewalk, a few cars and people."""
    rng = np.random.default_rng(seed)
    lab = np.full((h, w), 23, np.uint8)
    lab[int(h * 0.2):int(h * 0.55)] = 11
    lab[int(h * 0.55):] = 7
    lab[int(h * 0.55):int(h * 0.62)] = 8
    inst = lab.astype(np.int32)
    for k in range(6):
        cls = 26 if k < 4 else 24
        ch, cw = int(h * rng.uniform(0.08, 0.2)), int(w * rng.uniform(0.05, 0.15))
        y, x = int(rng.integers(int(h * 0.45), h - ch)), int(rng.integers(0, w - cw))
        lab[y:y + ch, x:x + cw] = cls
        inst[y:y + ch, x:x + cw] = cls * 1000 + k
    return lab, inst


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_renderer(r: Renderer, lab: np.ndarray, inst: np.ndarray, reps: int) -> tuple[float, float, float]:
    """(first call seconds, median and best seconds per image over reps after it)."""
    t = time.perf_counter()
    r.render(lab, inst)
    first = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        r.render(lab, inst)
        times.append(time.perf_counter() - t)
    return first, float(np.median(times)), float(np.min(times))


def conv_flops(g: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(FLOPs of all convs, FLOPs of the first conv) of one forward pass; 2 FLOPs per multiply-add."""
    counts: list[float] = []

    def hook(m: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(m, torch.nn.ConvTranspose2d):  # every input pixel scatters a k*k*out_ch patch
            macs = inp[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        else:
            macs = out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        counts.append(2.0 * macs)

    hs = [m.register_forward_hook(hook) for m in g.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                torch.nn.ConvTranspose2d))]
    with torch.inference_mode():
        g(x)
    for h in hs:
        h.remove()
    return sum(counts), counts[0]


def gemm_peak(dtype: torch.dtype, n: int = 4096, reps: int = 3) -> float:
    """Best-of-reps GFLOP/s of a square matmul: the CPU's practical ceiling for conv-heavy nets."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 2)[1].splitlines()[0].split())
    except (OSError, IndexError):
        return "unknown"
    return " ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags) + \
        ("" if "amx_bf16" in flags else " (no AMX)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per setting (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow warm-up)")
    ap.add_argument("--sizes", default="256x512,512x1024", help="HxW list for the 512p generator")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print(f"runtime's auto on this CPU: {choose_precision('auto', torch.device('cpu')).line()}")
    print(f"CPU flags: {cpu_flags()}; load average at start {os.getloadavg()[0]:.2f} (timings are medians of "
          f"few reps: run on a quiet machine)")
    peak = {dt: gemm_peak(dt) for dt in (torch.float32, torch.bfloat16)}
    print(f"4096^3 matmul ceiling: fp32 {peak[torch.float32]:.0f} GFLOP/s, bf16 {peak[torch.bfloat16]:.0f} GFLOP/s\n")

    torch.manual_seed(0)
    arch = Pix2PixHDConfig(label_nc=35)
    g = build_generator(arch)
    init_weights(g)
    g.eval().requires_grad_(False)
    print(f"default 512p generator: {param_count(g):,} parameters (label_nc 35 + edge)")
    cpu = torch.device("cpu")
    for hw in args.sizes.split(","):
        h, w = (int(v) for v in hw.split("x"))
        lab, inst = street_label(h, w)
        x = label_input(torch.from_numpy(lab)[None].long(), torch.from_numpy(inst)[None], arch)
        x = x.contiguous(memory_format=torch.channels_last)
        rows = []
        r32 = Renderer(copy.deepcopy(g), arch, (w, h), cpu, "-", amp="off")
        rows.append(("fp32 eager", *time_renderer(r32, lab, inst, args.reps)))
        rcv = Renderer(copy.deepcopy(g), arch, (w, h), cpu, "-", amp="bf16", table_front=False)
        rows.append(("bf16 conv-front", *time_renderer(rcv, lab, inst, args.reps)))
        del rcv
        rbf = Renderer(copy.deepcopy(g), arch, (w, h), cpu, "-", amp="bf16")
        rows.append(("bf16 eager", *time_renderer(rbf, lab, inst, args.reps)))
        y32 = r32.raw_output([lab], [inst])
        diffs = {"bf16 eager": (rbf.raw_output([lab], [inst]) - y32).abs().mean().item()}
        if not args.no_compile:
            rc = Renderer(copy.deepcopy(g), arch, (w, h), cpu, "-", amp="bf16", compile=True)
            rows.append(("bf16 compiled", *time_renderer(rc, lab, inst, args.reps)))
            diffs["bf16 compiled"] = (rc.raw_output([lab], [inst]) - y32).abs().mean().item()
        total, front = conv_flops(g, x)
        print(f"512p G at {h}x{w} (HxW), batch 1, whole render() incl. labels/edges/uint8 (the first conv is a "
              f"table lookup except in 'conv-front'):")
        for name, first, t, best in rows:
            d = f"  mean|diff| vs fp32 {diffs[name]:.4f}" if name in diffs else ""
            print(f"  {name:<15} median {t:7.3f} s/img ({1 / t:5.2f} img/s), best {best:7.3f} s/img;"
                  f"  first call (warm-up) {first:7.2f} s{d}")
        rest = total - front
        print(f"  conv work {total / 1e9:.0f} GFLOP ({rest / 1e9:.0f} without the first conv); at the bf16 matmul "
              f"ceiling that alone takes {rest / 1e9 / peak[torch.bfloat16]:.3f} s/img; 0.25 s/img would need "
              f"{rest / 1e9 / 0.25:.0f} GFLOP/s")
        print(f"  peak RSS so far {rss_mb():.0f} MB\n")

    # tiny preset inference at 256x128
    tiny = make_config("tiny", label_nc=35)
    gt = build_generator(tiny.arch)
    init_weights(gt)
    lab, inst = street_label(128, 256)
    for amp in ("off", "bf16"):
        r = Renderer(copy.deepcopy(gt), tiny.arch, (256, 128), cpu, "-", amp=amp)
        _, t, _ = time_renderer(r, lab, inst, max(5, args.reps))
        labs = [lab] * 8
        t0 = time.perf_counter()
        r.render_batch(labs, [inst] * 8)
        tb = (time.perf_counter() - t0) / 8
        print(f"tiny preset G ({param_count(gt):,} params) at 128x256, {amp:>4}: {1 / t:6.1f} img/s batch 1, "
              f"{1 / tb:6.1f} img/s batch 8")

    # tiny preset training step at 256x128 (batch 1, no VGG: no weights on this machine)
    for amp in ("off", "bf16"):
        cfg: GANTrainConfig = make_config("tiny", label_nc=35, amp=amp, iters=100)
        torch.manual_seed(0)
        G, D = build_generator(cfg.arch), build_discriminator(cfg.arch)
        init_weights(G)
        init_weights(D)
        opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        batch = (torch.from_numpy(lab)[None].long(), torch.from_numpy(inst)[None],
                 torch.rand(1, 3, 128, 256) * 2 - 1)
        times = []
        for i in range(2 + max(5, args.reps)):
            t0 = time.perf_counter()
            train_step(G, D, None, D, batch, cfg.arch, cfg, opt_G, opt_D, scaler, None, cpu)
            if i >= 2:
                times.append(time.perf_counter() - t0)
        print(f"tiny preset training step at 128x256 (G {PRESETS['tiny']['ngf']} ngf + D, batch 1, amp {amp}): "
              f"median {np.median(times):.3f} s/step ({1 / np.median(times):.2f} it/s), best {np.min(times):.3f} s")
    print(f"\npeak RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
