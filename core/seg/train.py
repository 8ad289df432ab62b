"""PSPNet training, read top to bottom: config, data, model, optimizer, loop, checkpoint.

Recipe of the reference PSPNet: SGD momentum 0.9, weight decay 1e-4, base lr 0.01 with 10x on the
head (PPM, classifier, aux), poly decay power 0.9, loss = main + 0.4 aux (cross-entropy, ignore 255).
Device, precision, DDP, seeding, the checkpoint file and the run's DB rows come from the shared training
runtime (core.runs.runtime, core.runs.records). One checkpoint dict {model, optimizer, scheduler, scaler, rng,
iteration, config, ...} resumes exactly.

Before anything is allocated or written, the run is checked against the data and the machine: every label
map of the split is validated as `segbalance stats` does (cached in the workspace), the crop may not be far
larger than the images, and the activation memory of one training step (estimated by a forward pass on
the meta device, which allocates nothing) must fit in the memory available.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segbalance.core.datasets import Dataset, open_dataset
from segbalance.core.datasets.labels import IGNORE
from segbalance.core.errors import Cancelled, DataError, SegbalanceError
from segbalance.core.io import atomic_write_json, atomic_write_npy, image_size
from segbalance.core.jobs.pairs import EXPORTABLE_STATUSES, REVIEWED_EXPORT
from segbalance.core.ranks import Rank
from segbalance.core.runs.records import FAILED, NOISY_METRIC, RunEnd, RunFolder, RunRecord
from segbalance.core.runs.runtime import (
    Precision,
    any_rank,
    autocast,
    choose_precision,
    in_rank_order,
    load_state_checked,
    memory_format,
    resolve_device,
    rng_state,
    run_config,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    setup_ddp,
    teardown_ddp,
)
from segbalance.core.seg import data as sd
from segbalance.core.seg.evaluate import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    VAL_COUNTS_NAME,
    evaluate,
    read_checkpoint,
)
from segbalance.core.seg.model import BACKBONES, PSPNet, PSPNetConfig, load_backbone_weights, weights_layout
from segbalance.core.seg.noisy_pixels import NoisyPixelFilter

CROP_PAD_LIMIT = 2.0  # a crop side may be at most this many times the largest (scaled) image side


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
    extra_status: tuple[str, ...] = REVIEWED_EXPORT
    sampler: str = "uniform"  # uniform | rare-class
    noisy_factor: float = 0.0  # > 0: ignore generated pixels whose loss exceeds this x their class's real mean
    backbone: str = "resnet50"
    pretrained: str | None = None  # local ImageNet backbone weights
    output_stride: int = 8  # 8 (reference) or 16 (cheaper per step; objects under 16 px fade)
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
        if not (self.noisy_factor == 0 or self.noisy_factor > 0):
            raise SegbalanceError(f"--noisy-filter must be a factor > 0 (got {self.noisy_factor})")
        bad = set(self.extra_status) - set(EXPORTABLE_STATUSES)
        if bad:
            raise SegbalanceError(f"bad --extra-status {','.join(sorted(bad))}; use {', '.join(EXPORTABLE_STATUSES)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crop"], d["scale"], d["extra_status"] = list(self.crop), list(self.scale), list(self.extra_status)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SegTrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


# -- small named helpers --------------------------------------------------------------------------
def _ignored_point(filt: NoisyPixelFilter, class_names: list[str]) -> tuple[float | None, dict]:
    """(overall ignored fraction, {"per_class": {name: fraction}}) of the generated pixels since the run began."""
    seen, ignored = int(filt.total_seen.sum()), int(filt.total_ignored.sum())
    per_class = {class_names[c]: round(v, 6) for c, v in filt.total_fractions().items()}
    return (ignored / seen if seen else None), {"per_class": per_class}


def segmentation_loss(out: torch.Tensor, aux: torch.Tensor | None, target: torch.Tensor,
                      aux_weight: float) -> torch.Tensor:
    """main CE + aux_weight * aux CE, averaged over non-ignored pixels (0 when a crop is all ignore)."""
    n = (target != IGNORE).sum().clamp_min(1)
    loss = F.cross_entropy(out.float(), target, ignore_index=IGNORE, reduction="sum") / n
    if aux is not None:
        loss = loss + aux_weight * F.cross_entropy(aux.float(), target, ignore_index=IGNORE, reduction="sum") / n
    return loss


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


def _emitter(cfg: SegTrainConfig, master: bool) -> Callable[..., None]:
    """JSON lines on stdout (what the desktop app and scripts read), rank 0 only."""
    def emit(event: str, **data: object) -> None:
        if master and cfg.stdout_json:
            print(json.dumps({"event": event, **data}, allow_nan=False, default=_json_default), flush=True)
    return emit


def _json_default(o: object) -> object:
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _user_line(exc: SegbalanceError) -> SegbalanceError:
    """A data worker's error arrives with the worker's traceback in its message: keep the user's one line
    (file name included); an error raised in this process (--workers 0) is already that line."""
    text = str(exc)
    if "Traceback" not in text:
        return exc
    last = text.strip().splitlines()[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
    return type(exc)(last[len(prefix):] if last.startswith(prefix) else last)


def _available_memory(dev: torch.device) -> int | None:
    """Bytes the run may use on its device: free GPU memory, or the OS's MemAvailable; None if unknown."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def step_memory(model_cfg: PSPNetConfig, crop: tuple[int, int], batch: int, amp: str) -> int:
    """Bytes of activations one training step keeps for backward: every layer output of a forward pass on
    the meta device (shapes only; nothing is allocated). A lower bound of the real peak."""
    with torch.device("meta"):
        model = PSPNet(model_cfg)
    model.train()
    total = 0

    def hook(_mod: torch.nn.Module, _inp: object, out: object) -> None:
        nonlocal total
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                total += o.numel() * (2 if amp in ("bf16", "fp16") and o.is_floating_point() else o.element_size())

    hooks = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.empty(batch, 3, *crop, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total


def check_fits(cfg: SegTrainConfig, model_cfg: PSPNetConfig, image_hw: tuple[int, int], per_process: int,
               dev: torch.device, amp: str) -> None:
    """Refuse, before allocating, a crop far larger than the images or a step that cannot fit in memory."""
    h, w = image_hw
    smax = max(cfg.scale)
    lim_h, lim_w = int(CROP_PAD_LIMIT * math.ceil(h * smax)), int(CROP_PAD_LIMIT * math.ceil(w * smax))
    if cfg.crop[0] > lim_h or cfg.crop[1] > lim_w:
        raise SegbalanceError(
            f"--crop {cfg.crop[0]}x{cfg.crop[1]} is far larger than the images (at most {h}x{w}, HxW; x{smax:g} "
            f"after scale augmentation): most of every crop would be padding; use a crop up to {lim_h}x{lim_w}")
    need = step_memory(model_cfg, cfg.crop, per_process, amp)
    have = _available_memory(dev)
    if have is not None and need > have:
        where = f"free on {dev}" if dev.type == "cuda" else "of available memory"
        raise SegbalanceError(
            f"--crop {cfg.crop[0]}x{cfg.crop[1]} with {per_process} image(s) per step needs at least "
            f"{need / 2**30:.1f} GiB of activations, more than the {have / 2**30:.1f} GiB {where}; "
            "use a smaller --crop or --batch")


# -- data ---------------------------------------------------------------------------------------------
def build_training_items(cfg: SegTrainConfig, ds: Dataset, workspace, note: Callable[[str], None]):
    """(items, class_counts [N, C], areas [N], largest image (h, w)) of the training split plus extras.

    Every label map is checked as `segbalance stats` checks it (ids in the label set, image of the same
    size): the split through the stats scan (cached in the workspace), the extras one by one."""
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
    note(f"training on {len(items)} images ({n_extra} extra from {cfg.extra})" if cfg.extra
             else f"training on {len(items)} images of {ds.root.name}/{cfg.split}")
    n_cls = ls.num_train_classes
    lut = ls.id_to_train_lut
    from segbalance.core.datasets.stats import dataset_stats, pixel_counts

    rows, ar, sizes = [], [], []
    st = dataset_stats(ds, cfg.split, workspace=workspace)
    by_id = {s.id: s for s in st.samples}
    for _, ref in items[: len(ds.samples(cfg.split))]:
        s = by_id[ref.id]
        rows.append(_train_counts(s.counts, lut, n_cls))
        ar.append(s.height * s.width)
        sizes.append((s.height, s.width))
    for src, ref in items[len(ds.samples(cfg.split)):]:
        lab = src.load_label(ref)  # checks ids against the label set
        if ref.image_path is not None and image_size(ref.image_path) != lab.shape:
            h, w = image_size(ref.image_path)
            raise DataError(f"image is {w}x{h} but its label map {Path(ref.label_path).name} is "
                            f"{lab.shape[1]}x{lab.shape[0]}", ref.image_path)
        rows.append(_train_counts(pixel_counts(lab), lut, n_cls))
        ar.append(lab.size)
        sizes.append(lab.shape)
    largest = (max(h for h, _ in sizes), max(w for _, w in sizes))
    return items, np.stack(rows), np.asarray(ar, dtype=np.float64), largest


def _train_counts(id_counts: np.ndarray, lut: np.ndarray, n: int) -> np.ndarray:
    keep = lut != IGNORE
    return np.bincount(lut[keep].astype(np.int64), weights=id_counts[keep], minlength=n)[:n].astype(np.int64)


# -- the run ------------------------------------------------------------------------------------------
def _resumed_config(cfg: SegTrainConfig, ckpt_path: Path) -> tuple[SegTrainConfig, dict | None]:
    """The run's own recipe from its checkpoint (runtime fields from this call), or (cfg, None) when new."""
    if not cfg.resume:
        if ckpt_path.exists():
            raise SegbalanceError("run folder already holds a checkpoint; pass --resume or choose another --out",
                                  ckpt_path.parent)
        return cfg, None
    if not ckpt_path.is_file():
        raise SegbalanceError("nothing to resume: no checkpoint in the run folder", ckpt_path.parent)
    ck = read_checkpoint(ckpt_path)
    saved = SegTrainConfig.from_dict(ck["config"])
    runtime = {k: getattr(cfg, k) for k in SegTrainConfig.RUNTIME_FIELDS}
    return SegTrainConfig.from_dict({**saved.to_dict(), **runtime}), ck


def _model_config(cfg: SegTrainConfig, num_classes: int, resume_ck: dict | None) -> PSPNetConfig:
    if resume_ck is not None:
        mc = resume_ck["model_config"]
        return PSPNetConfig(**{**mc, "bins": tuple(mc["bins"])})
    deep = {"deep": True, "plain": False}.get(cfg.stem)
    if deep is None and cfg.pretrained:
        deep = weights_layout(cfg.pretrained) == "deep"
    return PSPNetConfig(num_classes=num_classes, backbone=cfg.backbone, deep_stem=deep,
                        output_stride=cfg.output_stride)


def _optimizer(raw: PSPNet, cfg: SegTrainConfig) -> torch.optim.SGD:
    """SGD with the head (PPM, classifier, aux) at head_lr_mult x the base lr, as the reference."""
    head_ids = {id(p) for p in raw.head_parameters()}
    groups = [
        {"params": [p for p in raw.parameters() if id(p) not in head_ids], "lr": cfg.lr},
        {"params": raw.head_parameters(), "lr": cfg.lr * cfg.head_lr_mult},
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train_seg(config: SegTrainConfig, progress: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> dict:
    """Train (or resume) a PSPNet run; returns the final metrics dict (also TrainingRun.result, result.json).

    Ends "done", or "cancelled" (SIGTERM/SIGINT, `cancel()`, or the job row's cancel flag) with a checkpoint
    kept; any error marks the run "failed" and re-raises."""
    out = Path(config.out_dir)
    ckpt_path = out / CHECKPOINT_NAME

    # config, device, precision, processes
    dev = resolve_device(config.device)
    ddp, dev = setup_ddp(dev)
    folder = RunFolder(out, CHECKPOINT_NAME, "train-seg") if ddp.master else None
    workspace = None
    try:
        if folder is not None:
            folder.acquire()  # one live run per folder; before the checkpoint check so a racing twin waits
        cfg, resume_ck = _resumed_config(config, ckpt_path)
        if cfg.batch % ddp.world:
            raise SegbalanceError(f"--batch {cfg.batch} is not divisible by the {ddp.world} DDP processes")
        per_process = cfg.batch // ddp.world
        if per_process < 2:
            # the 1x1 pyramid-pooling branch has one value per channel and image: BatchNorm needs two images
            raise SegbalanceError(f"--batch {cfg.batch} gives {per_process} image(s) per process; "
                                  "BatchNorm training needs at least 2")
        precision = choose_precision(cfg.amp, dev)  # the runtime's one policy; logged and kept in the run row
        amp = precision.amp
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)

        # data: validated like `stats`, sized against the crop and the machine before anything is allocated
        ds = open_dataset(cfg.dataset)
        ls = ds.label_set
        if resume_ck is not None:
            sd.check_same_classes(sd.label_set_from_stored(resume_ck["label_set"]), ls, ds.root)
        if cfg.workspace:
            from segbalance.core.workspace import Workspace

            workspace = in_rank_order(ddp, lambda: Workspace(cfg.workspace))
        notes: list[str] = [precision.line()]
        if ddp.master:
            ds.samples(cfg.val_split)  # a missing val split is an error now, not after training
        items, counts, areas, largest = in_rank_order(
            ddp, lambda: build_training_items(cfg, ds, workspace, notes.append))
        model_cfg = _model_config(cfg, ls.num_train_classes, resume_ck)
        check_fits(cfg, model_cfg, largest, per_process, dev, amp)
        if cfg.crop[0] > largest[0] or cfg.crop[1] > largest[1]:
            notes.append(f"crop {cfg.crop[0]}x{cfg.crop[1]} (HxW) is larger than the images ({largest[0]}x"
                         f"{largest[1]}): crops are padded with ignore, as in the reference")
        result = _run(cfg, resume_ck, ds, items, counts, areas, model_cfg, dev, amp, ddp, workspace, notes,
                      progress, cancel, precision)
    except BaseException:
        if folder is not None:
            folder.release(failed=True)
            folder = None
        raise
    finally:
        if folder is not None:
            folder.release(failed=False)
        if workspace is not None:
            workspace.close()
        teardown_ddp(ddp)
    return result


def _run(cfg: SegTrainConfig, resume_ck: dict | None, ds: Dataset, items: list, counts: np.ndarray,
         areas: np.ndarray, model_cfg: PSPNetConfig, dev: torch.device, amp: str, ddp: Rank, workspace,
         notes: list[str], progress: Callable[[int, int], None] | None,
         cancel: Callable[[], bool] | None, precision: Precision | None = None) -> dict:
    """The training script proper, in its phases: build, restore, loop, finish."""
    run = _SegRun(cfg, resume_ck, ds, items, model_cfg, dev, amp, ddp, workspace, precision)
    if ddp.master:
        atomic_write_json(run.out / "config.json", cfg.to_dict())
    with _StopFlag() as stop:  # SIGTERM/SIGINT stop at the next iteration boundary
        run.stop_requested = lambda: stop.requested or bool(cancel and cancel()) or run.log.cancel_requested()
        end = RunEnd()
        try:
            with run.log.lifetime(end):
                for text in notes:
                    run.log.note(text)
                run.build(counts, areas)
                run.restore()
                status = run.loop(progress)
                run.finish(status, end)
        except BaseException:
            if end.status == FAILED:
                run.emit("failed", message=end.message)
            raise
        finally:
            run.close_loader()
    run.emit(end.status, **{k: v for k, v in end.result.items() if k != "notes"})
    return end.result


class _SegRun:
    """One training run's state, filled phase by phase (the phases share the model, optimizer and loader)."""

    def __init__(self, cfg: SegTrainConfig, resume_ck: dict | None, ds: Dataset, items: list,
                 model_cfg: PSPNetConfig, dev: torch.device, amp: str, ddp: Rank, workspace,
                 precision: Precision | None) -> None:
        self.cfg, self.resume_ck, self.ds, self.items = cfg, resume_ck, ds, items
        self.model_cfg, self.dev, self.amp, self.ddp = model_cfg, dev, amp, ddp
        self.out = Path(cfg.out_dir)
        self.ckpt_path = self.out / CHECKPOINT_NAME
        self.ls = ds.label_set
        self.class_names = sd.train_class_names(self.ls)
        self.start = int(resume_ck["iteration"]) if resume_ck is not None else 0
        self.emit = _emitter(cfg, ddp.master)
        self.log = RunRecord(workspace, "seg", self.out, name=cfg.name or self.out.resolve().name,
                             config=run_config(cfg, precision), total=cfg.iters,
                             master=ddp.master and workspace is not None,
                             resume_from=self.start if resume_ck is not None else None,
                             echo=lambda text: self.emit("note", message=text))
        self.stop_requested: Callable[[], bool] = lambda: False
        self.batches = None
        self.last_metrics: dict | None = None
        self.it = self.good_iter = self.start
        self.stats = {"train_time": 0.0, "data_wait": 0.0, "compute_time": 0.0, "first_batch": None}

    # -- build: data, model, optimizer --------------------------------------------------------------
    def build(self, counts: np.ndarray, areas: np.ndarray) -> None:
        cfg, ddp, dev, ls, items = self.cfg, self.ddp, self.dev, self.ls, self.items
        trainset = sd.SegTrainSet(items, ls, cfg.crop, cfg.scale, cfg.augment, n_real=len(self.ds.samples(cfg.split)))
        self.filt = NoisyPixelFilter(ls.num_train_classes, cfg.noisy_factor) if cfg.noisy_factor > 0 else None
        if self.filt is not None and trainset.n_real == len(items):
            self.log.note("--noisy-filter: no generated pairs in this run, so no pixel is ignored")
        sampler = sd.StreamSampler(len(items), cfg.batch // ddp.world, cfg.iters, seed=cfg.seed,
                                   start_step=self.start, rank=ddp.rank, world=ddp.world, mode=cfg.sampler,
                                   class_counts=counts, areas=areas)
        self.loader = sd.make_loader(trainset, sampler, cfg.workers, pin_memory=dev.type == "cuda")

        model = PSPNet(self.model_cfg)
        if self.resume_ck is not None:
            load_state_checked(model, self.resume_ck["model"], self.ckpt_path,
                               f"PSPNet {self.model_cfg.backbone} with {self.model_cfg.num_classes} classes in "
                               "its config")
        elif cfg.pretrained:
            info = load_backbone_weights(model, cfg.pretrained)
            stem = "deep 3x3 stem" if model.config.deep_stem else "plain 7x7 stem"
            self.log.note(f"backbone weights: {info['loaded']} tensors from {cfg.pretrained} ({stem})")
        else:
            self.log.note("no backbone weights given (--pretrained): training from scratch; expect a much lower "
                          "mIoU than ImageNet-initialised PSPNet")
        model.to(dev, memory_format=memory_format(self.amp))
        if ddp.enabled and dev.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.raw = model
        if ddp.enabled:
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda"
                                                              else None)
        self.model = model

        self.optimizer = _optimizer(self.raw, cfg)
        self.scheduler = torch.optim.lr_scheduler.PolynomialLR(self.optimizer, total_iters=cfg.iters,
                                                               power=cfg.power)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.amp == "fp16")

    # -- restore: the checkpoint of a resumed run ---------------------------------------------------
    def restore(self) -> None:
        ck = self.resume_ck
        if ck is not None:
            self.optimizer.load_state_dict(ck["optimizer"])
            self.scheduler.load_state_dict(ck["scheduler"])
            if ck.get("scaler"):
                self.scaler.load_state_dict(ck["scaler"])
            set_rng_state(ck["rng"])
            self.last_metrics = ck.get("metrics")
            if self.filt is not None and ck.get("noisy_filter"):
                self.filt.load_state_dict(ck["noisy_filter"])
            self.log.note(f"resumed at iteration {self.start} of {self.cfg.iters}")
        self.emit("start", run_id=self.log.run_id, iteration=self.start, iters=self.cfg.iters, device=str(self.dev),
                  amp=self.amp, world_size=self.ddp.world, backbone=self.cfg.backbone, images=len(self.items))

    def checkpoint(self, iteration: int) -> None:
        if self.ddp.master:
            save_checkpoint(self.ckpt_path, {
                "format": CHECKPOINT_FORMAT, "model": self.raw.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None, "rng": rng_state(),
                "iteration": iteration, "config": self.cfg.to_dict(), "model_config": self.raw.config.to_dict(),
                "label_set": self.ls.to_dict(), "metrics": self.last_metrics,
                "noisy_filter": self.filt.state_dict() if self.filt is not None else None,
            })

    def validate(self, iteration: int, max_images: int | None) -> dict | None:
        if not self.ddp.master:
            return None
        cfg = self.cfg
        final_pass = max_images is None
        res = evaluate(self.raw, self.ds, cfg.val_split, mode=cfg.eval_mode, crop=cfg.crop, device=self.dev,
                       amp=self.amp, label_set=self.ls, max_images=max_images, per_image=final_pass,
                       cancel=None if self.ddp.enabled else self.stop_requested)  # DDP ranks wait in a barrier
        res.pop("confusion", None)
        if final_pass:  # what a bootstrap over val images resamples, so no second pass is needed
            atomic_write_npy(self.out / VAL_COUNTS_NAME, res.pop("image_counts"))
        self.log.metric(iteration, "val_miou", res["miou"], {"per_class": res["per_class"],
                                                            "pixel_acc": res["pixel_acc"]})
        self.emit("val", iteration=iteration, miou=res["miou"], pixel_acc=res["pixel_acc"],
                  per_class=res["per_class"])
        return res

    # -- loop: "done" when every iteration ran, "cancelled" when a stop was asked for ---------------------
    def loop(self, progress: Callable[[int, int], None] | None) -> str:
        cfg, ddp, dev, model, amp, filt = self.cfg, self.ddp, self.dev, self.model, self.amp, self.filt
        ckpt_every = cfg.ckpt_interval or cfg.eval_interval or 100
        it = self.start
        loss_sum, loss_n, t_log = 0.0, 0, time.perf_counter()
        t_start = time.perf_counter()
        data_wait = compute_time = 0.0  # model step time vs everything else the loop does
        first_batch: float | None = None
        status = "done"
        model.train()
        self.batches = iter(self.loader)
        while it < cfg.iters:
            if any_rank(ddp, self.stop_requested()):
                status = "cancelled"
                break
            t0 = time.perf_counter()
            try:
                images, labels, real = next(self.batches)
            except SegbalanceError as exc:
                raise _user_line(exc) from None
            data_wait += time.perf_counter() - t0
            if first_batch is None:
                first_batch = time.perf_counter() - t_start  # worker start-up + first decode
            t_c = time.perf_counter()
            x = sd.normalize(images.to(dev, non_blocking=True)).contiguous(memory_format=memory_format(amp))
            y = labels.to(dev, non_blocking=True).long()
            # dropout masks depend on (seed, rank, iteration) only: exact resume under DDP too
            torch.manual_seed(cfg.seed * 1_000_003 + ddp.rank * 7919 + it)
            with autocast(dev, amp):
                outs = model(x)
            main, aux = outs if isinstance(outs, tuple) else (outs, None)
            if filt is not None:  # judge generated pixels by the main head's loss, before the step
                with torch.no_grad():
                    pixel_loss = F.cross_entropy(main.float(), y, ignore_index=IGNORE, reduction="none")
                y = filt.apply(pixel_loss, y, real.to(dev))
            loss = segmentation_loss(main, aux, y, cfg.aux_weight)
            loss_val = float(loss.detach())
            if any_rank(ddp, not math.isfinite(loss_val)):  # a NaN on one rank stops all of them
                raise TrainingDiverged(
                    f"loss became {loss_val} at iteration {it + 1}; stopped. Last good checkpoint kept: "
                    f"{self.ckpt_path} (iteration {self.good_iter})"
                    if self.good_iter > 0 or self.resume_ck is not None
                    else f"loss became {loss_val} at iteration {it + 1}; stopped (no checkpoint yet)")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            compute_time += time.perf_counter() - t_c
            it += 1
            self.it = it
            loss_sum += loss_val
            loss_n += 1
            if it % cfg.log_interval == 0 or it == cfg.iters:
                now = time.perf_counter()
                rate = loss_n * cfg.batch / max(now - t_log, 1e-9)
                lr = self.optimizer.param_groups[0]["lr"]
                self.log.metric(it, "loss", loss_sum / loss_n)
                self.log.metric(it, "lr", lr)
                if filt is not None:
                    self.log.metric(it, NOISY_METRIC, *_ignored_point(filt, self.class_names))
                self.emit("train", iteration=it, loss=loss_sum / loss_n, lr=lr, img_per_s=round(rate, 2))
                self.log.flush(it, rate / cfg.batch)
                loss_sum, loss_n, t_log = 0.0, 0, now
            if cfg.eval_interval and it % cfg.eval_interval == 0 and it < cfg.iters:
                try:
                    self.last_metrics = self.validate(it, cfg.max_val_images) or self.last_metrics
                except Cancelled:  # stop requested mid-evaluation: the weights are still a clean state
                    status = "cancelled"
                    break
                self.log.flush(it)
                t_log = time.perf_counter()
            if it % ckpt_every == 0 and it < cfg.iters:
                self.checkpoint(it)
                self.good_iter = it
            if ddp.enabled and (cfg.eval_interval and it % cfg.eval_interval == 0):
                torch.distributed.barrier()
            if progress:
                progress(it, cfg.iters)
        self.close_loader()
        self.stats = {"train_time": time.perf_counter() - t_start, "data_wait": data_wait,
                      "compute_time": compute_time, "first_batch": first_batch}
        return status

    # -- finish: final evaluation, checkpoint, result -----------------------------------------------
    def finish(self, status: str, end: RunEnd) -> None:
        cfg, it, ddp = self.cfg, self.it, self.ddp
        final = None
        if status != "cancelled":
            self.checkpoint(it)
            try:
                final = self.validate(it, None)
            except Cancelled:
                status = "cancelled"
        if status == "cancelled":
            self.checkpoint(it)
            message = f"stopped at iteration {it} of {cfg.iters}; checkpoint kept: {self.ckpt_path}"
            self.log.note(message)
            lm = self.last_metrics
            result = {"status": "cancelled", "iteration": it, "checkpoint": str(self.ckpt_path),
                      **({"miou": lm.get("miou"), "per_class": lm.get("per_class")} if lm else {})}
        else:
            message = None
            if ddp.master:
                self.last_metrics = final
                self.checkpoint(it)
            st = self.stats
            result = {
                "status": "done", "iteration": it, **(final or {}), "checkpoint": str(self.ckpt_path),
                "train_time_s": round(st["train_time"], 3),
                "img_per_s": round((it - self.start) * cfg.batch / max(st["train_time"], 1e-9), 3),
                "data_wait_s": round(st["data_wait"], 3), "step_time_s": round(st["compute_time"], 3),
                "first_batch_s": round(st["first_batch"] or 0.0, 3), "world_size": ddp.world,
                "notes": self.log.notes,
            }
            if self.filt is not None:
                overall, extra = _ignored_point(self.filt, self.class_names)
                result["noisy_filter"] = {"factor": cfg.noisy_factor, "ignored": overall, **extra}
        if ddp.master:
            atomic_write_json(self.out / "result.json", result)
        self.log.flush(it)
        end.status, end.result, end.message = status, result, message

    def close_loader(self) -> None:
        """Stop the data workers now: an error's traceback keeps the iterator alive until exit, where
        multiprocessing would wait for the workers to be joined."""
        shutdown = getattr(self.batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self.batches = None


__all__ = ["SegTrainConfig", "TrainingDiverged", "train_seg", "segmentation_loss", "setup_ddp",
           "step_memory", "check_fits"]
