"""Training data for PSPNet: sources (dataset splits, generated pairs), augmentation, samplers, loader.

Every random choice of the pipeline derives from (seed, sample position in the stream), never from a
worker's RNG, so the batches are the same for any number of worker processes, across DDP ranks they
never overlap, and resuming at iteration k replays exactly the batches a straight run would have seen.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from segbalance.core.datasets import Dataset, SampleRef
from segbalance.core.datasets.labels import IGNORE, LabelSet
from segbalance.core.errors import DataError
from segbalance.core.io import read_label_png, read_png

MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

# Rare Class Sampling (DAFormer, Hoyer et al. 2022): temperature and min pixels at 1024x512
RCS_TEMPERATURE = 0.01
RCS_MIN_PIXELS = 3000
RCS_REF_AREA = 1024 * 512


# -- sources ---------------------------------------------------------------------------------------
class PairSet:
    """Generated pairs (label-id PNG + RGB PNG) read like a dataset split, in a given label set."""

    format = "pairs"

    def __init__(self, refs: list[SampleRef], label_set: LabelSet, root: Path) -> None:
        self.refs = refs
        self.label_set = label_set
        self.root = root

    def samples(self, split: str | None = None) -> list[SampleRef]:
        return list(self.refs)

    def load_image(self, s: SampleRef) -> np.ndarray:
        return read_png(s.image_path, color=True)

    def load_label(self, s: SampleRef, *, check: bool = True) -> np.ndarray:
        lab = read_label_png(s.label_path)
        if lab.dtype != np.uint8:
            lab = lab.astype(np.uint8)
        if check:
            bad = np.setdiff1d(np.unique(lab), self.label_set.valid_ids)
            if bad.size:
                raise DataError(f"label ids {bad[:8].tolist()} are not in label set {self.label_set.name!r}",
                                s.label_path)
        return lab


def workspace_pairs(workspace, statuses: list[str], label_set: LabelSet, job_ids: list[int] | None = None) -> PairSet:
    """Generated pairs of the workspace DB with one of `statuses` (of the given generation jobs, if any),
    checked to exist and to fit `label_set`."""
    from sqlalchemy import select

    from segbalance.db import models as m

    q = (
        select(m.GeneratedPair, m.Job.params)
        .outerjoin(m.Job, m.Job.id == m.GeneratedPair.job_id)
        .where(m.GeneratedPair.status.in_(statuses))
        # writer threads commit rows in any order: recipe order keeps training reproducible
        .order_by(m.GeneratedPair.job_id, m.GeneratedPair.recipe_index)
    )
    if job_ids:
        q = q.where(m.GeneratedPair.job_id.in_(job_ids))
    with workspace.session() as s:
        rows = s.execute(q).all()
    refs = []
    for pair, params in rows:
        ls_info = (params or {}).get("label_set") if isinstance(params, dict) else None
        if isinstance(ls_info, dict):
            check_same_classes(label_set, _label_set_from(ls_info), f"generated pair #{pair.id}")
        img, lab = workspace.abs(pair.image_path), workspace.abs(pair.label_path)
        for p in (img, lab):
            if not p.is_file():
                raise DataError(f"file of generated pair #{pair.id} is missing", p)
        refs.append(SampleRef(id=f"pair{pair.id}", split="extra", image_path=img, label_path=lab))
    return PairSet(refs, label_set, workspace.path)


def _label_set_from(d: dict) -> LabelSet:
    return label_set_from_stored(d)


def label_set_from_stored(d: dict) -> LabelSet:
    """Rebuild a label set saved with to_dict() (checkpoints, job params).

    A built-in set (Cityscapes) comes back as itself when its classes are unchanged; classes with ids
    outside 0..255 (Cityscapes' "license plate", id -1) cannot appear in a label map and are dropped
    before LabelSet.from_dict, which refuses them.
    """
    from segbalance.core.datasets.labels import BUILTIN, LabelSet

    if not isinstance(d, dict):
        raise DataError("stored label set is not an object")
    builtin = BUILTIN.get(d.get("name"))
    if builtin is not None and ("classes" not in d or builtin.to_dict() == d):
        return builtin
    classes = [c for c in d.get("classes", []) if isinstance(c, dict) and 0 <= int(c.get("id", -1)) <= 255]
    return LabelSet.from_dict({**d, "classes": classes})


def train_class_names(ls: LabelSet) -> list[str]:
    return [c.name for c in ls.train_classes]


def check_same_classes(want: LabelSet, have: LabelSet, what: str | Path) -> None:
    """Raise a one-line DataError when two label sets train different classes (ids or names)."""
    a = [(c.train_id, c.name) for c in want.train_classes]
    b = [(c.train_id, c.name) for c in have.train_classes]
    if a != b:
        raise DataError(
            f"label set {have.name!r} ({len(b)} train classes) does not match {want.name!r} ({len(a)} train classes)",
            what,
        )


# -- augmentation ----------------------------------------------------------------------------------
@dataclass
class AugmentContext:
    """What an augmentation may use: crop size, scale range, its RNG, and a class the crop should show."""

    crop: tuple[int, int]  # (h, w)
    scale: tuple[float, float]
    rng: np.random.Generator
    focus_class: int = -1  # rare-class sampling: train id the crop should contain (-1: any)
    focus_pixels: int = 0
    other_image: Callable[[], np.ndarray] | None = None  # a random other training image (style augmentations)


Augment = Callable[[np.ndarray, np.ndarray, AugmentContext], tuple[np.ndarray, np.ndarray]]
AUGMENTATIONS: dict[str, Augment] = {}


def register_augmentation(name: str) -> Callable[[Augment], Augment]:
    """Decorator: make an augmentation selectable by `SegTrainConfig.augment` (e.g. "strong", "style")."""

    def deco(fn: Augment) -> Augment:
        AUGMENTATIONS[name] = fn
        return fn

    return deco


def random_scale(img: np.ndarray, lab: np.ndarray, ctx: AugmentContext) -> tuple[np.ndarray, np.ndarray]:
    s = float(ctx.rng.uniform(*ctx.scale))
    h, w = lab.shape
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    lab = cv2.resize(lab, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return img, lab


def pad_to(img: np.ndarray, lab: np.ndarray, crop: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to at least the crop size: image with the mean colour, label with ignore."""
    h, w = lab.shape
    ph, pw = max(0, crop[0] - h), max(0, crop[1] - w)
    if ph or pw:
        img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=[round(v) for v in MEAN])
        lab = cv2.copyMakeBorder(lab, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE)
    return img, lab


