"""Train pix2pixHD on a dataset: config, data, models, optimizers, loop, one checkpoint dict that resumes exactly.

Entry point for the CLI and the desktop app: `train_gan(dataset, workspace, out_dir, config, progress, cancel)`.
Multi-GPU/multi-process: run the CLI under `torchrun`; DDP is detected from the environment (RANK, WORLD_SIZE).
Only rank 0 writes checkpoints and database rows.
"""

from __future__ import annotations

import os
import random
import tempfile
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
from segbalance.core.render.gan_losses import (
    VGG_ENV,
    VGGLoss,
    class_balance_weights,
    feature_matching_loss,
    load_vgg19,
    lsgan_loss,
    vgg_weights_path,
)
from segbalance.core.render.pix2pixhd import (
    kmeans,
    label_input,
    load_state_dict_checked,
    read_checkpoint,
    resolve_device,
)
from segbalance.core.render.pix2pixhd_nets import (
    Pix2PixHDConfig,
    build_discriminator,
    build_encoder,
    build_generator,
    init_weights,
)

CKPT_NAME = "ckpt.pt"
PRESETS: dict[str, dict] = {
    # trains usefully on 2 CPU cores in minutes at 256x128
    "tiny": dict(netG="global", ngf=32, n_downsample_global=3, n_blocks_global=6, ndf=32, num_D=2, upsample="resize"),
    # the official 512p Cityscapes model (1024x512 in the paper)
    "512p": dict(netG="global", ngf=64, n_downsample_global=4, n_blocks_global=9, ndf=64, num_D=2),
    # the official 1024p model: local enhancer around a 2*ngf global generator, 3 discriminator scales
    "1024p": dict(netG="local", ngf=32, n_downsample_global=4, n_blocks_global=9, ndf=64, num_D=3),
}
DEFAULT_ITERS = {"tiny": 2000}
DEFAULT_EPOCHS = 200  # official: 100 at constant lr + 100 decaying


@dataclass
class GANTrainConfig:
    """Everything a run depends on; stored whole in the checkpoint."""

    arch: Pix2PixHDConfig = field(default_factory=Pix2PixHDConfig)
    preset: str = "tiny"
    size: tuple[int, int] = (256, 128)  # (W, H): labels resized nearest, images bicubic
    iters: int | None = None  # total iterations; or
    epochs: int | None = None  # ... epochs over the split (iters wins when both are set)
    batch_size: int = 1  # per process
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of the run at constant lr, then linear decay to 0 (niter / niter_decay)
    lambda_feat: float = 10.0
    vgg_weights: str | None = None  # torchvision vgg19 state dict; None -> $SEGBALANCE_VGG19 -> VGG loss off
    class_balance: bool = False  # OASIS-style inverse-frequency weights on the adversarial and feature losses
    flip: bool = True
    split: str = "train"
    seed: int = 0
    device: str = "auto"
    amp: str = "off"  # off | bf16 | fp16
    save_every: int = 500
    log_every: int = 10
    kmeans_clusters: int = 10

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GANTrainConfig:
        d = dict(d)
        arch = Pix2PixHDConfig.from_dict(d.pop("arch", {}))
        names = set(cls.__dataclass_fields__)
        cfg = cls(arch=arch, **{k: v for k, v in d.items() if k in names})
        cfg.size = (int(cfg.size[0]), int(cfg.size[1]))
        return cfg


def make_config(preset: str = "tiny", label_nc: int = 35, **overrides) -> GANTrainConfig:
    """A config from a preset; `arch_*`-free keyword overrides go to GANTrainConfig, `arch=dict(...)` to the nets."""
    if preset not in PRESETS:
        raise SegbalanceError(f"unknown preset {preset!r} (choose {', '.join(PRESETS)})")
    arch_over = overrides.pop("arch", {}) or {}
    arch = Pix2PixHDConfig(label_nc=label_nc, **{**PRESETS[preset], **arch_over})
    return GANTrainConfig(arch=arch, preset=preset, **overrides)


@dataclass
class GANTrainResult:
    iteration: int
    checkpoint: Path
    generator: Path  # latest_net_G.pth (plain state dict, loads like the official one)
    run_id: int | None
    history: list[dict] = field(default_factory=list)  # per-iteration losses of this process


