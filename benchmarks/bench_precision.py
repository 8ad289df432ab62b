"""Precision and memory layout per model, against the reference implementations, in one process (issue #43).

Rows: PSPNet-18 training step (batch 8, 96x192: the protocols' step), PSPNet-50 training step (batch 2, 257x513)
next to hszhao/semseg's PSPNet-50, and the pix2pixHD 512p generator at 256x512 next to NVIDIA's official
GlobalGenerator. Arms: fp32 and bf16 autocast, each contiguous (NCHW) and channels-last, and torch.compile'd.
Every arm of a model is timed round-robin (A B C A B C ...) so that load on a shared machine hits all arms
alike; medians and ratios to the reference (or to our fp32) are printed with the CPU's name. Asserts nothing.

The reference models are not part of segbalance: pass local checkouts (they are imported from there, never
copied). A row whose checkout is missing is skipped with a message.

    python benchmarks/bench_precision.py [--semseg DIR] [--pix2pixhd DIR] [--reps 3] [--models psp18,psp50,g512]
                                         [--no-compile] [--threads 2] [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import io
import os
import platform
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from segbalance.core.render.pix2pixhd import Renderer, label_input
from segbalance.core.render.pix2pixhd_nets import Pix2PixHDConfig, build_generator, init_weights
from segbalance.core.runs.runtime import autocast, cpu_fast_bf16
from segbalance.core.seg.model import PSPNet, PSPNetConfig
from segbalance.core.seg.train import segmentation_loss

CPU = torch.device("cpu")
CL = torch.channels_last
Step = Callable[[], None]


def cpu_description() -> str:
    """The CPU's model name, core count and bf16-relevant flags (timings mean nothing without them)."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("unknown CPU", "x86_64", ""):
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    has = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    fast, why = cpu_fast_bf16()
    return (f"{name}, {os.cpu_count()} logical CPUs, flags: {' '.join(has) or 'no AVX512'}; "
            f"runtime's bf16 verdict: {'fast' if fast else 'not fast'} ({why})")


CLOCK = time.perf_counter  # --clock cpu: process CPU seconds (the work done, less hit by a busy machine's waits)


def interleaved(arms: dict[str, Step], reps: int) -> dict[str, list[float]]:
    """Seconds per call of each arm, timed round-robin after one warm-up call each (reported apart)."""
    times: dict[str, list[float]] = {k: [] for k in arms}
    for k, f in arms.items():
        t = CLOCK()
        f()
        print(f"    warm-up {k:<28} {CLOCK() - t:7.2f} s", flush=True)
    for _ in range(reps):
        for k, f in arms.items():
            t = CLOCK()
            f()
            times[k].append(CLOCK() - t)
    return times


def paired_ratio(base: list[float], arm: list[float], n_boot: int = 4000) -> tuple[float, float, float]:
    """Geometric mean over rounds of base / arm, with a 95% bootstrap interval over the rounds: each round times
    every arm back to back, so pairing by round cancels most of a busy machine's drift."""
    r = np.log(np.asarray(base) / np.asarray(arm))
    rng = np.random.default_rng(0)
    boot = r[rng.integers(0, len(r), (n_boot, len(r)))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(np.exp(r.mean())), float(np.exp(lo)), float(np.exp(hi))


def report(title: str, times: dict[str, list[float]], base: str) -> None:
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"  {title}  (medians of {len(next(iter(times.values())))} interleaved reps; ratio = {base} / arm, "
          f">1 is faster; paired = geometric mean of the per-round ratios [95% bootstrap over rounds])")
    for k, v in med.items():
        spread = f"[{min(times[k]):.3f}..{max(times[k]):.3f}]"
        paired = ""
        if k != base and len(times[k]) > 1:
            g, lo, hi = paired_ratio(times[base], times[k])
            paired = f"  paired x{g:5.2f} [{lo:.2f}, {hi:.2f}]"
        print(f"    {k:<30} {v:8.3f} s  {spread:<20} x{med[base] / v:5.2f}{paired}")
    print(flush=True)


# -- PSPNet -------------------------------------------------------------------------------------------
def sgd(model: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)


