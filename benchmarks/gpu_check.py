"""GPU check: every CUDA path of segbalance, run once on one GPU in a few minutes, with its figures.

    python benchmarks/gpu_check.py [--device cuda:0] [--out DIR]     # on the GPU server (make gpu-check)
    python benchmarks/gpu_check.py --dry-run                         # CPU, tiny sizes, gloo (runs in CI)

Steps: pix2pixHD train-gan (512p preset) a few iterations in bf16 and in fp16 with the GradScaler, plus an
exact resume (2 + 2 iterations against 4 straight); render at 1024x512 eager and torch.compile'd (images/s,
peak CUDA memory); train-seg PSPNet-50 at 512x1024 under AMP for a few iterations and a sliding-window
evaluate; a one-process torchrun DDP start over NCCL; `experiment --config paper --estimate`. Commands are
run through the CLI's own entry point (segbalance.core.cli.main, same flags as a user types), so the check
follows the trainers whatever their internals. Any failure is printed with its traceback, and the exit code
is 1; a missing dependency is exit 2 with the recipe to install it on a server without internet.
Figures include process start-up and model building (few iterations): they prove the paths and give orders
of magnitude, not steady-state speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# import name -> distribution name; what the CLI needs beyond the standard library (no Qt for the CLI)
REQUIRED = (("torch", "torch"), ("cv2", "opencv-python-headless"), ("numpy", "numpy"),
            ("sqlalchemy", "SQLAlchemy"), ("tqdm", "tqdm"), ("platformdirs", "platformdirs"),
            ("matplotlib", "matplotlib"))
RECIPE = """\
A bare GPU server often has torch and OpenCV only, and no internet. Bring the rest as wheels:
  here (same Python version as the server):
    pip download SQLAlchemy tqdm platformdirs matplotlib -d wheels/   # add numpy/opencv-python-headless if absent
    copy wheels/ and this checkout to the server
  there:
    pip install --no-index --find-links wheels/ SQLAlchemy tqdm platformdirs matplotlib
    pip install --no-deps -e .          # segbalance itself, without pulling torch or Qt
    python benchmarks/gpu_check.py      # or: make gpu-check"""
BUDGET_S = 8 * 60


def missing() -> list[str]:
    """Distributions this check needs that are not importable here."""
    out = [dist for mod, dist in REQUIRED if importlib.util.find_spec(mod) is None]
    if importlib.util.find_spec("segbalance") is None:
        out.append("segbalance (pip install --no-deps -e . in this checkout)")
    return out