# -- data ----------------------------------------------------------------------------------------------
class PairSource:
    """Training pairs resized to the model size; batch order is a function of (seed, iteration) only,
    which is what makes resume exact without saving any loader state."""

    def __init__(self, ds: Dataset, split: str, size: tuple[int, int], seed: int, rank: int = 0, world: int = 1,
                 batch_size: int = 1, flip: bool = True) -> None:
        self.ds = ds
        self.refs = [r for r in ds.samples(split) if r.image_path is not None]
        if not self.refs:
            raise SegbalanceError(f"split {split!r} has no image/label pairs to train on", ds.root)
        self.size, self.seed, self.rank, self.world, self.batch = size, seed, rank, world, batch_size
        self.flip = flip
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

    def get_batch(self, iteration: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(label ids B,H,W long; instance ids B,H,W; image B,3,H,W in [-1, 1])."""
        # one draw per global batch slot: N processes x batch B sees exactly what one process x N*B would
        slots = np.random.default_rng([self.seed, iteration]).random(self.per_iter) < 0.5
        flips = slots[self.rank * self.batch:(self.rank + 1) * self.batch]
        labs, insts, imgs = [], [], []
        for i, f in zip(self.indices(iteration), flips, strict=True):
            lab, inst, img = self.load(i)
            if self.flip and f:
                lab, inst, img = lab[:, ::-1], inst[:, ::-1], img[:, ::-1]
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


def _atomic_save(obj: object, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if hasattr(m, "module") else m


def _autocast(device: torch.device, amp: str):
    if amp == "off":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def ddp_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


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


def _open_run(workspace, out_dir: Path, cfg: GANTrainConfig, resume_from: int | None) -> tuple[object, int] | None:
    """(Workspace, TrainingRun id) for the loss curves; a resumed run keeps its row and drops points past the
    checkpoint so the curve has no duplicate tail."""
    if workspace is None:
        return None
    from sqlalchemy import delete, select

    from segbalance.core.workspace import Workspace
    from segbalance.db import models as m

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    with ws.sessions() as s, s.begin():
        row = None
        if resume_from is not None:
            row = s.scalar(select(m.TrainingRun).where(m.TrainingRun.kind == "gan",
                                                        m.TrainingRun.out_dir == str(out_dir))
                           .order_by(m.TrainingRun.id.desc()))
        if row is None:
            row = m.TrainingRun(kind="gan", name=f"pix2pixHD {cfg.preset} {out_dir.name}", out_dir=str(out_dir),
                                config=cfg.to_dict())
            s.add(row)
            s.flush()
        else:
            s.execute(delete(m.MetricPoint).where(m.MetricPoint.run_id == row.id,
                                                  m.MetricPoint.iteration > resume_from))
        row.status, row.pid, row.finished_at, row.config = "running", os.getpid(), None, cfg.to_dict()
        run_id = row.id
    return ws, run_id


def _log_points(ws, run_id: int, iteration: int, means: dict[str, float]) -> None:
    from segbalance.db import models as m

    with ws.sessions() as s, s.begin():
        s.add_all([m.MetricPoint(run_id=run_id, iteration=iteration, name=k, value=float(v)) for k, v in means.items()])


def _finish_run(ws, run_id: int, status: str, result: dict | None = None) -> None:
    from segbalance.db import models as m
    from segbalance.db.base import utcnow

    with ws.sessions() as s, s.begin():
        row = s.get(m.TrainingRun, run_id)
        row.status, row.finished_at, row.pid = status, utcnow(), None
        if result is not None:
            row.result = result


# -- training ------------------------------------------------------------------------------------------
def train_gan(dataset: str | Path | Dataset, workspace, out_dir: str | Path, config: GANTrainConfig, *,
              resume: bool = False, progress: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None,
              log: Callable[[int, dict[str, float]], None] | None = None) -> GANTrainResult:
    """Train (or with resume=True continue) pix2pixHD; returns where G was saved and the per-step losses.

    workspace: Workspace, folder path or None (then no loss curves are recorded). progress(done, total) is
    called every iteration; log(iteration, losses) every step with that step's losses; cancel() is checked
    before each step: a cancelled run saves a checkpoint, then raises Cancelled.
    """
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    out_dir = Path(out_dir).resolve()
    rank, local_rank, world = ddp_env()
    ddp = world > 1
    own_group = ddp and not torch.distributed.is_initialized()
    if own_group:
        backend = "nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo"
        torch.distributed.init_process_group(backend)
    master = rank == 0
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)

    ckpt_path = out_dir / CKPT_NAME
    ckpt = None
    if resume and ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path)
        if "G" not in ckpt or "config" not in ckpt:
            raise SegbalanceError("not a train-gan checkpoint (no G/config)", ckpt_path)
        saved = GANTrainConfig.from_dict(ckpt["config"])
        # the run continues with its own config; only its length and placement may change on resume
        if config.iters is not None or config.epochs is not None:
            saved.iters, saved.epochs = config.iters, config.epochs
        saved.device = config.device
        config = saved
    elif ckpt_path.exists():
        raise SegbalanceError("already holds a training checkpoint; pass --resume to continue it or choose "
                              "another --out", out_dir)
    elif resume and master:
        warnings.warn(f"{ckpt_path}: no checkpoint to resume from; starting a new run", stacklevel=2)
    cfg = config
    arch = cfg.arch
    if cfg.amp not in ("off", "bf16", "fp16"):
        raise SegbalanceError(f"amp must be off, bf16 or fp16, not {cfg.amp!r}")
    m = arch.size_multiple
    if cfg.size[0] % m or cfg.size[1] % m:
        raise SegbalanceError(f"--size {cfg.size[0]}x{cfg.size[1]} must be a multiple of {m} for this architecture")

    if ddp and torch.cuda.is_available() and cfg.device in ("auto", "cuda"):
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    else:
        device = resolve_device(cfg.device)
    if cfg.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SegbalanceError("--amp bf16 is not supported by this GPU; use fp16 or off")

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    src = PairSource(ds, cfg.split, cfg.size, cfg.seed, rank, world, cfg.batch_size, cfg.flip)
    n_iters = total_iters(cfg, src.iters_per_epoch)

    # models (the same seed on every rank gives identical initial weights; DDP also broadcasts rank 0's)
    G, D, E = build_generator(arch), build_discriminator(arch), build_encoder(arch)
    for net in (G, D, E):
        if net is not None:
            init_weights(net)
            net.to(device)
    vgg_loss = None
    vgg_path = vgg_weights_path(cfg.vgg_weights)
    if vgg_path is not None:
        vgg_loss = VGGLoss(load_vgg19(vgg_path)).to(device)
    elif master:
        warnings.warn(f"VGG19 perceptual loss is off: pass --vgg-weights FILE or set {VGG_ENV} to a torchvision "
                      "vgg19 state dict (features.N.weight) to turn it on", stacklevel=2)

    g_params = list(G.parameters()) + (list(E.parameters()) if E is not None else [])
    opt_G = torch.optim.Adam(g_params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    sched_G = torch.optim.lr_scheduler.LambdaLR(opt_G, lambda it: lr_factor(it, n_iters, cfg.decay_start))
    sched_D = torch.optim.lr_scheduler.LambdaLR(opt_D, lambda it: lr_factor(it, n_iters, cfg.decay_start))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")

    start = 0
    if ckpt is not None:
        load_state_dict_checked(G, ckpt["G"], ckpt_path, "generator")
        load_state_dict_checked(D, ckpt["D"], ckpt_path, "discriminator")
        if E is not None:
            load_state_dict_checked(E, ckpt["E"], ckpt_path, "encoder")
        opt_G.load_state_dict(ckpt["opt_G"])
        opt_D.load_state_dict(ckpt["opt_D"])
        sched_G.load_state_dict(ckpt["sched_G"])
        sched_D.load_state_dict(ckpt["sched_D"])
        scaler.load_state_dict(ckpt["scaler"])
        start = int(ckpt["iteration"])
        rng = ckpt.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and rng.get("cuda"):
            torch.cuda.set_rng_state_all(rng["cuda"])
        if "python" in rng:
            random.setstate(_to_tuple(rng["python"]))

    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        G = DDP(G, device_ids=ids)
        D = DDP(D, device_ids=ids)
        if E is not None:
            E = DDP(E, device_ids=ids)
    G_raw, D_raw, E_raw = _unwrap(G), _unwrap(D), (_unwrap(E) if E is not None else None)

    run = _open_run(workspace, out_dir, cfg, start if ckpt is not None else None) if master else None

    def save(iteration: int, clusters: dict | None = None) -> None:
        if not master:
            return
        state = {
            "G": G_raw.state_dict(), "D": D_raw.state_dict(), "E": E_raw.state_dict() if E_raw else None,
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
            "sched_G": sched_G.state_dict(), "sched_D": sched_D.state_dict(), "scaler": scaler.state_dict(),
            "iteration": iteration, "config": cfg.to_dict(), "label_set": ds.label_set.to_dict(),
            "dataset": {"path": str(ds.root), "fingerprint": ds.fingerprint()},
            "rng": {"torch": torch.get_rng_state(), "python": list(_flatten_state(random.getstate())),
                    "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []},
            "feature_clusters": clusters, "format": "segbalance-pix2pixhd-v1",
        }
        _atomic_save(state, ckpt_path)
        # plain state dicts, drop-in for the official latest_net_G.pth / latest_net_D.pth
        _atomic_save(G_raw.state_dict(), out_dir / "latest_net_G.pth")
        _atomic_save(D_raw.state_dict(), out_dir / "latest_net_D.pth")
        if E_raw is not None:
            _atomic_save(E_raw.state_dict(), out_dir / "latest_net_E.pth")

    history: list[dict] = []
    window: dict[str, list[float]] = {}
    status = "failed"
    it = start
    try:
        G.train()
        D.train()
        for it in range(start, n_iters):
            if cancel is not None and cancel():
                save(it)
                status = "cancelled"
                raise Cancelled()
            losses = train_step(G, D, E, D_raw, src.get_batch(it, device), arch, cfg, opt_G, opt_D, scaler,
                                vgg_loss, device)
            sched_G.step()
            sched_D.step()
            losses["lr"] = opt_G.param_groups[0]["lr"]
            history.append(losses)
            for k, v in losses.items():
                window.setdefault(k, []).append(v)
            done = it + 1
            if run is not None and (done % cfg.log_every == 0 or done == n_iters):
                _log_points(run[0], run[1], done, {k: float(np.mean(v)) for k, v in window.items()})
                window.clear()
            if log is not None:
                log(done, losses)
            if progress is not None:
                progress(done, n_iters)
            if done % cfg.save_every == 0 and done != n_iters:
                save(done)
        it = n_iters
        clusters = None
        if E_raw is not None and master:
            clusters = feature_clusters(E_raw, src, arch.label_nc, cfg.kmeans_clusters, device, cfg.seed)
        save(n_iters, clusters)
        status = "finished"
        if ddp:
            torch.distributed.barrier()  # the other ranks wait for rank 0's final checkpoint
    except KeyboardInterrupt:
        status = "cancelled"
        raise
    finally:
        if run is not None:
            result = {k: v for k, v in history[-1].items()} if history else None
            _finish_run(run[0], run[1], status, {"iteration": it, "last_losses": result} if result else None)
            if run[0] is not workspace:
                run[0].close()
        if own_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return GANTrainResult(n_iters, ckpt_path, out_dir / "latest_net_G.pth", run[1] if run else None, history)


def train_step(G: nn.Module, D: nn.Module, E: nn.Module | None, D_raw: nn.Module,
               batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], arch: Pix2PixHDConfig,
               cfg: GANTrainConfig, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, vgg_loss: nn.Module | None, device: torch.device) -> dict[str, float]:
    """One G update then one D update on the same fake, as in the release; returns the step's losses."""
    label, inst, real = batch
    b = label.shape[0]
    lab_in = label_input(label, inst, arch)
    weight = class_balance_weights(label, arch.label_nc) if cfg.class_balance else None
    with _autocast(device, cfg.amp):
        g_in = torch.cat([lab_in, E(real, inst)], 1) if E is not None else lab_in
        fake = G(g_in)

        # generator: fool every D scale, match D's features on real, match VGG features
        D_raw.requires_grad_(False)
        pred_fake = D_raw(torch.cat([lab_in, fake], 1))
        with torch.no_grad():
            pred_real = D_raw(torch.cat([lab_in, real], 1))
        loss_gan = lsgan_loss(pred_fake, True, weight)
        loss_feat = feature_matching_loss(pred_fake, pred_real, arch.n_layers_D, weight, cfg.lambda_feat)
        loss_vgg = vgg_loss(fake.float(), real) * cfg.lambda_feat if vgg_loss is not None else fake.new_zeros(())
        loss_G = loss_gan + loss_feat + loss_vgg
    opt_G.zero_grad(set_to_none=True)
    scaler.scale(loss_G).backward()
    scaler.step(opt_G)

    # discriminator: real and fake in one batch (one DDP forward per backward)
    D_raw.requires_grad_(True)
    with _autocast(device, cfg.amp):
        preds = D(torch.cat([torch.cat([lab_in, fake.detach()], 1), torch.cat([lab_in, real], 1)], 0))
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
            "loss_D_real": loss_d_real, "loss_D_fake": loss_d_fake, "l1": l1}
    return {k: float(v.detach()) for k, v in vals.items()}


def _flatten_state(state: tuple) -> list:
    """random.getstate() as nested lists (weights_only-safe)."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _to_tuple(saved: list) -> tuple:
    version, internal, gauss = saved
    return (int(version), tuple(int(x) for x in internal), gauss)


__all__ = ["GANTrainConfig", "GANTrainResult", "PRESETS", "make_config", "train_gan", "train_step"]
