"""PSPNet training, read top to bottom: config, data, model, optimizer, loop, checkpoint.

Recipe of the reference PSPNet: SGD momentum 0.9, weight decay 1e-4, base lr 0.01 with 10x on the
head (PPM, classifier, aux), poly decay power 0.9, loss = main + 0.4 aux (cross-entropy, ignore 255).
DDP is detected from the environment (torchrun sets RANK/WORLD_SIZE/LOCAL_RANK). One checkpoint dict
{model, optimizer, scheduler, scaler, rng, iteration, config, ...} resumes exactly.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from segbalance.core.datasets import Dataset, open_dataset
from segbalance.core.errors import Cancelled, DataError, SegbalanceError
from segbalance.core.io import atomic_write_bytes, atomic_write_json, image_size
from segbalance.core.labels import IGNORE
from segbalance.core.seg import data as sd
from segbalance.core.seg.evaluate import CHECKPOINT_FORMAT, CHECKPOINT_NAME, evaluate, read_checkpoint
from segbalance.core.seg.model import BACKBONES, PSPNet, PSPNetConfig, load_backbone_weights, weights_layout
from segbalance.core.seg.runtime import autocast, resolve_amp, resolve_device

T = TypeVar("T")


class TrainingDiverged(SegbalanceError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class SegTrainConfig:
    """One training run. Fields marked as recipe are fixed by the checkpoint when resuming."""

    dataset: str
    out_dir: str
    workspace: str | None = None
    split: str = "train"
    val_split: str = "val"
    extra: str | None = None  # "pairs" (workspace GeneratedPair rows) or a Cityscapes-layout export folder
    extra_status: tuple[str, ...] = ("accepted",)
    sampler: str = "uniform"  # uniform | rare-class
    backbone: str = "resnet50"
    pretrained: str | None = None  # local ImageNet backbone weights
    stem: str = "auto"  # deep | plain | auto (the weights file's layout, else deep for 50/101, plain for 18/34)
    crop: tuple[int, int] = (256, 512)  # (h, w)
    scale: tuple[float, float] = (0.5, 2.0)
    augment: str = "standard"  # name in core.seg.data.AUGMENTATIONS
    iters: int = 1000
    batch: int = 8  # global batch, split over DDP processes
    lr: float = 0.01
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    power: float = 0.9
    aux_weight: float = 0.4
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto | bf16 | fp16 | off
    workers: int = 2  # data-loading worker processes (0: in the training process)
    threads: int | None = None  # torch intra-op threads (None: torch default)
    log_interval: int = 10
    eval_interval: int = 0  # 0: evaluate only at the end
    ckpt_interval: int = 0  # 0: at every evaluation (or every 100 iterations when eval_interval is 0)
    eval_mode: str = "whole"
    max_val_images: int | None = None  # cap for the periodic evaluations (the final one uses all)
    resume: bool = False
    name: str | None = None
    stdout_json: bool = True

    # recipe fields come from the checkpoint on resume; the rest may change between sessions
    RUNTIME_FIELDS = ("dataset", "out_dir", "workspace", "device", "amp", "workers", "threads", "log_interval",
                      "eval_interval", "ckpt_interval", "eval_mode", "max_val_images", "resume", "name",
                      "stdout_json", "pretrained")

    def __post_init__(self) -> None:
        self.crop = tuple(int(v) for v in self.crop)  # type: ignore[assignment]
        self.scale = tuple(float(v) for v in self.scale)  # type: ignore[assignment]
        self.extra_status = tuple(self.extra_status)
        if self.backbone not in BACKBONES:
            raise SegbalanceError(f"unknown backbone {self.backbone!r}; choose from {', '.join(BACKBONES)}")
        if len(self.crop) != 2 or min(self.crop) < 8:
            raise SegbalanceError(f"crop {self.crop} too small (need at least 8x8)")
        if self.iters < 1 or self.batch < 1:
            raise SegbalanceError("iters and batch must be positive")
        if self.stem not in ("auto", "deep", "plain"):
            raise SegbalanceError(f"unknown stem {self.stem!r}; choose auto, deep or plain")
        if self.sampler not in ("uniform", "rare-class"):
            raise SegbalanceError(f"unknown sampler {self.sampler!r}; choose uniform or rare-class")
        if self.augment not in sd.AUGMENTATIONS:
            raise SegbalanceError(f"unknown augmentation {self.augment!r}; choose from "
                                  f"{', '.join(sorted(sd.AUGMENTATIONS))}")
        bad = set(self.extra_status) - {"pending", "accepted", "rejected"}
        if bad:
            raise SegbalanceError(f"bad --extra-status {','.join(sorted(bad))}; use accepted, pending, rejected")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crop"], d["scale"], d["extra_status"] = list(self.crop), list(self.scale), list(self.extra_status)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SegTrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


# -- small named helpers --------------------------------------------------------------------------
@dataclass
class DDPInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_ddp(device_kind: str) -> DDPInfo:
    """DDP from torchrun's environment; gloo on CPU, nccl on CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return DDPInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return DDPInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def in_rank_order(ddp: DDPInfo, fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 first (it creates the DB / fills the stats cache), then on the other ranks."""
    if not ddp.enabled:
        return fn()
    if ddp.master:
        res = fn()
        dist.barrier()
        return res
    dist.barrier()
    return fn()


