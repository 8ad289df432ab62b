"""The tiny pix2pixHD's label-to-image score over its training iterations, against the oracle renderer.

One training run (the schedule of the given --iters, as the experiment trains it); every --every iterations its
checkpoint is kept, then each is scored: a segmenter trained on real images (a train-seg run) segments the
generator's renders of the split's real label maps, mIoU against those maps. The real images give the ceiling,
the sample data's own painter (procedural renderer) the renderer's ceiling. Prints a table, no assertions.

    python benchmarks/bench_gan_curve.py [--dataset WS/sample-dataset --seg-run WS/runs/baseline-seed0] \
        [--out DIR] [--iters 1500] [--every 250] [--max-images 100] [--class-balance] [--lr 2e-4] [--lr-d F] \
        [--lambda-l1 F] [--decay-start 0.5] [--crop 128x128] [--arch n_downsample_global=2 ...]
    python benchmarks/bench_gan_curve.py --dataset ... --seg-run ... --score-only G-800.pt ... [--montage M.jpg]

--montage writes the first 4 val maps as rows: colour label map | each checkpoint's render | oracle | original
(with --ema or --both-weights, each checkpoint's raw G then its weight average).

Without --dataset / --seg-run it makes them in --out as the `small` experiment does (sample dataset, 200 train /
500 val at 256x128; a PSPNet-18 baseline with small's schedule): about 20 minutes on 2 cores in all.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from segbalance.core.datasets import open_dataset
from segbalance.core.experiments.evidence import bootstrap_ratio
from segbalance.core.experiments.protocol import fast_amp, preset
from segbalance.core.render.gan_train import CKPT_NAME, make_config, train_gan
from segbalance.core.render.registry import load_renderer
from segbalance.core.seg import gan_score as gs
from segbalance.core.seg.quality import load_scorer
from segbalance.core.workspace import Workspace


def _wxh(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def train_curve(args, ds, out: Path) -> dict:
    """Train one generator, keeping its checkpoint every --every iterations: {iteration: path, -1: seconds}."""
    small = preset("small", device=args.device)
    cfg = make_config("tiny", label_nc=35, iters=args.iters, size=(256, 128), device=args.device, seed=args.seed,
                      amp=fast_amp(small), save_every=args.every, lr=args.lr, class_balance=args.class_balance,
                      lambda_l1=args.lambda_l1, lr_d=args.lr_d, decay_start=args.decay_start, crop=args.crop,
                      ema=args.ema, ema_warmup=args.ema_warmup, d_augment=args.d_augment,
                      arch={k: int(v) for k, v in (a.split("=", 1) for a in args.arch)})
    gan_dir = out / "gan"
    kept: dict = {}

    def keep(done: int, _losses: dict) -> None:
        # train_gan saves after logging iteration k*every, so at k*every + 1 the file holds iteration k*every
        prev = done - 1
        if prev > 0 and prev % args.every == 0 and (gan_dir / CKPT_NAME).exists():
            kept[prev] = out / f"G-{prev}.pt"
            shutil.copyfile(gan_dir / CKPT_NAME, kept[prev])

    t0 = time.perf_counter()
    with Workspace(out / "ws") as ws:
        res = train_gan(ds, ws, gan_dir, cfg, log=keep)
    kept[-1] = time.perf_counter() - t0
    kept[args.iters] = out / f"G-{args.iters}.pt"
    shutil.copyfile(res.checkpoint, kept[args.iters])
    return kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", help="dataset the generator trains on (default: small's sample dataset)")
    ap.add_argument("--seg-run", help="train-seg run trained on real images only, the scorer (default: trained "
                    "here with small's schedule)")
    ap.add_argument("--out", help="folder for the runs and the kept checkpoints (default: a temporary one)")
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--max-images", type=int, default=100, help="val label maps rendered and scored per point")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--class-balance", action="store_true", help="train with the class-balanced losses")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--lambda-l1", type=float, default=0.0, help="weight of the pixel L1 content loss (0 = off)")
    ap.add_argument("--lr-d", type=float, help="discriminator lr (default: --lr)")
    ap.add_argument("--decay-start", type=float, default=0.5, help="fraction of the run before the lr decays")
    ap.add_argument("--crop", type=_wxh, help="train on random WxH crops of the 256x128 pairs (default: whole)")
    ap.add_argument("--ema", type=float, help="keep a weight average of G with this decay; each checkpoint is then "
                    "scored twice, raw G and the average, from the same run")
    ap.add_argument("--ema-warmup", choices=["short", "debias"], default="short",
                    help="how the average starts (GANTrainConfig.ema_warmup; default short)")
    ap.add_argument("--d-augment", metavar="POLICY|off", help="DiffAugment of D's inputs, e.g. translation,cutout "
                    "(default: the preset's)")
    ap.add_argument("--arch", nargs="*", default=[], metavar="KEY=INT",
                    help="tiny preset overrides, e.g. n_downsample_global=2")
    ap.add_argument("--montage", metavar="IMAGE", help="also write a montage of the first 4 val maps (PNG or JPEG)")
    ap.add_argument("--both-weights", action="store_true", help="with --score-only: score raw G and its weight "
                    "average of each checkpoint")
    ap.add_argument("--json", metavar="FILE", help="also write the scores (unrounded, per class) as JSON, for "
                    "benchmarks/gan_arms.py")
    ap.add_argument("--score-only", nargs="+", metavar="CKPT", help="score these generator checkpoints "
                    "(e.g. an earlier run's G-800.pt) instead of training")
    args = ap.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="bench_gan_curve-"))
    out.mkdir(parents=True, exist_ok=True)
    small = preset("small", device=args.device)
    if args.dataset is None:
        from segbalance.core.datasets.sample import make_sample_dataset

        args.dataset = str(out / "sample-dataset")
        if not (out / "sample-dataset" / ".complete").exists():
            make_sample_dataset(args.dataset, small.n_train, small.n_val, size=tuple(small.size), seed=0)
            (out / "sample-dataset" / ".complete").write_text("ok")
    ds = open_dataset(args.dataset)
    if args.seg_run is None:
        from segbalance.core.seg.train import SegTrainConfig, train_seg

        args.seg_run = str(out / "baseline")
        if not (out / "baseline" / "result.json").exists():
            train_seg(SegTrainConfig(dataset=args.dataset, out_dir=args.seg_run, backbone=small.backbone,
                                     crop=tuple(small.seg_crop), iters=small.seg_iters, batch=small.seg_batch,
                                     lr=small.seg_lr, seed=args.seed, device=args.device, amp=fast_amp(small),
                                     workers=small.workers, stdout_json=False))
    if args.score_only:
        from segbalance.core.render.pix2pixhd import read_checkpoint

        # keyed by each checkpoint's own iteration (its position where two share one)
        its = [read_checkpoint(p).get("iteration", k) for k, p in enumerate(args.score_only)]
        keys = its if len(set(its)) == len(its) else range(len(its))
        kept = {int(k): Path(p) for k, p in zip(keys, args.score_only, strict=True)}
        train_s = float("nan")
    else:
        kept = train_curve(args, ds, out)
        train_s = kept.pop(-1)
    scorer = load_scorer(args.seg_run, device=args.device)
    real = gs.score_real(scorer, ds, "val", max_images=args.max_images)
    oracle = gs.score_renderer(scorer, ds, load_renderer("procedural", ds=ds, device=args.device), "val",
                               max_images=args.max_images)
    what = ("the given checkpoints" if args.score_only else
            f"tiny pix2pixHD, {args.iters} iterations (seed {args.seed}, lr {args.lr:g}"
            f"{', class-balanced' if args.class_balance else ''}"
            f"{f', L1 x{args.lambda_l1:g}' if args.lambda_l1 else ''}{f', lr D {args.lr_d:g}' if args.lr_d else ''}"
            f"{f', decay from {args.decay_start:g}' if args.decay_start != 0.5 else ''}"
            f"{f', {args.crop[0]}x{args.crop[1]} crops' if args.crop else ''}"
            f"{f', EMA {args.ema:g}' if args.ema else ''}"
            f"{f' ({args.ema_warmup} warm-up)' if args.ema and args.ema_warmup != 'short' else ''}"
            f"{f', D augment {args.d_augment}' if args.d_augment else ''}"
            f"{''.join(', ' + a for a in args.arch)})"
            f", trained in {train_s / 60:.1f} min")
    print(f"{what}; scored on {args.max_images} val label maps by {args.seg_run}")
    print(f"real images: {real['miou'] * 100:.1f} mIoU (ceiling); oracle renderer: {oracle['miou'] * 100:.1f} mIoU")
    print("| checkpoint | gen score (mIoU) | % of real | % of oracle [95% paired bootstrap over the maps] |")
    print("|---|---|---|---|")
    weights = (("raw", True), ("EMA", False)) if args.ema or args.both_weights else (("", False),)
    rows: list[dict] = []
    for it in sorted(kept):
        for tag, raw in weights:
            rend = load_renderer("pix2pixhd", ds=ds, checkpoint=str(kept[it]), device=args.device, raw_weights=raw)
            g = gs.score_renderer(scorer, ds, rend, "val", max_images=args.max_images)
            iv = bootstrap_ratio([g["image_counts"]], [oracle["image_counts"]])
            vs = "–" if iv is None else f"{iv.mean * 100:.0f}% [{iv.lo * 100:.0f}, {iv.hi * 100:.0f}]"
            name = f"{kept[it].parent.name}/{kept[it].name}" if args.score_only else str(it)
            name += f" {tag}" if tag else ""
            print(f"| {name} | {g['miou'] * 100:.1f} | {g['miou'] / real['miou'] * 100:.0f}% | {vs} |", flush=True)
            rows.append({"checkpoint": name, "iteration": it, "weights": tag or "G", "miou": g["miou"],
                         "per_class": g["per_class"], "vs_oracle": None if iv is None else
                         {"mean": iv.mean, "lo": iv.lo, "hi": iv.hi}})
    if args.json:
        import json

        from segbalance.core.io import atomic_write_bytes

        atomic_write_bytes(Path(args.json), json.dumps({
            "what": what, "seed": args.seed, "iters": args.iters, "train_s": train_s, "seg_run": args.seg_run,
            "max_images": args.max_images, "real_miou": real["miou"], "oracle_miou": oracle["miou"],
            "rows": rows}, indent=1).encode())
    if args.montage:
        write_montage(Path(args.montage), ds, [kept[it] for it in sorted(kept)], args.device,
                      both_weights=len(weights) == 2)


def write_montage(path: Path, ds, checkpoints: list[Path], device: str, both_weights: bool = False) -> None:
    """Rows of label map | each checkpoint's render (raw G, then its average, with both_weights) | oracle |
    original, so artefacts can be compared by eye."""
    import cv2
    import numpy as np

    from segbalance.core.io import atomic_write_bytes
    from segbalance.core.render.interface import RenderItem

    renderers = [load_renderer("pix2pixhd", ds=ds, checkpoint=str(c), device=device, raw_weights=raw)
                 for c in checkpoints for raw in ((True, False) if both_weights else (False,))]
    renderers.append(load_renderer("procedural", ds=ds, device=device))
    rows = []
    for ref in ds.samples("val")[:4]:
        lab, inst = ds.load_label(ref), ds.load_instance(ref)
        cols = [ds.label_set.colorize(lab)] + [r.render([RenderItem(lab, inst)])[0] for r in renderers]
        cols.append(cv2.cvtColor(cv2.imread(str(ref.image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        rows.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in cols], 1))
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    if not ok:
        raise SystemExit(f"{path}: cannot encode a montage with this extension")
    atomic_write_bytes(path, buf.tobytes())
    print(f"montage: {path}")

if __name__ == "__main__":
    main()