def random_crop(img: np.ndarray, lab: np.ndarray, ctx: AugmentContext) -> tuple[np.ndarray, np.ndarray]:
    img, lab = pad_to(img, lab, ctx.crop)
    h, w = lab.shape
    ch, cw = ctx.crop
    # rare-class sampling re-draws the crop (up to 10 times) until it shows the sampled class
    tries = 10 if ctx.focus_class >= 0 else 1
    for _ in range(tries):
        y = int(ctx.rng.integers(0, h - ch + 1))
        x = int(ctx.rng.integers(0, w - cw + 1))
        if tries == 1 or int((lab[y : y + ch, x : x + cw] == ctx.focus_class).sum()) >= ctx.focus_pixels:
            break
    return img[y : y + ch, x : x + cw], lab[y : y + ch, x : x + cw]


def random_flip(img: np.ndarray, lab: np.ndarray, ctx: AugmentContext) -> tuple[np.ndarray, np.ndarray]:
    if ctx.rng.random() < 0.5:
        return img[:, ::-1], lab[:, ::-1]
    return img, lab


@register_augmentation("standard")
def standard_augment(img: np.ndarray, lab: np.ndarray, ctx: AugmentContext) -> tuple[np.ndarray, np.ndarray]:
    """The reference PSPNet recipe: random scale, pad + random crop, horizontal flip."""
    img, lab = random_scale(img, lab, ctx)
    img, lab = random_crop(img, lab, ctx)
    return random_flip(img, lab, ctx)


def photometric_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter (each with probability 0.8), then maybe a blur."""
    out = img.astype(np.float32)
    if rng.random() < 0.8:
        out = out * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)  # contrast-ish gain, brightness offset
    if rng.random() < 0.8:
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * rng.uniform(0.6, 1.4)  # saturation
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(rng.integers(-9, 10))) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (5, 5), float(rng.uniform(0.1, 1.5)))
    return out


def random_rotate(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator,
                  max_deg: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by up to +-max_deg; uncovered corners become the mean colour / ignore."""
    h, w = lab.shape
    mat = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-max_deg, max_deg)), 1.0)
    img = cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=[round(v) for v in MEAN])
    lab = cv2.warpAffine(lab, mat, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=IGNORE)
    return img, lab