class GpuCheck:
    """Runs the steps in order, each timed, prints one figure line per step and a summary."""

    def __init__(self, dry: bool, device: str, root: Path) -> None:
        import torch

        self.torch = torch
        self.dry, self.device, self.root = dry, device, root
        self.cuda = device.startswith("cuda")
        self.results: list[tuple[str, bool, str, float]] = []
        self.t0 = time.monotonic()
        if dry:
            self.size, self.crop, self.preset, self.backbone = (128, 64), "64x128", "tiny", "resnet18"
            # bf16 is emulated on CPUs without AVX512-BF16/AMX (~9 s per tiny GAN iteration): two iterations
            # (stop at 1, resume to 2) prove the same paths as more
            self.n_render, self.gan_iters, self.seg_iters = 4, 2, 2
        else:
            self.size, self.crop, self.preset, self.backbone = (1024, 512), "512x1024", "512p", "resnet50"
            self.n_render, self.gan_iters, self.seg_iters = 16, 6, 6
        self.data, self.ws = root / "data", root / "ws"

    # -- plumbing ----------------------------------------------------------------------------------------
    def cli(self, *argv: str) -> None:
        from segbalance.core.cli import main

        rc = main([str(a) for a in argv])
        if rc != 0:
            raise RuntimeError(f"segbalance {' '.join(map(str, argv))} exited with {rc}")

    def reset_peak(self) -> None:
        if self.cuda and self.torch.cuda.is_available():
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> str:
        if self.cuda and self.torch.cuda.is_available():
            return f"peak CUDA memory {self.torch.cuda.max_memory_allocated(self.device) / 2**30:.2f} GiB"
        import resource

        return f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"

    def step(self, name: str, fn) -> None:
        left = BUDGET_S - (time.monotonic() - self.t0)
        print(f"\n== {name}  ({left:.0f} s of the {BUDGET_S // 60}-minute budget left)", flush=True)
        t = time.perf_counter()
        try:
            self.reset_peak()
            figure = fn()
            ok = True
        except BaseException as exc:  # every failure is reported; the others still run
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc()
            figure, ok = f"FAILED: {type(exc).__name__}: {exc}", False
        dt = time.perf_counter() - t
        self.results.append((name, ok, figure, dt))
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {figure}  ({dt:.1f} s)", flush=True)

    # -- steps --------------------------------------------------------------------------------------------
    def environment(self) -> str:
        t = self.torch
        if self.cuda:
            if not t.cuda.is_available():
                raise RuntimeError(f"torch {t.__version__} sees no CUDA device (built for CUDA {t.version.cuda})")
            p = t.cuda.get_device_properties(self.device)
            return (f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {t.__version__}, CUDA {t.version.cuda}, "
                    f"bf16 {'yes' if t.cuda.is_bf16_supported() else 'no'}")
        return f"CPU dry run, torch {t.__version__}, {os.cpu_count()} cores"

    def sample_data(self) -> str:
        w, h = self.size
        self.cli("sample-data", self.data, "--n-train", 6, "--n-val", 2, "--size", f"{w}x{h}", "--seed", 0)
        return f"6 train + 2 val procedural scenes at {w}x{h}"

    def _gan(self, out: str, amp: str, iters: int, *extra: str) -> float:
        w, h = self.size
        t = time.perf_counter()
        self.cli("train-gan", self.data, "--workspace", self.ws, "--out", self.root / out, "--preset", self.preset,
                 "--size", f"{w}x{h}", "--iters", iters, "--amp", amp, "--device", self.device, "--seed", 0,
                 "--quiet", *extra)
        return time.perf_counter() - t

    def gan_bf16(self) -> str:
        dt = self._gan("gan_bf16", "bf16", self.gan_iters)
        return f"{self.preset} at {self.size[0]}x{self.size[1]}: {self.gan_iters} iterations in {dt:.1f} s " \
               f"({dt / self.gan_iters:.2f} s/it incl. set-up); {self.peak()}"

    def gan_resume(self) -> str:
        """Stopped after half the iterations (a cancel, as Ctrl-C does) and resumed, against a straight run."""
        from segbalance.core.datasets import open_dataset
        from segbalance.core.errors import Cancelled
        from segbalance.core.render.gan_train import make_config, train_gan

        ds = open_dataset(self.data)
        cfg = dict(size=self.size, iters=self.gan_iters, device=self.device, amp="bf16", seed=0, save_every=10_000)
        half = self.gan_iters // 2
        straight = train_gan(ds, None, self.root / "gan_straight", make_config(self.preset, label_nc=35, **cfg))
        calls = iter(range(10_000))
        try:
            train_gan(ds, None, self.root / "gan_resume", make_config(self.preset, label_nc=35, **cfg),
                      cancel=lambda: next(calls) >= half)
            raise RuntimeError("the cancel did not stop train_gan")
        except Cancelled:
            pass
        resumed = train_gan(ds, None, self.root / "gan_resume", make_config(self.preset, label_nc=35, **cfg),
                            resume=True)
        a = self.torch.load(straight.generator, map_location="cpu", weights_only=True)
        b = self.torch.load(resumed.generator, map_location="cpu", weights_only=True)
        if resumed.iteration != straight.iteration:
            raise RuntimeError(f"resumed run ended at iteration {resumed.iteration}, straight at {straight.iteration}")
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        losses = max(abs(x[k] - y[k]) for x, y in zip(straight.history[half:], resumed.history, strict=True)
                     for k in x)
        # the project's resume test allows 1e-6 on CPU; cuDNN may choose non-deterministic kernels on a GPU
        tol = 1e-5 if not self.cuda else 1e-2
        if not (diff <= tol and losses <= max(tol, 1e-4)):
            raise RuntimeError(f"resume is not exact: G differs by up to {diff:.3g}, losses by {losses:.3g} "
                               f"(allowed {tol})")
        return (f"stopped at {half}, resumed to {self.gan_iters}, vs straight: max |dG| = {diff:.3g}, "
                f"max |d loss| = {losses:.3g}")

    def gan_fp16(self) -> str:
        if not self.cuda:
            # the precision policy (core.runs.runtime) allows fp16 + GradScaler on CUDA only: on a CPU the dry
            # run checks that the refusal is the one-line error, and the GPU run trains
            from segbalance.core.errors import SegbalanceError
            from segbalance.core.runs.runtime import resolve_amp

            try:
                resolve_amp("fp16", self.torch.device("cpu"))
            except SegbalanceError as exc:
                return f"refused on CPU as designed ({exc}); trains on CUDA"
            raise RuntimeError("fp16 on a CPU should be refused by the precision policy")
        iters = self.gan_iters
        dt = self._gan("gan_fp16", "fp16", iters)
        ck = self.torch.load(self.root / "gan_fp16" / "ckpt.pt", map_location="cpu", weights_only=True)
        scale = ck["scaler"].get("scale") if ck.get("scaler") else None
        if self.cuda and not scale:
            raise RuntimeError("fp16 run saved no GradScaler state")
        return f"{iters} iteration(s) in {dt:.1f} s ({dt / iters:.2f} s/it incl. set-up); " \
               f"GradScaler scale {scale}; {self.peak()}"

    def _render(self, compile_: bool) -> str:
        import numpy as np

        from segbalance.core.datasets import open_dataset
        from segbalance.core.render.pix2pixhd import load_renderer

        ds = open_dataset(self.data)
        refs = ds.samples("train")
        labels = [ds.load_label(r) for r in refs]
        insts = [ds.load_instance(r) for r in refs]
        w, h = 1024, 512
        if self.dry:
            w, h = self.size
        t = time.perf_counter()
        rend = load_renderer(self.root / "gan_bf16" / "ckpt.pt", self.device, size=(w, h), compile=compile_)
        rend.render_batch(labels[:1], insts[:1])  # warm-up (and compilation)
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
        warm = time.perf_counter() - t
        self.reset_peak()
        t = time.perf_counter()
        n = 0
        while n < self.n_render:
            k = n % len(labels)
            img = rend.render_batch([labels[k]], [insts[k]])[0]
            n += 1
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t
        if img.shape != (*labels[0].shape, 3) or img.dtype != np.uint8:
            raise RuntimeError(f"render returned {img.shape} {img.dtype}")
        return f"{w}x{h}: {n / dt:.2f} images/s ({dt / n * 1000:.0f} ms/image, first image {warm:.1f} s); {self.peak()}"

    def render_eager(self) -> str:
        return self._render(False)

    def render_compiled(self) -> str:
        return self._render(True)

    def seg_train(self) -> str:
        t = time.perf_counter()
        self.cli("train-seg", self.data, "--workspace", self.ws, "--out", self.root / "seg", "--backbone",
                 self.backbone, "--crop", self.crop, "--iters", self.seg_iters, "--batch", 2, "--amp", "bf16",
                 "--device", self.device, "--workers", 0, "--eval-interval", 10_000, "--max-val-images", 2,
                 "--no-json", "--seed", 0)
        dt = time.perf_counter() - t
        return f"PSPNet-{self.backbone[6:]} crop {self.crop} batch 2 bf16: {self.seg_iters} iterations in " \
               f"{dt:.1f} s ({dt / self.seg_iters:.2f} s/it incl. set-up and a final evaluation); {self.peak()}"

    def seg_evaluate(self) -> str:
        t = time.perf_counter()
        self.cli("evaluate", self.root / "seg", "--dataset", self.data, "--split", "val", "--mode", "slide",
                 "--device", self.device, "--amp", "bf16")
        dt = time.perf_counter() - t
        return f"sliding-window evaluation of 2 val images in {dt:.1f} s; {self.peak()}"

    def ddp(self) -> str:
        backend = "nccl" if self.cuda else "gloo"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               str(Path(__file__).resolve()), "--ddp-probe", "--backend", backend, "--device", self.device]
        env = {**os.environ}
        env.pop("RANK", None)
        env.pop("WORLD_SIZE", None)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
        if r.returncode != 0 or "ddp probe ok" not in r.stdout:
            raise RuntimeError(f"torchrun exited {r.returncode}: {(r.stderr or r.stdout)[-1500:]}")
        return r.stdout.strip().splitlines()[-1]

    def estimate(self) -> str:
        t = time.perf_counter()
        if self.dry:  # the paper config's CPU estimate takes minutes and ~15 GB: the small one proves the path
            self.cli("experiment", "--config", "small", "--estimate", "--device", self.device,
                     "--estimate-steps", 1, "--dataset", self.data)
        else:
            self.cli("experiment", "--config", "paper", "--estimate", "--device", self.device)
        return f"estimate printed above in {time.perf_counter() - t:.1f} s"

    def run(self, skip_compile: bool) -> int:
        self.step("environment", self.environment)
        if not self.results[-1][1]:
            return self.summary()
        self.step("sample data", self.sample_data)
        self.step("train-gan bf16", self.gan_bf16)
        self.step("train-gan exact resume", self.gan_resume)
        self.step("train-gan fp16 + GradScaler", self.gan_fp16)
        self.step("render eager", self.render_eager)
        if skip_compile:
            print("\n== render compiled: skipped (--skip-compile; the dry run skips it: inductor on CPU takes minutes)")
        else:
            self.step("render compiled", self.render_compiled)
        self.step("train-seg under AMP", self.seg_train)
        self.step("evaluate, sliding window", self.seg_evaluate)
        self.step("torchrun DDP start", self.ddp)
        self.step("experiment --estimate", self.estimate)
        return self.summary()

    def summary(self) -> int:
        total = time.monotonic() - self.t0
        print(f"\n== GPU check summary ({'dry run, CPU' if self.dry else self.device}, {total:.0f} s in all"
              f"{'; over the 8-minute budget' if total > BUDGET_S else ''})")
        for name, ok, figure, dt in self.results:
            print(f"{'ok  ' if ok else 'FAIL'} | {name} | {figure} | {dt:.1f} s")
        failed = [r[0] for r in self.results if not r[1]]
        if failed:
            print(f"GPU check FAILED: {', '.join(failed)}", file=sys.stderr)
            return 1
        print("GPU check passed")
        return 0


