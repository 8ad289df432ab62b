"""What an experiment config will cost on this device, measured before committing days of GPU time to it.

`segbalance experiment --config paper --estimate` times a few real training steps of each trainer at the
config's sizes (random tensors, so no dataset is read), one evaluation forward pass and one render, and
multiplies by the schedule. Peak memory is the device's own (CUDA allocator peak, or the process's peak RSS on
CPU). The segmentation step is measured at batch 2 and 3 and extrapolated linearly to the config's batch, so
a config whose full batch does not fit the machine can still be sized; time per step is then an upper bound
(larger batches use the device better), memory a close estimate (activations grow linearly with batch).
Data loading is not included: with enough workers it overlaps the steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from segbalance.core.errors import SegbalanceError

CITYSCAPES_TRAIN, CITYSCAPES_VAL = 2975, 500  # the paper config's split sizes when no dataset is given
N_CLASSES = 19


@dataclass
class Cost:
    """One component of an experiment: unit cost x count."""

    what: str
    unit: str
    seconds_per_unit: float
    count: int
    peak_mb: float
    note: str = ""

    @property
    def total_s(self) -> float:
        return self.seconds_per_unit * self.count


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA allocator, or this process's RSS on Linux)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets this process's peak RSS (VmHWM)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_mb(device: torch.device) -> float:
    """Peak memory in MB since the last reset_peak."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], steps: int, device: torch.device, warmup: int = 1) -> float:
    """Median seconds of `steps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def seg_step(backbone: str, crop: tuple[int, int], batch: int, amp: str, device: torch.device,
             steps: int, output_stride: int = 8) -> tuple[float, float]:
    """(seconds, peak MB) of one PSPNet SGD step on a batch of crops (H, W)."""
    from segbalance.core.runs.runtime import autocast, memory_format
    from segbalance.core.seg.data import normalize
    from segbalance.core.seg.model import PSPNet, PSPNetConfig
    from segbalance.core.seg.train import segmentation_loss

    reset_peak(device)
    model = PSPNet(PSPNetConfig(N_CLASSES, backbone, output_stride=output_stride)).to(device).train()
    model.to(memory_format=memory_format(amp))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (batch, 3, *crop), dtype=torch.uint8, generator=g).to(device)
    x = x.contiguous(memory_format=memory_format(amp))
    y = torch.randint(0, N_CLASSES, (batch, *crop), generator=g).to(device)

    def step() -> None:
        with autocast(device, amp):
            out, aux = model(normalize(x))
        loss = segmentation_loss(out, aux, y, 0.4)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = _timed(step, steps, device)
    return t, peak_mb(device)


def seg_eval(backbone: str, size: tuple[int, int], amp: str, device: torch.device, steps: int,
             output_stride: int = 8) -> tuple[float, float]:
    """(seconds, peak MB) of one evaluation forward pass on a whole image (W, H)."""
    from segbalance.core.runs.runtime import autocast, memory_format
    from segbalance.core.seg.data import normalize
    from segbalance.core.seg.model import PSPNet, PSPNetConfig

    reset_peak(device)
    model = PSPNet(PSPNetConfig(N_CLASSES, backbone, output_stride=output_stride)).to(device).eval()
    model.to(memory_format=memory_format(amp))
    x = normalize(torch.zeros(1, 3, size[1], size[0], dtype=torch.uint8, device=device))
    x = x.contiguous(memory_format=memory_format(amp))

    def fwd() -> None:
        with torch.inference_mode(), autocast(device, amp):
            model(x).argmax(1)

    t = _timed(fwd, steps, device)
    return t, peak_mb(device)


def gan_step(preset: str, size: tuple[int, int], amp: str, device: torch.device, steps: int) -> tuple[float, float]:
    """(seconds, peak MB) of one pix2pixHD G+D step at batch 1 (the release's batch) on a (W, H) image."""
    from segbalance.core.render.gan_losses import VGGLoss, load_vgg19, vgg_weights_path
    from segbalance.core.render.gan_train import make_config, train_step
    from segbalance.core.render.pix2pixhd_nets import build_discriminator, build_generator, init_weights

    reset_peak(device)
    cfg = make_config(preset, label_nc=35, amp=amp, size=size)
    torch.manual_seed(0)
    G, D = build_generator(cfg.arch).to(device), build_discriminator(cfg.arch).to(device)
    init_weights(G)
    init_weights(D)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    w, h = size
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 34, (1, h, w), generator=g)
    batch = (label.to(device), label.to(device), (torch.rand(1, 3, h, w, generator=g) * 2 - 1).to(device))
    vgg_file = vgg_weights_path(None)  # the training loss includes VGG when the user has the weights file
    vgg = VGGLoss(load_vgg19(vgg_file)).to(device) if vgg_file else None
    t = _timed(lambda: train_step(G, D, None, D, batch, cfg.arch, cfg, opt_G, opt_D, scaler, vgg, device),
               steps, device)
    return t, peak_mb(device)