def color_transfer(img: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer: match per-channel mean/std in CIE Lab to a style image."""
    src = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(style, cv2.COLOR_RGB2LAB).astype(np.float32)
    s_mean, s_std = src.reshape(-1, 3).mean(0), src.reshape(-1, 3).std(0) + 1e-6
    r_mean, r_std = ref.reshape(-1, 3).mean(0), ref.reshape(-1, 3).std(0) + 1e-6
    out = (src - s_mean) * (r_std / s_std) + r_mean
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


@register_augmentation("strong")
def strong_augment(img: np.ndarray, lab: np.ndarray, ctx: AugmentContext) -> tuple[np.ndarray, np.ndarray]:
    """"Traditional" augmentation comparator: standard + rotation +-10 deg + photometric jitter and blur."""
    img, lab = random_scale(img, lab, ctx)
    if ctx.rng.random() < 0.5:
        img, lab = random_rotate(img, lab, ctx.rng)
    img, lab = random_crop(img, lab, ctx)
    img, lab = random_flip(img, lab, ctx)
    return photometric_jitter(np.ascontiguousarray(img), ctx.rng), lab


@register_augmentation("style")
def style_augment(img: np.ndarray, lab: np.ndarray, ctx: AugmentContext) -> tuple[np.ndarray, np.ndarray]:
    """Style-transfer comparator: standard + (p=0.5) the colour statistics of another training image."""
    img, lab = standard_augment(img, lab, ctx)
    if ctx.other_image is not None and ctx.rng.random() < 0.5:
        img = color_transfer(np.ascontiguousarray(img), ctx.other_image())
    return img, lab


@register_augmentation("none")
def crop_only(img: np.ndarray, lab: np.ndarray, ctx: AugmentContext) -> tuple[np.ndarray, np.ndarray]:
    """Pad + random crop only (for ablations and overfitting checks)."""
    return random_crop(img, lab, ctx)


# -- the torch dataset -----------------------------------------------------------------------------
class SegTrainSet(torch.utils.data.Dataset):
    """Items are (index, seed, focus_class) from a StreamSampler; returns (uint8 3xHxW image, uint8 HxW train ids,
    bool real). The first `n_real` items are real samples, the rest generated pairs (the noisy-pixel filter
    judges generated pixels against real ones)."""

    def __init__(self, items: list[tuple[Dataset | PairSet, SampleRef]], label_set: LabelSet,
                 crop: tuple[int, int], scale: tuple[float, float] = (0.5, 2.0), augment: str = "standard",
                 n_real: int | None = None) -> None:
        if augment not in AUGMENTATIONS:
            raise DataError(f"unknown augmentation {augment!r}; choose from {', '.join(sorted(AUGMENTATIONS))}")
        if not items:
            raise DataError("no training samples")
        self.items = items
        self.lut = label_set.id_to_train_lut
        self.crop = crop
        self.scale = scale
        self.augment = augment
        self.n_real = len(items) if n_real is None else n_real

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded RGB image and train-id map of item `index`, sizes checked."""
        src, ref = self.items[index]
        img = src.load_image(ref)
        lab = self.lut[src.load_label(ref)]  # ids checked as `stats` checks them (an id the set lacks: error)
        if img.shape[:2] != lab.shape:
            raise DataError(f"image is {img.shape[1]}x{img.shape[0]} but its label is "
                            f"{lab.shape[1]}x{lab.shape[0]}", ref.image_path)
        return img, lab

    def _image(self, index: int) -> np.ndarray:
        src, ref = self.items[index]
        return src.load_image(ref)

    def __getitem__(self, item: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index, seed, focus, focus_px = item
        img, lab = self.load(index)
        rng = np.random.default_rng(seed)
        ctx = AugmentContext(self.crop, self.scale, rng, focus, focus_px,
                             other_image=lambda: self._image(int(rng.integers(len(self.items)))))
        img, lab = AUGMENTATIONS[self.augment](img, lab, ctx)
        img_t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return img_t, torch.from_numpy(np.ascontiguousarray(lab)), torch.tensor(index < self.n_real)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 Bx3xHxW -> float32 normalised with the ImageNet mean/std (done on the training device)."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() - mean) / std


# -- samplers --------------------------------------------------------------------------------------
def rcs_probabilities(class_pixels: np.ndarray, temperature: float = RCS_TEMPERATURE) -> np.ndarray:
    """DAFormer's P(c) = softmax((1 - f_c) / T), f_c the pixel frequency; classes never seen get 0."""
    px = np.asarray(class_pixels, dtype=np.float64)
    freq = px / max(px.sum(), 1.0)
    logits = (1.0 - freq) / temperature
    logits[px <= 0] = -np.inf
    logits -= logits[np.isfinite(logits)].max() if np.isfinite(logits).any() else 0.0
    p = np.exp(logits)
    return p / p.sum() if p.sum() > 0 else p


class StreamSampler(Sampler):
    """Yields batches of (index, aug_seed, focus_class, focus_pixels) for steps [start_step, total_steps).

    Position p = step * batch * world + rank * batch + j is the only input of every draw, which is what
    makes resume exact and the stream independent of worker count. mode "uniform" walks seeded
    per-epoch permutations; "rare-class" draws a class by RCS probabilities, then an image holding at
    least min_pixels (scaled to its area) of it.
    """

    def __init__(self, n: int, batch: int, total_steps: int, *, seed: int = 0, start_step: int = 0,
                 rank: int = 0, world: int = 1, mode: str = "uniform",
                 class_counts: np.ndarray | None = None, areas: np.ndarray | None = None) -> None:
        self.n, self.batch, self.total, self.seed = n, batch, total_steps, seed
        self.start, self.rank, self.world, self.mode = start_step, rank, world, mode
        self._perms: dict[int, np.ndarray] = {}
        if mode == "rare-class":
            if class_counts is None or areas is None:
                raise ValueError("rare-class sampling needs per-image class counts and areas")
            min_px = np.maximum(1, np.round(RCS_MIN_PIXELS * areas / RCS_REF_AREA)).astype(np.int64)
            self.min_px = min_px
            self.candidates = [np.flatnonzero(class_counts[:, c] >= min_px) for c in range(class_counts.shape[1])]
            px = class_counts.sum(0).astype(np.float64)
            px[[len(c) == 0 for c in self.candidates]] = 0
            self.probs = rcs_probabilities(px)
            if not (self.probs > 0).any():
                raise DataError("rare-class sampling: no class has enough pixels in any image")
        elif mode != "uniform":
            raise DataError(f"unknown sampler {mode!r}; choose uniform or rare-class")

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch, 7]).permutation(self.n)}
        return self._perms[epoch]

    def draw(self, p: int) -> tuple[int, int, int, int]:
        aug_seed = int(np.random.SeedSequence([self.seed, p, 11]).generate_state(1)[0])
        if self.mode == "uniform":
            return int(self._perm(p // self.n)[p % self.n]), aug_seed, -1, 0
        rng = np.random.default_rng([self.seed, p, 13])
        c = int(rng.choice(len(self.probs), p=self.probs))
        idx = int(rng.choice(self.candidates[c]))
        return idx, aug_seed, c, int(self.min_px[idx] // 2)

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        per_step = self.batch * self.world
        for step in range(self.start, self.total):
            base = step * per_step + self.rank * self.batch
            yield [self.draw(base + j) for j in range(self.batch)]


def _worker_init(_: int, owner: int | None = None) -> None:
    # workers decode and resize; keep them single-threaded so they do not fight the training threads
    import signal

    # a forkserver child's parent is the server, which torch's own watchdog watches: after a kill -9 of the
    # training process the workers would live on. Watch the training process itself.
    if owner is not None:
        from segbalance.core.parallel import exit_with

        exit_with(owner)

    # Ctrl-C reaches the whole process group and stops the training process at an iteration boundary:
    # workers must not die first. SIGTERM is sent to the training process alone (the app's stop), and is
    # how multiprocessing ends daemon workers at exit: a worker ignoring it hung every failed run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def make_loader(dataset: SegTrainSet, sampler: StreamSampler, workers: int, *, pin_memory: bool = False) -> DataLoader:
    """DataLoader over the stream; worker processes decode/augment while the main process trains."""
    from segbalance.core.parallel import process_context

    # Not fork: a parent that already ran OpenCV (or torch) thread pools leaves their locks held in a
    # forked child, and the worker hangs on its first cv2 call. forkserver children start clean.
    ctx = None
    if workers:
        ctx = process_context()
    return DataLoader(
        dataset,
        multiprocessing_context=ctx,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=functools.partial(_worker_init, owner=os.getpid()) if workers else None,
        prefetch_factor=4 if workers else None,
        generator=torch.Generator().manual_seed(0),  # unused by our items; keeps the global RNG untouched
        persistent_workers=False,
    )
