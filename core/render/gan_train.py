"""Train pix2pixHD on a dataset: config, data, models, optimizers, loop, one checkpoint dict that resumes exactly.

Device, precision, DDP, seeding, the checkpoint file and the run's TrainingRun + Job rows come from the
shared training runtime (core.runs.runtime, core.runs.records), as for train-seg.

Entry point for the CLI and the desktop app: `train_gan(dataset, workspace, out_dir, config, progress, cancel)`.
Multi-GPU/multi-process: run the CLI under `torchrun`; DDP is detected from the environment (RANK, WORLD_SIZE).
Only rank 0 writes checkpoints and database rows.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from segbalance.core.datasets import Dataset, open_dataset
from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.ranks import Rank
from segbalance.core.render.gan_augment import DAugment, draw, parse_policy, sliced
from segbalance.core.render.gan_losses import (
    VGG_ENV,
    VGGLoss,
    class_balance_weights,
    feature_matching_loss,
    l1_loss,
    load_vgg19,
    lsgan_loss,
    vgg_weights_path,
)
from segbalance.core.render.pix2pixhd import kmeans, label_input
from segbalance.core.render.pix2pixhd_nets import (
    Pix2PixHDConfig,
    build_discriminator,
    build_encoder,
    build_generator,
    init_weights,
)
from segbalance.core.runs.records import DONE, RunFolder, RunRecord
from segbalance.core.runs.runtime import (
    Precision,
    any_rank,
    autocast,
    choose_precision,
    keyed_generator,
    load_checkpoint,
    load_state_checked,
    resolve_device,
    rng_state,
    run_config,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    setup_ddp,
    teardown_ddp,
)

CKPT_NAME = "ckpt.pt"
PRESETS: dict[str, dict] = {
    # trains usefully on 2 CPU cores in minutes at 256x128
    # (resize convs, label skips and noise: docs/pix2pixhd.md, "Pilot history"; none loads official weights)
    "tiny": dict(netG="global", ngf=32, n_downsample_global=3, n_blocks_global=6, ndf=32, num_D=2, upsample="resize",
                 label_skips=True, noise_nc=8),
    # the official 512p Cityscapes model (1024x512 in the paper)
    "512p": dict(netG="global", ngf=64, n_downsample_global=4, n_blocks_global=9, ndf=64, num_D=2),
    # the official 1024p model: local enhancer around a 2*ngf global generator, 3 discriminator scales
    "1024p": dict(netG="local", ngf=32, n_downsample_global=4, n_blocks_global=9, ndf=64, num_D=3),
}
DEFAULT_ITERS = {"tiny": 2000}
# training defaults of a preset beyond GANTrainConfig's (which are the release's); the official presets add none
PRESET_TRAINING: dict[str, dict] = {"tiny": {"ema": 0.999}}
DEFAULT_EPOCHS = 200  # official: 100 at constant lr + 100 decaying


@dataclass
class GANTrainConfig:
    """Everything a run depends on; stored whole in the checkpoint."""

    arch: Pix2PixHDConfig = field(default_factory=Pix2PixHDConfig)
    preset: str = "tiny"
    size: tuple[int, int] = (256, 128)  # (W, H): labels resized nearest, images bicubic
    # (W, H) random crop of each resized pair, as the release's --resize_or_crop ..._crop / --fineSize: G and D
    # are fully convolutional, so a half-area crop buys twice the iterations for the same time; None = whole pair
    crop: tuple[int, int] | None = None
    iters: int | None = None  # total iterations; or
    epochs: int | None = None  # ... epochs over the split (iters wins when both are set)
    batch_size: int = 1  # per process
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of the run at constant lr, then linear decay to 0 (niter / niter_decay)
    lambda_feat: float = 10.0
    lambda_l1: float = 0.0  # pixel L1 to the real image (pix2pix's content term); 0 = off, as the release
    lr_d: float | None = None  # discriminator lr; None = lr (TTUR when set higher)
    vgg_weights: str | None = None  # torchvision vgg19 state dict; None -> $SEGBALANCE_VGG19 -> VGG loss off
    class_balance: bool = False  # OASIS-style inverse-frequency weights on the adversarial and feature losses
    # exponential moving average of G's weights (decay per step, warmed up as ema_warmup says); the
    # average is what renders. None = off: the raw weights render, as in the release
    ema: float | None = None
    # how the average starts: "short" weighs step t by min(ema, (1+t)/(10+t)), so in a run of a few thousand
    # steps it spans about the last ninth of the run; "debias" is the plain average with decay `ema`, corrected
    # for its zero start (as Adam's moments), so it spans ~1/(1-ema) steps from early on
    ema_warmup: str = "short"
    # DiffAugment policy for D's inputs ("translation", "cutout", comma separated; gan_augment); None = off,
    # as in the release
    d_augment: str | None = None
    flip: bool = True
    split: str = "train"
    seed: int = 0
    device: str = "auto"
    amp: str = "off"  # off | bf16 | fp16 | auto (core.runs.runtime.resolve_amp: the one meaning of auto)
    save_every: int = 500
    # also checkpoint when this many seconds passed since the last save: a stop or crash loses at most about
    # this much work whatever an iteration costs (0 = by iterations only)
    save_every_s: float = 60.0
    log_every: int = 10
    kmeans_clusters: int = 10

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["crop"] = list(self.crop) if self.crop is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GANTrainConfig:
        d = dict(d)
        arch = Pix2PixHDConfig.from_dict(d.pop("arch", {}))
        names = set(cls.__dataclass_fields__)
        cfg = cls(arch=arch, **{k: v for k, v in d.items() if k in names})
        cfg.size = (int(cfg.size[0]), int(cfg.size[1]))
        if cfg.crop is not None:
            cfg.crop = (int(cfg.crop[0]), int(cfg.crop[1]))
        return cfg


def generator_label_nc(ls) -> int:
    """pix2pixHD's one-hot width for a label set: the official Cityscapes generators' 35, else max id + 1."""
    return 35 if ls.name == "cityscapes" else ls.label_nc


def make_config(preset: str = "tiny", label_nc: int = 35, **overrides) -> GANTrainConfig:
    """A config from a preset; `arch_*`-free keyword overrides go to GANTrainConfig, `arch=dict(...)` to the nets."""
    if preset not in PRESETS:
        raise SegbalanceError(f"unknown preset {preset!r} (choose {', '.join(PRESETS)})")
    arch_over = overrides.pop("arch", {}) or {}
    # None (an option not given): the preset's default
    for key in ("lambda_l1", "lr_d", "ema", "ema_warmup", "d_augment"):
        if key in overrides and overrides[key] is None:
            del overrides[key]
    train = {**PRESET_TRAINING.get(preset, {}), **overrides}
    if not train.get("ema"):
        train["ema"] = None  # 0 (`--ema off`) turns the average off
    train["d_augment"] = parse_policy(train.get("d_augment"))  # "off" turns it off
    arch = Pix2PixHDConfig(label_nc=label_nc, **{**PRESETS[preset], **arch_over})
    return GANTrainConfig(arch=arch, preset=preset, **train)


@dataclass
class GANTrainResult:
    iteration: int
    checkpoint: Path
    generator: Path  # latest_net_G.pth (plain state dict, loads like the official one)
    run_id: int | None
    history: list[dict] = field(default_factory=list)  # per-iteration losses of this process
    precision: str = ""  # the run's precision and why (the runtime's Precision.line())


# -- data ----------------------------------------------------------------------------------------------
class PairSource:
    """Training pairs resized to the model size; batch order is a function of (seed, iteration) only,
    which is what makes resume exact without saving any loader state."""

    def __init__(self, ds: Dataset, split: str, size: tuple[int, int], seed: int, rank: int = 0, world: int = 1,
                 batch_size: int = 1, flip: bool = True, crop: tuple[int, int] | None = None) -> None:
        self.ds = ds
        self.refs = [r for r in ds.samples(split) if r.image_path is not None]
        if not self.refs:
            raise SegbalanceError(f"split {split!r} has no image/label pairs to train on", ds.root)
        self.size, self.seed, self.rank, self.world, self.batch = size, seed, rank, world, batch_size
        self.flip = flip
        if crop is not None and (crop[0] > size[0] or crop[1] > size[1]):
            raise SegbalanceError(f"--crop {crop[0]}x{crop[1]} is larger than --size {size[0]}x{size[1]}")
        self.crop = None if crop is None or tuple(crop) == tuple(size) else (int(crop[0]), int(crop[1]))
        self.per_iter = batch_size * world
        if len(self.refs) < self.per_iter:
            raise SegbalanceError(f"split {split!r} has {len(self.refs)} samples, fewer than batch x processes "
                                  f"({self.per_iter})", ds.root)
        self.iters_per_epoch = len(self.refs) // self.per_iter
        w, h = size
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = (
            {} if len(self.refs) * w * h * 8 < 768 * 2**20 else None)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(label uint8 HxW, instance int32 HxW, image uint8 HxWx3) at the model size."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        ref = self.refs[i]
        w, h = self.size
        lab = self.ds.load_label(ref)
        img = self.ds.load_image(ref)
        inst = self.ds.load_instance(ref)
        if inst is None:
            inst = lab.astype(np.int32)  # class boundaries still give the edge channel something to say
        if lab.shape != (h, w):
            lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
            inst = cv2.resize(inst.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        item = (lab, inst.astype(np.int32), img)
        if self._cache is not None:
            self._cache[i] = item
        return item

    def indices(self, iteration: int) -> list[int]:
        epoch, step = divmod(iteration, self.iters_per_epoch)
        perm = torch.randperm(len(self.refs), generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        start = step * self.per_iter + self.rank * self.batch
        return perm[start:start + self.batch].tolist()

    def noise(self, iteration: int, channels: int, device: torch.device) -> torch.Tensor:
        """(B, channels, H, W) standard normal noise for G, a function of (seed, iteration, global batch slot):
        resume stays exact and N processes x batch B draw what one process x N*B would."""
        w, h = self.crop or self.size
        full = torch.randn(self.per_iter, channels, h, w, generator=keyed_generator([self.seed, iteration, 1]))
        return full[self.rank * self.batch:(self.rank + 1) * self.batch].to(device)

    def d_augment(self, iteration: int, policy: str | None) -> tuple[DAugment | None, DAugment | None]:
        """D's input transforms for the G step and the D step of this iteration, drawn for the global batch."""
        if not policy:
            return None, None
        w, h = self.crop or self.size
        mine = slice(self.rank * self.batch, (self.rank + 1) * self.batch)
        return tuple(sliced(draw(policy, self.per_iter, h, w, [self.seed, iteration, stream]), mine)
                     for stream in (2, 3))

    def get_batch(self, iteration: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(label ids B,H,W long; instance ids B,H,W; image B,3,H,W in [-1, 1])."""
        # one draw per global batch slot: N processes x batch B sees exactly what one process x N*B would
        rng = np.random.default_rng([self.seed, iteration])
        mine = slice(self.rank * self.batch, (self.rank + 1) * self.batch)
        flips = (rng.random(self.per_iter) < 0.5)[mine]
        corners = rng.random((self.per_iter, 2))[mine]  # drawn after the flips: uncropped runs keep their order
        labs, insts, imgs = [], [], []
        for i, f, (u, v) in zip(self.indices(iteration), flips, corners, strict=True):
            lab, inst, img = self.load(i)
            if self.flip and f:
                lab, inst, img = lab[:, ::-1], inst[:, ::-1], img[:, ::-1]
            if self.crop is not None:
                (cw, ch), (w, h) = self.crop, self.size
                x0, y0 = int(u * (w - cw + 1)), int(v * (h - ch + 1))
                box = (slice(y0, y0 + ch), slice(x0, x0 + cw))
                lab, inst, img = lab[box], inst[box], img[box]
            labs.append(np.ascontiguousarray(lab))
            insts.append(np.ascontiguousarray(inst))
            imgs.append(np.ascontiguousarray(img))
        lab_t = torch.from_numpy(np.stack(labs)).long()
        inst_t = torch.from_numpy(np.stack(insts))
        img_t = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1
        return lab_t.to(device), inst_t.to(device), img_t.to(device)


# -- helpers -------------------------------------------------------------------------------------------
def total_iters(cfg: GANTrainConfig, iters_per_epoch: int) -> int:
    if cfg.iters is not None:
        return int(cfg.iters)
    epochs = cfg.epochs if cfg.epochs is not None else None
    if epochs is None:
        return DEFAULT_ITERS.get(cfg.preset, DEFAULT_EPOCHS * iters_per_epoch)
    return int(epochs) * iters_per_epoch


def lr_factor(it: int, total: int, decay_start: float) -> float:
    """Constant lr for the first decay_start of the run, then linear decay to 0 at the end."""
    start = int(total * decay_start)
    if it < start or total <= start:
        return 1.0
    return max(0.0, (total - it) / (total - start))


EMA_WARMUPS = ("short", "debias")


def ema_decay(step: int, decay: float, warmup: str = "short") -> float:
    """The averaging weight at optimizer step `step` (0-based): short memory early, `decay` once warmed up.

    Without a warm-up the average would carry the random initial weights for ~1/(1-decay) steps, longer
    than a short CPU run's whole schedule. "short" caps the decay at (1+t)/(10+t); "debias" keeps `decay` but
    renormalises by the weight the zero start took (1 - decay^(t+1)), so step 0 copies the model.
    """
    if check_ema_warmup(warmup) == "debias":
        return 1.0 - (1.0 - float(decay)) / (1.0 - float(decay) ** (step + 1))
    return min(float(decay), (1.0 + step) / (10.0 + step))


def check_ema_warmup(warmup: str) -> str:
    """The warm-up's name, or a one-line error before any training starts."""
    if warmup not in EMA_WARMUPS:
        raise SegbalanceError(f"unknown EMA warm-up {warmup!r} (choose {', '.join(EMA_WARMUPS)})")
    return warmup


@torch.no_grad()
def ema_update(avg: nn.Module, model: nn.Module, decay: float) -> None:
    """avg <- decay * avg + (1 - decay) * model, parameters and float buffers alike."""
    for a, m in zip(avg.parameters(), model.parameters(), strict=True):
        a.lerp_(m.detach(), 1.0 - decay)
    for a, m in zip(avg.buffers(), model.buffers(), strict=True):
        if a.is_floating_point():
            a.lerp_(m.detach(), 1.0 - decay)
        else:
            a.copy_(m)


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if hasattr(m, "module") else m


@torch.no_grad()
def feature_clusters(encoder: nn.Module, source: PairSource, label_nc: int, k: int, device: torch.device,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """Per class, k-means centres of the encoder's instance-mean features over the training split."""
    per_class: dict[int, list[np.ndarray]] = {}
    encoder.eval()
    for i in range(len(source.refs)):
        _, inst, img = source.load(i)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
        inst_t = torch.from_numpy(inst)[None].to(device)
        feat = encoder(x, inst_t)[0].float().cpu().numpy()
        for iid in np.unique(inst):
            cls = int(iid) // 1000 if iid >= 1000 else int(iid)
            if cls >= label_nc:
                continue
            ys, xs = np.nonzero(inst == iid)
            per_class.setdefault(cls, []).append(feat[:, ys[0], xs[0]])
    encoder.train()
    return {str(c): torch.from_numpy(kmeans(np.stack(v), k, seed=seed)) for c, v in sorted(per_class.items())}


# -- training ------------------------------------------------------------------------------------------
def _resumed_config(config: GANTrainConfig, ckpt_path: Path, resume: bool, master: bool
                    ) -> tuple[GANTrainConfig, dict | None]:
    """The run's own config from its checkpoint (only length and device may change), or (config, None)."""
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if "G" not in ckpt or "config" not in ckpt:
            raise SegbalanceError("not a train-gan checkpoint (no G/config)", ckpt_path)
        saved = GANTrainConfig.from_dict(ckpt["config"])
        if config.iters is not None or config.epochs is not None:
            saved.iters, saved.epochs = config.iters, config.epochs
        saved.device = config.device
        return saved, ckpt
    if ckpt_path.exists():
        raise SegbalanceError("already holds a training checkpoint; pass --resume to continue it or choose "
                              "another --out", ckpt_path.parent)
    if resume and master:
        warnings.warn(f"{ckpt_path}: no checkpoint to resume from; starting a new run", stacklevel=3)
    return config, None


def _open_workspace(workspace):
    """(Workspace or None, whether we opened it and must close it)."""
    if workspace is None:
        return None, False
    from segbalance.core.workspace import Workspace

    if isinstance(workspace, Workspace):
        return workspace, False
    return Workspace(workspace), True


def train_gan(dataset: str | Path | Dataset, workspace, out_dir: str | Path, config: GANTrainConfig, *,
              resume: bool = False, progress: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None,
              log: Callable[[int, dict[str, float]], None] | None = None) -> GANTrainResult:
    """Train (or with resume=True continue) pix2pixHD; returns where G was saved and the per-step losses.

    workspace: Workspace, folder path or None (then no run/job rows and no loss curves). progress(done, total)
    is called every iteration; log(iteration, losses) every step with that step's losses; cancel() and the
    job row's cancel flag are checked before each step: a cancelled run saves a checkpoint, then raises
    Cancelled. The run ends "done", "cancelled" or "failed", the words of every run and job.
    """
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    out_dir = Path(out_dir).resolve()
    ckpt_path = out_dir / CKPT_NAME

    # config, device, precision, processes
    device = resolve_device(config.device)
    ddp, device = setup_ddp(device)
    folder = RunFolder(out_dir, CKPT_NAME, "train-gan") if ddp.master else None
    ws, own_ws = None, False
    try:
        if folder is not None:
            folder.acquire()
        cfg, ckpt = _resumed_config(config, ckpt_path, resume, ddp.master)
        arch = cfg.arch
        precision = choose_precision(cfg.amp, device)  # the runtime's one policy; logged, kept in the run row
        amp = precision.amp
        m = arch.size_multiple
        for flag, (w, h) in (("--size", cfg.size), ("--crop", cfg.crop or cfg.size)):
            if w % m or h % m:
                raise SegbalanceError(f"{flag} {w}x{h} must be a multiple of {m} for this architecture")
        cfg.d_augment = parse_policy(cfg.d_augment)
        check_ema_warmup(cfg.ema_warmup)
        if cfg.d_augment and cfg.class_balance:
            raise SegbalanceError("--d-augment and --class-balance do not combine: the class weights are not "
                                  "moved with D's shifted input")
        seed_everything(cfg.seed)
        src = PairSource(ds, cfg.split, cfg.size, cfg.seed, ddp.rank, ddp.world, cfg.batch_size, cfg.flip,
                         cfg.crop)
        ws, own_ws = _open_workspace(workspace) if ddp.master else (None, False)
        res = _run(ds, src, cfg, amp, ckpt, ckpt_path, out_dir, device, ddp, ws, progress, cancel, log, precision)
    except BaseException:
        if folder is not None:
            folder.release(failed=True)
            folder = None
        raise
    finally:
        if folder is not None:
            folder.release(failed=False)
        if own_ws:
            ws.close()
        teardown_ddp(ddp)
    return res


def _run(ds: Dataset, src: PairSource, cfg: GANTrainConfig, amp: str, ckpt: dict | None, ckpt_path: Path,
         out_dir: Path, device: torch.device, ddp: Rank, ws, progress, cancel, log,
         precision: Precision | None = None) -> GANTrainResult:
    """The training script proper, in its phases: build, restore, loop, finish."""
    run = _GanRun(ds, src, cfg, amp, ckpt, ckpt_path, out_dir, device, ddp)
    run.build()
    run.restore()
    run.record = RunRecord(ws, "gan", out_dir, name=f"pix2pixHD {cfg.preset} {out_dir.name}",
                           config={**run_config(cfg, precision), "dataset": str(ds.root)},
                           total=run.n_iters, master=ddp.master and ws is not None,
                           resume_from=run.start if ckpt is not None else None)
    with run.record.lifetime() as end:
        if precision is not None:
            run.record.note(precision.line())
        try:
            run.loop(progress, cancel, log)
            run.finish()
            end.status = DONE
        except KeyboardInterrupt:
            end.message = f"interrupted at iteration {run.it} of {run.n_iters}"
            raise
        except Cancelled:
            end.message = f"cancelled at iteration {run.it} of {run.n_iters}; checkpoint kept"
            raise
        finally:
            end.result = {"iteration": run.it, "last_losses": dict(run.history[-1])} if run.history else None
    return GANTrainResult(run.n_iters, ckpt_path, out_dir / "latest_net_G.pth", run.record.run_id, run.history,
                          precision.line() if precision is not None else "")


class _GanRun:
    """One GAN run's state, filled phase by phase (the phases share the networks and optimizers)."""

    def __init__(self, ds: Dataset, src: PairSource, cfg: GANTrainConfig, amp: str, ckpt: dict | None,
                 ckpt_path: Path, out_dir: Path, device: torch.device, ddp: Rank) -> None:
        self.ds, self.src, self.cfg, self.amp, self.ckpt, self.ckpt_path = ds, src, cfg, amp, ckpt, ckpt_path
        self.out_dir, self.device, self.ddp = out_dir, device, ddp
        self.arch = cfg.arch
        self.n_iters = total_iters(cfg, src.iters_per_epoch)
        self.start = self.it = 0
        self.history: list[dict] = []
        self.record: RunRecord | None = None

    # -- build: networks, perceptual loss, optimizers, schedules --------------------------------------
    def build(self) -> None:
        cfg, arch, device, ddp = self.cfg, self.arch, self.device, self.ddp
        # the same seed on every rank gives identical initial weights; DDP also broadcasts rank 0's
        G, D, E = build_generator(arch), build_discriminator(arch), build_encoder(arch)
        for net in (G, D, E):
            if net is not None:
                init_weights(net)
                net.to(device)
        self.vgg_loss = None
        vgg_path = vgg_weights_path(cfg.vgg_weights)
        if vgg_path is not None:
            self.vgg_loss = VGGLoss(load_vgg19(vgg_path)).to(device)
        elif ddp.master:
            warnings.warn(f"VGG19 perceptual loss is off: pass --vgg-weights FILE or set {VGG_ENV} to a "
                          "torchvision vgg19 state dict (features.N.weight) to turn it on", stacklevel=4)
        g_params = list(G.parameters()) + (list(E.parameters()) if E is not None else [])
        self.opt_G = torch.optim.Adam(g_params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        lr_d = cfg.lr if cfg.lr_d is None else cfg.lr_d
        self.opt_D = torch.optim.Adam(D.parameters(), lr=lr_d, betas=(cfg.beta1, cfg.beta2))
        n = self.n_iters
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, lambda it: lr_factor(it, n, cfg.decay_start))
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, lambda it: lr_factor(it, n, cfg.decay_start))
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == "fp16")
        self.G, self.D, self.E = G, D, E

    # -- restore: the checkpoint of a resumed run, the weight averages, DDP wrapping ------------------
    def restore(self) -> None:
        ckpt, path, cfg = self.ckpt, self.ckpt_path, self.cfg
        G, D, E = self.G, self.D, self.E
        if ckpt is not None:
            load_state_checked(G, ckpt["G"], path, "generator")
            load_state_checked(D, ckpt["D"], path, "discriminator")
            if E is not None:
                load_state_checked(E, ckpt["E"], path, "encoder")
            self.opt_G.load_state_dict(ckpt["opt_G"])
            self.opt_D.load_state_dict(ckpt["opt_D"])
            self.sched_G.load_state_dict(ckpt["sched_G"])
            self.sched_D.load_state_dict(ckpt["sched_D"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.start = self.it = int(ckpt["iteration"])
            set_rng_state(ckpt.get("rng", {}))
        # the weight average of G (and of E, whose features G was trained on and which the clusters come from)
        self.G_ema = self.E_ema = None
        if cfg.ema is not None:
            self.G_ema = copy.deepcopy(G).requires_grad_(False)
            self.E_ema = copy.deepcopy(E).requires_grad_(False) if E is not None else None
            if ckpt is not None and ckpt.get("G_ema") is not None:
                load_state_checked(self.G_ema, ckpt["G_ema"], path, "generator average")
                if self.E_ema is not None:
                    load_state_checked(self.E_ema, ckpt["E_ema"], path, "encoder average")
        if self.ddp.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G = DDP(G, device_ids=ids)
            self.D = DDP(D, device_ids=ids)
            if E is not None:
                self.E = DDP(E, device_ids=ids)
        self.G_raw, self.D_raw = _unwrap(self.G), _unwrap(self.D)
        self.E_raw = _unwrap(self.E) if self.E is not None else None

    def save(self, iteration: int, clusters: dict | None = None) -> None:
        if not self.ddp.master:
            return
        G_ema, E_ema, G_raw, D_raw, E_raw = self.G_ema, self.E_ema, self.G_raw, self.D_raw, self.E_raw
        save_checkpoint(self.ckpt_path, {
            "G": G_raw.state_dict(), "G_ema": G_ema.state_dict() if G_ema is not None else None,
            "D": D_raw.state_dict(), "E": E_raw.state_dict() if E_raw else None,
            "E_ema": E_ema.state_dict() if E_ema is not None else None,
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": iteration, "config": self.cfg.to_dict(), "label_set": self.ds.label_set.to_dict(),
            "dataset": {"path": str(self.ds.root), "fingerprint": self.ds.fingerprint()},
            "rng": rng_state(), "feature_clusters": clusters, "format": "segbalance-pix2pixhd-v1",
        })
        # plain state dicts, drop-in for the official latest_net_G.pth / latest_net_D.pth; G is the weights
        # that render (the average when there is one), in the same layout
        save_checkpoint(self.out_dir / "latest_net_G.pth", (G_ema if G_ema is not None else G_raw).state_dict())
        save_checkpoint(self.out_dir / "latest_net_D.pth", D_raw.state_dict())
        if E_raw is not None:
            save_checkpoint(self.out_dir / "latest_net_E.pth", (E_ema if E_ema is not None else E_raw).state_dict())

    # -- loop: every iteration, or Cancelled (after a checkpoint) when a stop was asked for ------------
    def loop(self, progress, cancel, log) -> None:
        cfg, arch, src, device, ddp, record = self.cfg, self.arch, self.src, self.device, self.ddp, self.record
        n_iters, start = self.n_iters, self.start
        window: dict[str, list[float]] = {}
        last_save = t_start = time.monotonic()
        self.G.train()
        self.D.train()
        for it in range(start, n_iters):
            self.it = it
            if any_rank(ddp, bool(cancel is not None and cancel()) or record.cancel_requested()):
                self.save(it)
                raise Cancelled()
            noise = src.noise(it, arch.noise_nc, device) if arch.noise_nc else None
            losses = train_step(self.G, self.D, self.E, self.D_raw, src.get_batch(it, device), arch, cfg, self.opt_G,
                                self.opt_D, self.scaler, self.vgg_loss, device, self.amp, noise=noise,
                                d_aug=src.d_augment(it, cfg.d_augment))
            self.sched_G.step()
            self.sched_D.step()
            if self.G_ema is not None:
                w = ema_decay(it, cfg.ema, cfg.ema_warmup)
                ema_update(self.G_ema, self.G_raw, w)
                if self.E_ema is not None:
                    ema_update(self.E_ema, self.E_raw, w)
            losses["lr"] = self.opt_G.param_groups[0]["lr"]
            self.history.append(losses)
            for k, v in losses.items():
                window.setdefault(k, []).append(v)
            done = it + 1
            if done % cfg.log_every == 0 or done == n_iters:
                for k, v in window.items():
                    record.metric(done, k, float(np.mean(v)))
                elapsed = time.monotonic() - t_start
                record.flush(done, rate=(done - start) / elapsed if elapsed > 0 else None)  # the job row's ETA
                window.clear()
            if log is not None:
                log(done, losses)
            if progress is not None:
                progress(done, n_iters)
            due = cfg.save_every_s and time.monotonic() - last_save >= cfg.save_every_s
            if (done % cfg.save_every == 0 or due) and done != n_iters:
                self.save(done)
                last_save = time.monotonic()
        self.it = n_iters

    # -- finish: the encoder's feature clusters and the final checkpoint ------------------------------
    def finish(self) -> None:
        clusters = None
        if self.E_raw is not None and self.ddp.master:
            clusters = feature_clusters(self.E_ema if self.E_ema is not None else self.E_raw, self.src,
                                        self.arch.label_nc, self.cfg.kmeans_clusters, self.device, self.cfg.seed)
        self.save(self.n_iters, clusters)
        if self.ddp.enabled:
            torch.distributed.barrier()  # the other ranks wait for rank 0's final checkpoint


def train_step(G: nn.Module, D: nn.Module, E: nn.Module | None, D_raw: nn.Module,
               batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], arch: Pix2PixHDConfig,
               cfg: GANTrainConfig, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, vgg_loss: nn.Module | None, device: torch.device,
               amp: str | None = None, noise: torch.Tensor | None = None,
               d_aug: tuple[DAugment | None, DAugment | None] | None = None) -> dict[str, float]:
    """One G update then one D update on the same fake, as in the release; returns the step's losses.

    noise: G's noise channels when the architecture has them (PairSource.noise); drawn here when not given.
    d_aug: transforms of D's input in the G step and in the D step (PairSource.d_augment); each applies alike
    to the real and the fake pair, so feature matching still compares like with like.
    """
    label, inst, real = batch
    b = label.shape[0]
    amp = amp or cfg.amp
    lab_in = label_input(label, inst, arch)
    weight = class_balance_weights(label, arch.label_nc) if cfg.class_balance else None
    with autocast(device, amp):
        g_in = torch.cat([lab_in, E(real, inst)], 1) if E is not None else lab_in
        if arch.noise_nc:
            if noise is None:
                noise = torch.randn(b, arch.noise_nc, *g_in.shape[-2:], device=g_in.device)
            g_in = torch.cat([g_in, noise.to(g_in.dtype)], 1)
        fake = G(g_in)

        # generator: fool every D scale, match D's features on real, match VGG features
        aug_g, aug_d = d_aug or (None, None)
        aug_g = aug_g or (lambda x: x)
        aug_d = aug_d or (lambda x: x)
        D_raw.requires_grad_(False)
        pred_fake = D_raw(aug_g(torch.cat([lab_in, fake], 1)))
        with torch.no_grad():
            pred_real = D_raw(aug_g(torch.cat([lab_in, real], 1)))
        loss_gan = lsgan_loss(pred_fake, True, weight)
        loss_feat = feature_matching_loss(pred_fake, pred_real, arch.n_layers_D, weight, cfg.lambda_feat)
        loss_vgg = vgg_loss(fake.float(), real) * cfg.lambda_feat if vgg_loss is not None else fake.new_zeros(())
        loss_l1 = (l1_loss(fake, real, weight) * cfg.lambda_l1 if cfg.lambda_l1 > 0
                   else fake.new_zeros((), dtype=torch.float32))
        loss_G = loss_gan + loss_feat + loss_vgg + loss_l1
    opt_G.zero_grad(set_to_none=True)
    scaler.scale(loss_G).backward()
    scaler.step(opt_G)

    # discriminator: real and fake in one batch (one DDP forward per backward)
    D_raw.requires_grad_(True)
    with autocast(device, amp):
        preds = D(torch.cat([aug_d(torch.cat([lab_in, fake.detach()], 1)), aug_d(torch.cat([lab_in, real], 1))], 0))
        loss_d_fake = lsgan_loss([[f[:b] for f in p] for p in preds], False, weight)
        loss_d_real = lsgan_loss([[f[b:] for f in p] for p in preds], True, weight)
        loss_D = 0.5 * (loss_d_fake + loss_d_real)
    opt_D.zero_grad(set_to_none=True)
    scaler.scale(loss_D).backward()
    scaler.step(opt_D)
    scaler.update()
    with torch.no_grad():
        l1 = (fake.detach().float() - real).abs().mean()
    vals = {"loss_G_GAN": loss_gan, "loss_G_GAN_Feat": loss_feat, "loss_G_VGG": loss_vgg,
            "loss_G_L1": loss_l1,
            "loss_D_real": loss_d_real, "loss_D_fake": loss_d_fake, "l1": l1}
    return {k: float(v.detach()) for k, v in vals.items()}


__all__ = ["EMA_WARMUPS", "GANTrainConfig", "GANTrainResult", "PRESETS", "ema_decay", "ema_update", "make_config",
           "train_gan", "train_step"]