def segmentation_loss(out: torch.Tensor, aux: torch.Tensor | None, target: torch.Tensor,
                      aux_weight: float) -> torch.Tensor:
    """main CE + aux_weight * aux CE, averaged over non-ignored pixels (0 when a crop is all ignore)."""
    n = (target != IGNORE).sum().clamp_min(1)
    loss = F.cross_entropy(out.float(), target, ignore_index=IGNORE, reduction="sum") / n
    if aux is not None:
        loss = loss + aux_weight * F.cross_entropy(aux.float(), target, ignore_index=IGNORE, reduction="sum") / n
    return loss


def rng_state() -> dict:
    st = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])],
        "python": random.getstate(),
    }


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    if st.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    n = st["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_checkpoint(path: Path, ck: dict) -> None:
    """Atomic: a reader (or a crash) sees the previous checkpoint or the whole new one."""
    buf = io.BytesIO()
    torch.save(ck, buf)
    atomic_write_bytes(path, buf.getvalue())


class _StopFlag:
    """SIGTERM/SIGINT -> stop at the next iteration boundary (the desktop app stops runs with SIGTERM)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


class RunLog:
    """Metrics stream: TrainingRun/MetricPoint/Job rows in the workspace DB and JSON lines on stdout."""

    def __init__(self, cfg: SegTrainConfig, master: bool) -> None:
        self.cfg, self.master = cfg, master
        self.ws = None
        self.run_id: int | None = None
        self.job_id: int | None = None
        self.pending: list[dict] = []
        self.notes: list[str] = []

    def open(self, workspace, config: dict, resume: bool) -> None:
        if not self.master or workspace is None:
            return
        from sqlalchemy import select

        from segbalance.db import models as m

        self.ws = workspace
        out = str(Path(self.cfg.out_dir).resolve())
        with workspace.session() as s, s.begin():
            row = None
            if resume:
                row = s.scalar(select(m.TrainingRun).where(m.TrainingRun.out_dir == out, m.TrainingRun.kind == "seg")
                               .order_by(m.TrainingRun.id.desc()))
            job = s.get(m.Job, row.job_id) if row is not None and row.job_id else None
            if job is None:
                job = m.Job(kind="train-seg", params=config, total=self.cfg.iters)
                s.add(job)
            job.status, job.pid, job.started_at = "running", os.getpid(), _now()
            job.cancel_requested, job.finished_at, job.message = 0, None, None
            s.flush()
            if row is None:
                row = m.TrainingRun(kind="seg", name=self.cfg.name or Path(out).name, out_dir=out, config=config)
                s.add(row)
            row.status, row.pid, row.job_id, row.finished_at, row.config = "running", os.getpid(), job.id, None, config
            s.flush()
            self.run_id, self.job_id = row.id, job.id

    def emit(self, event: str, **data: object) -> None:
        if self.master and self.cfg.stdout_json:
            print(json.dumps({"event": event, **data}, allow_nan=False, default=_json_default), flush=True)

    def note(self, text: str) -> None:
        """A human-readable line for the run's log (stdout JSON + JobLog)."""
        self.notes.append(text)
        self.emit("note", message=text)
        if self.master and self.ws is not None:
            from segbalance.db import models as m

            with self.ws.session() as s, s.begin():
                s.add(m.JobLog(job_id=self.job_id, text=text))

    def metric(self, iteration: int, name: str, value: float | None, extra: dict | None = None) -> None:
        self.pending.append({"iteration": iteration, "name": name, "value": value, "extra": extra})

    def flush(self, done: int, total: int, rate: float | None) -> None:
        """Write buffered metric points and job progress in one transaction."""
        if not self.master or self.ws is None:
            self.pending.clear()
            return
        from segbalance.db import models as m

        with self.ws.session() as s, s.begin():
            for p in self.pending:
                s.add(m.MetricPoint(run_id=self.run_id, **p))
            job = s.get(m.Job, self.job_id)
            job.done, job.total, job.heartbeat_at = done, total, _now()
            job.rate = rate
            job.eta_s = (total - done) / rate if rate else None
        self.pending.clear()

    def finish(self, status: str, result: dict | None, message: str | None = None) -> None:
        if not self.master or self.ws is None:
            return
        from segbalance.db import models as m

        with self.ws.session() as s, s.begin():
            row = s.get(m.TrainingRun, self.run_id)
            row.status, row.finished_at = status, _now()
            if result is not None:
                row.result = result
            job = s.get(m.Job, self.job_id)
            job.status, job.finished_at, job.message = {"done": "done"}.get(status, status), _now(), message
            if message:
                s.add(m.JobLog(job_id=self.job_id, level="error" if status == "failed" else "info", text=message))


def _now():
    from segbalance.db.base import utcnow

    return utcnow()


def _json_default(o: object) -> object:
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _clean(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# -- data ---------------------------------------------------------------------------------------------
def build_training_items(cfg: SegTrainConfig, ds: Dataset, workspace, log: RunLog):
    """(items, class_counts [N, C] or None, areas [N] or None) of the training split plus extras."""
    ls = ds.label_set
    items: list[tuple] = [(ds, r) for r in ds.samples(cfg.split)]
    extra_src = None
    is_pairs = bool(cfg.extra) and (cfg.extra == "pairs" or cfg.extra.startswith("pairs:"))
    if is_pairs:
        if workspace is None:
            raise SegbalanceError("--extra pairs needs --workspace (the pairs are rows of its database)")
        try:
            job_ids = [int(v) for v in cfg.extra[6:].split(",") if v.strip()] if ":" in cfg.extra else None
        except ValueError:
            raise SegbalanceError(f"bad --extra {cfg.extra!r}; use pairs, pairs:JOB_ID[,JOB_ID] or a folder") from None
        extra_src = sd.workspace_pairs(workspace, list(cfg.extra_status), ls, job_ids)
        if not extra_src.refs:
            raise SegbalanceError(f"--extra pairs: the workspace has no generated pairs with status "
                                  f"{','.join(cfg.extra_status)}", workspace.path)
    elif cfg.extra:
        extra_src = open_dataset(cfg.extra)
        sd.check_same_classes(ls, extra_src.label_set, extra_src.root)
        splits = extra_src.splits()
        extra_refs = extra_src.samples("train" if "train" in splits else None)
        items += [(extra_src, r) for r in extra_refs]
    if extra_src is not None and is_pairs:
        items += [(extra_src, r) for r in extra_src.refs]
    n_extra = len(items) - len(ds.samples(cfg.split))
    log.note(f"training on {len(items)} images ({n_extra} extra from {cfg.extra})" if cfg.extra
             else f"training on {len(items)} images of {ds.root.name}/{cfg.split}")
    counts = areas = None
    # pixel counts: needed by rare-class sampling; the extras are always scanned to check their ids
    scan_all = cfg.sampler == "rare-class"
    n_cls = ls.num_train_classes
    lut = ls.id_to_train_lut
    if scan_all or extra_src is not None:
        from segbalance.core.stats import dataset_stats, pixel_counts

        rows, ar = [], []
        if scan_all:
            st = dataset_stats(ds, cfg.split, workspace=workspace)
            by_id = {s.id: s for s in st.samples}
            for _, ref in items[: len(ds.samples(cfg.split))]:
                s = by_id[ref.id]
                rows.append(_train_counts(s.counts, lut, n_cls))
                ar.append(s.height * s.width)
        for src, ref in items[len(ds.samples(cfg.split)):]:
            lab = src.load_label(ref)  # checks ids against the label set
            if ref.image_path is not None and image_size(ref.image_path) != lab.shape:
                h, w = image_size(ref.image_path)
                raise DataError(f"image is {w}x{h} but its label map {Path(ref.label_path).name} is "
                                f"{lab.shape[1]}x{lab.shape[0]}", ref.image_path)
            rows.append(_train_counts(pixel_counts(lab), lut, n_cls))
            ar.append(lab.size)
        if scan_all:
            counts, areas = np.stack(rows), np.asarray(ar, dtype=np.float64)
    return items, counts, areas


def _train_counts(id_counts: np.ndarray, lut: np.ndarray, n: int) -> np.ndarray:
    keep = lut != IGNORE
    return np.bincount(lut[keep].astype(np.int64), weights=id_counts[keep], minlength=n)[:n].astype(np.int64)


# -- the run ------------------------------------------------------------------------------------------
def train_seg(config: SegTrainConfig, progress: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> dict:
    """Train (or resume) a PSPNet run; returns the final metrics dict (also TrainingRun.result, result.json)."""
    cfg = config
    out = Path(cfg.out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    resume_ck = None
    if cfg.resume:
        if not ckpt_path.is_file():
            raise SegbalanceError("nothing to resume: no checkpoint in the run folder", out)
        resume_ck = read_checkpoint(ckpt_path)
        saved = SegTrainConfig.from_dict(resume_ck["config"])
        runtime = {k: getattr(cfg, k) for k in SegTrainConfig.RUNTIME_FIELDS}
        cfg = SegTrainConfig.from_dict({**saved.to_dict(), **runtime})
    elif ckpt_path.exists():
        raise SegbalanceError("run folder already holds a checkpoint; pass --resume or choose another --out", out)

    dev = resolve_device(cfg.device)
    ddp = setup_ddp(dev.type)
    if ddp.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(dev)
    if cfg.batch % ddp.world:
        raise SegbalanceError(f"--batch {cfg.batch} is not divisible by the {ddp.world} DDP processes")
    if cfg.batch // ddp.world < 2:
        # the 1x1 pyramid-pooling branch has one value per channel and image: BatchNorm needs two images
        raise SegbalanceError(f"--batch {cfg.batch} gives {cfg.batch // ddp.world} image(s) per process; "
                              "BatchNorm training needs at least 2")
    amp = resolve_amp(cfg.amp, dev)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    # data
    ds = open_dataset(cfg.dataset)
    ls = ds.label_set
    if resume_ck is not None:
        sd.check_same_classes(sd.label_set_from_stored(resume_ck["label_set"]), ls, ds.root)
    workspace = None
    if cfg.workspace:
        from segbalance.core.workspace import Workspace

        workspace = in_rank_order(ddp, lambda: Workspace(cfg.workspace))
    log = RunLog(cfg, ddp.master)
    status, result, message = "failed", None, None
    # SIGTERM/SIGINT stop the run at the next iteration boundary (or interrupt the final evaluation)
    stop = _StopFlag().__enter__()

    def should_stop() -> bool:
        return stop.requested or bool(cancel and cancel())

    try:
        if ddp.master:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "config.json", cfg.to_dict())
        log.open(workspace, cfg.to_dict(), resume=resume_ck is not None)
        if ddp.master:
            ds.samples(cfg.val_split)  # a missing val split is an error now, not after training
        items, counts, areas = in_rank_order(ddp, lambda: build_training_items(cfg, ds, workspace, log))
        h0, w0 = sd.SegTrainSet(items, ls, cfg.crop).load(0)[1].shape
        if cfg.crop[0] > h0 or cfg.crop[1] > w0:
            log.note(f"crop {cfg.crop[0]}x{cfg.crop[1]} (HxW) is larger than the images ({h0}x{w0}): "
                     "crops are padded with ignore, as in the reference")
        start = int(resume_ck["iteration"]) if resume_ck is not None else 0
        trainset = sd.SegTrainSet(items, ls, cfg.crop, cfg.scale, cfg.augment)
        sampler = sd.StreamSampler(len(items), cfg.batch // ddp.world, cfg.iters, seed=cfg.seed, start_step=start,
                                   rank=ddp.rank, world=ddp.world, mode=cfg.sampler,
                                   class_counts=counts, areas=areas)
        loader = sd.make_loader(trainset, sampler, cfg.workers, pin_memory=dev.type == "cuda")

        # model
        if resume_ck is not None:
            mc = resume_ck["model_config"]
            model = PSPNet(PSPNetConfig(**{**mc, "bins": tuple(mc["bins"])}))
            model.load_state_dict(resume_ck["model"])
        else:
            deep = {"deep": True, "plain": False}.get(cfg.stem)
            if deep is None and cfg.pretrained:
                deep = weights_layout(cfg.pretrained) == "deep"
            model = PSPNet(PSPNetConfig(num_classes=ls.num_train_classes, backbone=cfg.backbone, deep_stem=deep))
        if resume_ck is not None:
            pass  # weights came with the checkpoint
        elif cfg.pretrained:
            info = load_backbone_weights(model, cfg.pretrained)
            stem = "deep 3x3 stem" if model.config.deep_stem else "plain 7x7 stem"
            log.note(f"backbone weights: {info['loaded']} tensors from {cfg.pretrained} ({stem})")
        else:
            log.note("no backbone weights given (--pretrained): training from scratch; expect a much lower "
                     "mIoU than ImageNet-initialised PSPNet")
        model.to(dev)
        if ddp.enabled and dev.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        raw = model
        if ddp.enabled:
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda"
                                                              else None)

        # optimizer and schedule
        head_ids = {id(p) for p in raw.head_parameters()}
        groups = [
            {"params": [p for p in raw.parameters() if id(p) not in head_ids], "lr": cfg.lr},
            {"params": raw.head_parameters(), "lr": cfg.lr * cfg.head_lr_mult},
        ]
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=cfg.iters, power=cfg.power)
        scaler = torch.amp.GradScaler(dev.type, enabled=amp == "fp16")
        last_metrics: dict | None = None
        if resume_ck is not None:
            optimizer.load_state_dict(resume_ck["optimizer"])
            scheduler.load_state_dict(resume_ck["scheduler"])
            if resume_ck.get("scaler"):
                scaler.load_state_dict(resume_ck["scaler"])
            set_rng_state(resume_ck["rng"])
            last_metrics = resume_ck.get("metrics")
            log.note(f"resumed at iteration {start} of {cfg.iters}")
        log.emit("start", run_id=log.run_id, iteration=start, iters=cfg.iters, device=str(dev), amp=amp,
                 world_size=ddp.world, backbone=cfg.backbone, images=len(items))

        def checkpoint(iteration: int) -> None:
            if not ddp.master:
                return
            save_checkpoint(ckpt_path, {
                "format": CHECKPOINT_FORMAT,
                "model": raw.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "rng": rng_state(),
                "iteration": iteration,
                "config": cfg.to_dict(),
                "model_config": raw.config.to_dict(),
                "label_set": ls.to_dict(),
                "metrics": last_metrics,
            })

        def validate(iteration: int, max_images: int | None) -> dict | None:
            if not ddp.master:
                return None
            res = evaluate(raw, ds, cfg.val_split, mode=cfg.eval_mode, crop=cfg.crop, device=dev, amp=amp,
                           label_set=ls, max_images=max_images,
                           cancel=None if ddp.enabled else should_stop)  # DDP ranks wait in a barrier
            res.pop("confusion", None)
            log.metric(iteration, "val_miou", res["miou"], {"per_class": res["per_class"],
                                                           "pixel_acc": res["pixel_acc"]})
            log.emit("val", iteration=iteration, miou=res["miou"], pixel_acc=res["pixel_acc"],
                     per_class=res["per_class"])
            return res

        ckpt_every = cfg.ckpt_interval or cfg.eval_interval or 100
        it = start
        good_iter = start
        loss_sum, loss_n, t_log = 0.0, 0, time.perf_counter()
        t_start = time.perf_counter()
        data_wait = compute_time = 0.0  # model step time vs everything else the loop does
        first_batch: float | None = None
        model.train()
        batches = iter(loader)
        while it < cfg.iters:
            want_stop = should_stop()
            if ddp.enabled:  # every rank must agree to stop, or the others hang in the next all-reduce
                flag = torch.tensor([float(want_stop)])
                dist.all_reduce(flag)
                want_stop = flag.item() > 0
            if want_stop:
                status = "stopped"
                break
            t0 = time.perf_counter()
            try:
                images, labels = next(batches)
            except SegbalanceError as exc:
                # a worker's error arrives with its traceback in the message: keep the user's one line
                raise type(exc)(str(exc).strip().splitlines()[-1].split(": ", 1)[-1]) from None
            data_wait += time.perf_counter() - t0
            if first_batch is None:
                first_batch = time.perf_counter() - t_start  # worker start-up + first decode
            t_c = time.perf_counter()
            x = sd.normalize(images.to(dev, non_blocking=True))
            y = labels.to(dev, non_blocking=True).long()
            # dropout masks depend on (seed, rank, iteration) only: exact resume under DDP too
            torch.manual_seed(cfg.seed * 1_000_003 + ddp.rank * 7919 + it)
            with autocast(dev, amp):
                outs = model(x)
            main, aux = outs if isinstance(outs, tuple) else (outs, None)
            loss = segmentation_loss(main, aux, y, cfg.aux_weight)
            loss_val = float(loss.detach())
            diverged = not math.isfinite(loss_val)
            if ddp.enabled:  # a NaN on one rank stops all of them
                flag = torch.tensor([float(diverged)])
                dist.all_reduce(flag)
                diverged = flag.item() > 0
            if diverged:
                message = (f"loss became {loss_val} at iteration {it + 1}; stopped. Last good checkpoint kept: "
                           f"{ckpt_path} (iteration {good_iter})" if good_iter > 0 or resume_ck is not None
                           else f"loss became {loss_val} at iteration {it + 1}; stopped (no checkpoint yet)")
                raise TrainingDiverged(message)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            compute_time += time.perf_counter() - t_c
            it += 1
            loss_sum += loss_val
            loss_n += 1
            if it % cfg.log_interval == 0 or it == cfg.iters:
                now = time.perf_counter()
                rate = loss_n * cfg.batch / max(now - t_log, 1e-9)
                lr = optimizer.param_groups[0]["lr"]
                log.metric(it, "loss", loss_sum / loss_n)
                log.metric(it, "lr", lr)
                log.emit("train", iteration=it, loss=loss_sum / loss_n, lr=lr, img_per_s=round(rate, 2))
                log.flush(it, cfg.iters, rate / cfg.batch)
                loss_sum, loss_n, t_log = 0.0, 0, now
            if cfg.eval_interval and it % cfg.eval_interval == 0 and it < cfg.iters:
                try:
                    last_metrics = validate(it, cfg.max_val_images) or last_metrics
                except Cancelled:  # stop requested mid-evaluation: the weights are still a clean state
                    status = "stopped"
                    break
                log.flush(it, cfg.iters, None)
                t_log = time.perf_counter()
            if it % ckpt_every == 0 and it < cfg.iters:
                checkpoint(it)
                good_iter = it
            if ddp.enabled and (cfg.eval_interval and it % cfg.eval_interval == 0):
                dist.barrier()
            if progress:
                progress(it, cfg.iters)
        del batches
        train_time = time.perf_counter() - t_start
        final = None
        if status != "stopped":
            checkpoint(it)
            try:
                final = validate(it, None)
            except Cancelled:
                status = "stopped"
        if status == "stopped":
            checkpoint(it)
            message = f"stopped at iteration {it} of {cfg.iters}; checkpoint kept: {ckpt_path}"
            log.note(message)
            result = {"status": "stopped", "iteration": it, "checkpoint": str(ckpt_path),
                      **({"miou": last_metrics.get("miou"), "per_class": last_metrics.get("per_class")}
                         if last_metrics else {})}
        else:
            if ddp.master:
                last_metrics = final
                checkpoint(it)
            done_imgs = (it - start) * cfg.batch
            result = {
                "status": "done",
                "iteration": it,
                **(final or {}),
                "checkpoint": str(ckpt_path),
                "train_time_s": round(train_time, 3),
                "img_per_s": round(done_imgs / max(train_time, 1e-9), 3),
                "data_wait_s": round(data_wait, 3),
                "step_time_s": round(compute_time, 3),
                "first_batch_s": round(first_batch or 0.0, 3),
                "world_size": ddp.world,
                "notes": log.notes,
            }
            status = "done"
        if ddp.master:
            atomic_write_json(out / "result.json", result)
        log.flush(it, cfg.iters, None)
        log.finish(status, result, message if status != "done" else None)
        log.emit(status, **{k: v for k, v in result.items() if k != "notes"})
        return result
    except BaseException as exc:
        if status != "stopped":
            msg = str(exc) if isinstance(exc, SegbalanceError) else f"{type(exc).__name__}: {exc}"
            try:
                log.pending.clear()
                log.finish("failed", None, msg)
                log.emit("failed", message=msg)
            except Exception as db_exc:  # noqa: BLE001 - never hide the original error behind a DB one
                print(f"warning: could not record the failure: {db_exc}", file=sys.stderr)
        raise
    finally:
        stop.__exit__()
        if workspace is not None:
            workspace.close()
        if ddp.enabled and dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["SegTrainConfig", "TrainingDiverged", "train_seg", "segmentation_loss", "DDPInfo", "setup_ddp"]
