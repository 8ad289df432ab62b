"""segbalance train-seg DATASET: train PSPNet (optionally with generated pairs) and stream metrics to the DB."""

from __future__ import annotations

import argparse
import os
import sys

from segbalance.core.errors import SegbalanceError
from segbalance.core.runs.amp import AMP_HELP, AMP_MODES
from segbalance.core.seg import BACKBONES


def parse_size(text: str, what: str = "--crop") -> tuple[int, int]:
    """'256x512' -> (256, 512): height x width."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SegbalanceError(f"bad {what} {text!r}; expected HEIGHTxWIDTH, e.g. 256x512") from None
    if h < 8 or w < 8:
        raise SegbalanceError(f"bad {what} {text!r}: both sides must be at least 8")
    return h, w


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-seg", help="train PSPNet on a dataset (+ generated pairs) and log metrics")
    p.add_argument("dataset", help="dataset folder (Cityscapes layout or images/ + masks/ + classes.json)")
    p.add_argument("--workspace", required=True, help="workspace folder: the run and its metrics go to its DB")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (checkpoint.pt, result.json)")
    p.add_argument("--extra", metavar="pairs|EXPORT_DIR",
                   help="mix in generated pairs: 'pairs' (workspace DB; 'pairs:JOB_ID[,JOB_ID]' for given "
                   "generation jobs) or an exported Cityscapes-layout folder")
    p.add_argument("--extra-status", help="pair statuses to use with --extra pairs "
                   "(comma list of accepted, pending, rejected; default: accepted)")
    p.add_argument("--sampler", choices=["uniform", "rare-class"], default="uniform",
                   help="image sampling: uniform, or DAFormer rare-class sampling (T=0.01)")
    p.add_argument("--noisy-filter", nargs="?", type=float, const=1.25, default=0.0, metavar="FACTOR",
                   help="ignore pixels of generated pairs whose loss exceeds FACTOR x the running mean loss of real "
                   "pixels of the same class (FreeMask; FACTOR defaults to 1.25); the ignored fraction per class "
                   "is logged to the run")
    p.add_argument("--backbone", choices=BACKBONES, default="resnet50")
    p.add_argument("--pretrained", metavar="FILE", help="local ImageNet backbone weights (deep-stem reference "
                   "layout for resnet50/101, torchvision layout for resnet18/34); without: from scratch")
    p.add_argument("--stem", choices=["auto", "deep", "plain"], default="auto",
                   help="ResNet stem: deep (three 3x3, reference PSPNet) or plain 7x7 (torchvision); auto follows "
                   "the --pretrained file, else deep for resnet50/101 and plain for resnet18/34")
    p.add_argument("--crop", default="256x512", help="training crop HEIGHTxWIDTH (default 256x512); larger "
                   "than the images is padded with ignore")
    p.add_argument("--output-stride", type=int, choices=[8, 16], default=8,
                   help="PSPNet's output stride: 8 (the reference) or 16 (layer3 strided: about 2.5x cheaper per "
                   "step on a CPU, but objects narrower than 16 px are hard to resolve)")
    p.add_argument("--iters", type=int, default=1000, help="training iterations (default 1000)")
    p.add_argument("--batch", type=int, default=8, help="global batch size (default 8)")
    p.add_argument("--lr", type=float, default=0.01,
                   help="base learning rate (head: --head-lr-mult x this; default 0.01)")
    p.add_argument("--head-lr-mult", type=float, default=10.0,
                   help="learning rate of the head (PPM, classifier, aux) over the backbone's (default 10, the "
                   "reference recipe for a pretrained backbone)")
    p.add_argument("--augment", choices=["standard", "strong", "style", "none"], default="standard",
                   help="standard (scale, crop, flip); strong (+ rotation, colour jitter, blur); style (+ colour "
                   "statistics of another training image); none (crop only)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP)
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-interval", type=int, default=0, help="validate every N iterations (0: at the end)")
    p.add_argument("--log-interval", type=int, default=10, help="log loss/lr every N iterations")
    p.add_argument("--max-val-images", type=int, default=None, help="cap images of the periodic validations")
    p.add_argument("--val-split", default="val")
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--name", help="run name shown in the app (default: RUN_DIR's name)")
    p.add_argument("--no-json", action="store_true", help="no JSON metric lines on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.jobs.pairs import REVIEWED_EXPORT
    from segbalance.core.progress import cli_progress
    from segbalance.core.runs.records import CANCELLED
    from segbalance.core.seg.train import SegTrainConfig, train_seg

    for name in ("iters", "batch", "log_interval"):
        if getattr(args, name) < 1:
            raise SegbalanceError(f"--{name.replace('_', '-')} must be at least 1")
    if args.eval_interval < 0 or args.workers < 0:
        raise SegbalanceError("--eval-interval and --workers cannot be negative")
    if not (args.lr > 0 and args.head_lr_mult > 0):  # also refuses nan
        raise SegbalanceError("--lr and --head-lr-mult must be positive")
    from segbalance.core.workspace import check_apart

    check_apart(dataset=args.dataset, workspace=args.workspace, out=args.out)
    cfg = SegTrainConfig(
        dataset=args.dataset,
        out_dir=args.out,
        workspace=args.workspace,
        val_split=args.val_split,
        extra=args.extra,
        extra_status=tuple(s.strip() for s in args.extra_status.split(",") if s.strip()) if args.extra_status
        else REVIEWED_EXPORT,
        sampler=args.sampler,
        noisy_factor=args.noisy_filter,
        backbone=args.backbone,
        output_stride=args.output_stride,
        pretrained=args.pretrained,
        stem=args.stem,
        crop=parse_size(args.crop),
        augment=args.augment,
        iters=args.iters,
        batch=args.batch,
        lr=args.lr,
        head_lr_mult=args.head_lr_mult,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        workers=args.workers,
        threads=args.threads,
        log_interval=args.log_interval,
        eval_interval=args.eval_interval,
        max_val_images=args.max_val_images,
        resume=args.resume,
        name=args.name,
        stdout_json=not args.no_json,
    )
    with cli_progress("training", "it", enabled=sys.stderr.isatty()) as progress:
        result = train_seg(cfg, progress=progress)
    if os.environ.get("RANK", "0") != "0":
        return 0  # DDP: rank 0 reports
    if result.get("status") == CANCELLED:
        print(f"segbalance train-seg: stopped at iteration {result['iteration']}; checkpoint kept: "
              f"{result['checkpoint']}", file=sys.stderr)
        return 130
    nf = result.get("noisy_filter")
    if nf and nf.get("ignored") is not None:
        print(f"noisy-pixel filter (x{nf['factor']:g}): ignored {nf['ignored'] * 100:.1f}% of the generated "
              "pixels", file=sys.stderr)
    miou = result.get("miou")
    print(f"done: {result['iteration']} iterations, val mIoU {miou * 100:.2f}%" if miou is not None
          else f"done: {result['iteration']} iterations", file=sys.stderr)
    return 0