def render_one(preset: str, size: tuple[int, int], device: torch.device, steps: int) -> tuple[float, float]:
    """(seconds, peak MB) of rendering one label map with the preset's generator (bf16 where it is fast)."""
    from segbalance.core.render.gan_train import make_config
    from segbalance.core.render.pix2pixhd import Renderer
    from segbalance.core.render.pix2pixhd_nets import build_generator, init_weights

    reset_peak(device)
    arch = make_config(preset, label_nc=35).arch
    torch.manual_seed(0)
    G = build_generator(arch)
    init_weights(G)
    r = Renderer(G, arch, size, device, "-")
    lab = np.full((size[1], size[0]), 7, np.uint8)
    lab[: size[1] // 3] = 23
    t = _timed(lambda: r.render(lab), steps, device)
    return t, peak_mb(device)


def estimate_experiment(cfg, *, steps: int = 2, say: Callable[[str], None] = print) -> dict:
    """Measured unit costs x the config's schedule; returns {"components": [...], "total_s", "peak_mb"}."""
    from segbalance.core.experiments.arms import GAN_ARMS, pair_source
    from segbalance.core.experiments.protocol import fast_amp
    from segbalance.core.render.gan_losses import VGG_ENV, vgg_weights_path
    from segbalance.core.runs.runtime import resolve_device

    if steps < 1:
        raise SegbalanceError("--estimate needs at least 1 timed step")
    device = resolve_device(cfg.device)
    amp = fast_amp(cfg)
    if cfg.dataset:
        from segbalance.core.datasets import open_dataset

        ds = open_dataset(cfg.dataset)
        # each run's final pass on val, then the table's pass on the eval split when that is another split
        n_val = len(ds.samples("val")) + (len(ds.samples(cfg.eval_split)) if cfg.eval_split != "val" else 0)
        size = tuple(cfg.resize) if cfg.resize else _first_size(ds)
    else:
        n_val = cfg.n_val or CITYSCAPES_VAL
        size = tuple(cfg.size)
    runs = len(cfg.arms) * cfg.seeds
    b = cfg.seg_batch
    crop = tuple(cfg.seg_crop)
    os_ = cfg.seg_output_stride
    say(f"estimating '{cfg.name}' on {device} (amp {amp}): timing {steps} step(s) of each part ...")
    if b <= 2:  # batch norm needs 2 samples to train
        tb, mb = seg_step(cfg.backbone, crop, b, amp, device, steps, os_)
        note = "measured"
    else:
        t2, m2 = seg_step(cfg.backbone, crop, 2, amp, device, steps, os_)
        t3, m3 = seg_step(cfg.backbone, crop, 3, amp, device, steps, os_)
        tb, mb = t2 + (t3 - t2) * (b - 2), m2 + (m3 - m2) * (b - 2)
        note = "batch 2 and 3 measured, extrapolated linearly"
    comps = [Cost(f"PSPNet-{cfg.backbone} training step, output stride {os_}, batch {b}, "
                  f"crop {crop[0]}x{crop[1]}", "step", tb,
                  runs * cfg.seg_iters, mb, f"{runs} runs x {cfg.seg_iters} iterations; {note}")]
    te, me = seg_eval(cfg.backbone, size, amp, device, steps, os_)
    # arms sharing another arm's pairs (recon-filter) render and score nothing of their own
    rendering = sorted({pair_source(a) for a in cfg.arms} - {None})
    scored = len(rendering) * cfg.seeds * min(cfg.score_images, cfg.budget) if "baseline" in cfg.arms else 0
    # each run's final evaluation also writes the per-image counts the bootstrap needs (one pass), and the
    # baseline segments the pairs of every rendering arm for the generator score
    comps.append(Cost(f"PSPNet evaluation, {size[0]}x{size[1]} image", "image", te, runs * n_val + scored, me,
                      f"{runs} runs x {n_val} evaluated images + {scored} scored pairs"))
    gan_arms = [a for a in rendering if a in GAN_ARMS]
    if gan_arms:
        gsize = tuple(cfg.gan_size)
        gcrop = tuple(cfg.gan_crop) if cfg.gan_crop else gsize  # a training step sees one crop
        tg, mg = gan_step(cfg.gan_preset, gcrop, amp, device, steps)
        what = f"{gcrop[0]}x{gcrop[1]} crop" if gcrop != gsize else f"{gsize[0]}x{gsize[1]}"
        comps.append(Cost(f"pix2pixHD {cfg.gan_preset} G+D step, {what}", "step", tg,
                          cfg.seeds * cfg.gan_iters, mg,
                          "one generator per seed, batch 1, "
                          + ("with the VGG loss" if vgg_weights_path(None)
                             else f"without the VGG loss (no VGG19 file in ${VGG_ENV})")))
        tr, mr = render_one(cfg.gan_preset, gsize, device, steps)
        comps.append(Cost(f"pix2pixHD render, {gsize[0]}x{gsize[1]}", "pair", tr,
                          len(gan_arms) * cfg.seeds * cfg.budget, mr,
                          f"{len(gan_arms)} arms x {cfg.seeds} seeds x {cfg.budget} pairs"))
    total = sum(c.total_s for c in comps)
    peak = max(c.peak_mb for c in comps)
    say(format_estimate(cfg.name, device, amp, comps, total, peak))
    return {"config": cfg.name, "device": str(device), "amp": amp, "total_s": total, "peak_mb": peak,
            "components": [{**asdict(c), "total_s": c.total_s} for c in comps]}


def _first_size(ds) -> tuple[int, int]:
    """(W, H) of the dataset's first validation (else training) label map."""
    from segbalance.core.io import png_size

    refs = ds.samples("val") or ds.samples("train")
    if not refs:
        raise SegbalanceError("dataset has no samples to size the estimate", ds.root)
    h, w = png_size(refs[0].label_path)
    return w, h


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.0f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def format_estimate(name: str, device: torch.device, amp: str, comps: list[Cost], total: float, peak: float) -> str:
    lines = ["| part | per unit | units | total | peak memory | how |", "|---|---|---|---|---|---|"]
    for c in comps:
        lines.append(f"| {c.what} | {c.seconds_per_unit:.3f} s/{c.unit} | {c.count:,} | {_duration(c.total_s)} | "
                     f"{c.peak_mb / 1024:.1f} GB | {c.note} |")
    mem = "CUDA allocator peak" if device.type == "cuda" else "process peak RSS"
    lines.append(f"\nexperiment '{name}' on {device} (amp {amp}): about {_duration(total)} of compute, "
                 f"peak memory {peak / 1024:.1f} GB ({mem}); data loading and generation I/O not included.")
    return "\n".join(lines)