def ddp_probe(backend: str, device: str) -> int:
    """Under torchrun: a process group over `backend`, a DDP model on `device`, one step and an all-reduce."""
    import torch
    import torch.distributed as dist

    dist.init_process_group(backend)
    try:
        dev = torch.device(device if not device.startswith("cuda") else f"cuda:{int(os.environ['LOCAL_RANK'])}")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                    torch.nn.Conv2d(8, 2, 1)).to(dev)
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        loss = ddp(torch.randn(2, 3, 32, 32, device=dev)).square().mean()
        loss.backward()
        opt.step()
        x = torch.ones(1, device=dev) * (dist.get_rank() + 1)
        dist.all_reduce(x)
        if float(x) != dist.get_world_size() * (dist.get_world_size() + 1) / 2:
            raise RuntimeError(f"all_reduce gave {float(x)}")
        print(f"ddp probe ok: backend {dist.get_backend()}, world {dist.get_world_size()}, device {dev}, "
              f"loss {float(loss):.4f}, all_reduce {float(x):.0f}")
    finally:
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda:0", help="device to check (default cuda:0)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, gloo: proves the script, not a GPU")
    ap.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile render")
    ap.add_argument("--out", help="keep the check's files here (default: a temporary folder, removed)")
    ap.add_argument("--ddp-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="nccl", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    gone = missing()
    if gone:
        print(f"gpu_check: missing {', '.join(gone)}\n{RECIPE}", file=sys.stderr)
        return 2
    if args.ddp_probe:
        return ddp_probe(args.backend, args.device)
    device = "cpu" if args.dry_run else args.device
    import shutil

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        return GpuCheck(args.dry_run, device, root).run(skip_compile=args.skip_compile or args.dry_run)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