def our_step(backbone: str, amp: str, channels_last: bool, x: torch.Tensor, y: torch.Tensor,
             compiled: bool = False) -> Step:
    """One train-seg step (autocast forward, main + 0.4 aux CE, backward, SGD with momentum)."""
    torch.manual_seed(0)
    model = PSPNet(PSPNetConfig(19, backbone)).train()
    if channels_last:
        model = model.to(memory_format=CL)
        x = x.contiguous(memory_format=CL)
    opt = sgd(model)
    fwd = torch.compile(model) if compiled else model

    def step() -> None:
        with autocast(CPU, amp):
            out, aux = fwd(x)
        loss = segmentation_loss(out, aux, y, 0.4)
        float(loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def semseg_step(root: Path, x: torch.Tensor, y: torch.Tensor) -> Step | None:
    """hszhao/semseg's PSPNet-50 training step in fp32, as its train.py runs it (main + 0.4 aux loss)."""
    if not (root / "model" / "pspnet.py").is_file():
        return None
    sys.path.insert(0, str(root))
    try:
        ref = importlib.import_module("model.pspnet")
    finally:
        sys.path.remove(str(root))
    torch.manual_seed(0)
    model = ref.PSPNet(layers=50, classes=19, zoom_factor=8, pretrained=False).train()
    opt = sgd(model)

    def step() -> None:
        _, main_loss, aux_loss = model(x, y)
        loss = main_loss + 0.4 * aux_loss
        float(loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bench_pspnet(backbone: str, batch: int, hw: tuple[int, int], reps: int, compile_: bool,
                 semseg: Path | None, precisions: tuple[str, ...] = ("fp32", "bf16")) -> None:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, *hw)
    y = torch.randint(0, 19, (batch, *hw))
    arms: dict[str, Step] = {}
    label = f"PSPNet-{backbone[6:]} training step, batch {batch}, {hw[0]}x{hw[1]} (HxW)"
    if semseg is not None:
        ref = semseg_step(semseg, x, y) if backbone == "resnet50" else None
        if ref is not None:
            arms["semseg fp32 (reference)"] = ref
        elif backbone == "resnet50":
            print(f"  (no hszhao/semseg checkout at {semseg}: reference row skipped)")
    arms["fp32"] = our_step(backbone, "off", False, x, y)
    arms["fp32 channels-last"] = our_step(backbone, "off", True, x, y)
    if "bf16" in precisions:
        arms["bf16"] = our_step(backbone, "bf16", False, x, y)
        arms["bf16 channels-last"] = our_step(backbone, "bf16", True, x, y)
    if compile_ and "bf16" in precisions:
        arms["bf16 channels-last compiled"] = our_step(backbone, "bf16", True, x, y, compiled=True)
    print(f"{label}:")
    report(label, interleaved(arms, reps), "semseg fp32 (reference)" if "semseg fp32 (reference)" in arms else "fp32")


# -- pix2pixHD generator ------------------------------------------------------------------------------
def official_generator(root: Path, arch: Pix2PixHDConfig, ours: torch.nn.Module) -> torch.nn.Module | None:
    """NVIDIA/pix2pixHD's GlobalGenerator (instance norm), with our G's weights (same key layout)."""
    if not (root / "models" / "networks.py").is_file():
        return None
    if importlib.util.find_spec("torchvision") is None:  # networks.py imports it for its VGG19 loss only
        stub = types.ModuleType("torchvision")
        stub.models = types.ModuleType("torchvision.models")  # type: ignore[attr-defined]
        sys.modules["torchvision"] = stub
    sys.path.insert(0, str(root))
    try:
        nets = importlib.import_module("models.networks")
    finally:
        sys.path.remove(str(root))
    with contextlib.redirect_stdout(io.StringIO()):  # define_G prints the network
        g = nets.define_G(arch.input_nc, arch.output_nc, arch.ngf, "global", arch.n_downsample_global,
                          arch.n_blocks_global, norm="instance", gpu_ids=[])
    g.load_state_dict(ours.state_dict())
    return g.eval().requires_grad_(False)


def bench_generator(reps: int, compile_: bool, official: Path | None, hw: tuple[int, int] = (256, 512)) -> None:
    from bench_render import street_label  # run as a script: benchmarks/ is on sys.path

    torch.manual_seed(0)
    arch = Pix2PixHDConfig(label_nc=35)
    g = build_generator(arch)
    init_weights(g)
    g.eval().requires_grad_(False)
    h, w = hw
    lab, inst = street_label(h, w)
    arms: dict[str, Step] = {}
    label = f"pix2pixHD 512p G, batch 1, {h}x{w} (HxW), forward incl. label input"
    if official is not None:
        ref = official_generator(official, arch, g)
        if ref is None:
            print(f"  (no NVIDIA/pix2pixHD checkout at {official}: reference row skipped)")
        else:
            def ref_step(ref: torch.nn.Module = ref) -> None:
                with torch.inference_mode():
                    ref(label_input(torch.from_numpy(lab)[None].long(), torch.from_numpy(inst)[None], arch))
            arms["official G fp32 (reference)"] = ref_step

    def ours(amp: str, channels_last: bool, compiled: bool = False) -> Step:
        r = Renderer(copy.deepcopy(g), arch, (w, h), CPU, "-", amp=amp, compile=compiled, channels_last=channels_last)

        def step() -> None:
            r.raw_output([lab], [inst])
        return step
    arms["fp32"] = ours("off", False)
    arms["fp32 channels-last"] = ours("off", True)
    arms["bf16"] = ours("bf16", False)
    arms["bf16 channels-last"] = ours("bf16", True)
    if compile_:
        arms["bf16 channels-last compiled"] = ours("bf16", True, compiled=True)
    print(f"{label}:")
    report(label, interleaved(arms, reps), "official G fp32 (reference)" if "official G fp32 (reference)" in arms
           else "fp32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--semseg", type=Path, help="local checkout of github.com/hszhao/semseg (the PSPNet reference)")
    ap.add_argument("--pix2pixhd", type=Path, help="local checkout of github.com/NVIDIA/pix2pixHD (the G reference)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved timed repetitions per arm (median reported)")
    ap.add_argument("--models", default="psp18,psp50,g512", help="comma list of psp18, psp50, g512")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile arms (slow warm-up)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="PSPNet arms to time: fp32,bf16 or fp32 (more rounds for the fp32 comparison)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall seconds, or process CPU seconds (with --threads 1: the work per step, the steadier "
                         "figure on a machine other processes share)")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    print(f"CPU: {cpu_description()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, load average at start "
          f"{os.getloadavg()[0]:.1f} (other processes share these cores: compare ratios, not seconds)\n")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.semseg is None and "psp50" in models:
        print("  (no --semseg DIR: the hszhao/semseg reference row is skipped)")
    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    if "psp18" in models:
        bench_pspnet("resnet18", 8, (96, 192), args.reps, not args.no_compile, None, precisions)
    if "psp50" in models:
        bench_pspnet("resnet50", 2, (257, 513), args.reps, False, args.semseg, precisions)
    if "g512" in models:
        if args.pix2pixhd is None:
            print("  (no --pix2pixhd DIR: the official-G reference row is skipped)")
        bench_generator(args.reps, not args.no_compile, args.pix2pixhd)


if __name__ == "__main__":
    main()
