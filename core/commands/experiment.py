"""segbalance experiment: the method's result tables (arms x seeds) on one dataset."""

from __future__ import annotations

import argparse

from segbalance.core.runs.amp import AMP_HELP, AMP_MODES


def _crop(text: str) -> tuple[int, ...]:
    """WxH, or () for 'none' (whole pairs; None would mean 'the config's own')."""
    from segbalance.core.commands.train_gan import _size

    return () if text.lower() == "none" else _size(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="train PSPNet per arm (baseline, augmentations, RCS, generated pairs)")
    p.add_argument("--config", default="small",
                   help="small (2 CPU cores, <= 90 min), medium (<= 3 h), full (every arm), paper (GPU), camvid "
                        "(SegNet's CamVid folder, --dataset required), demo or ci")
    p.add_argument("--dataset", help="dataset folder (default: the built-in sample dataset)")
    p.add_argument("--seeds", type=int, help="seeds per arm (default: the config's)")
    p.add_argument("--arms", help="comma-separated subset of: baseline,traditional,style,copypaste,rcs,single,"
                                  "multi,recon,recon-filter (recon's pairs, noisy generated pixels ignored),oracle")
    p.add_argument("--out", default="experiment-workspace", help="output folder (a workspace)")
    p.add_argument("--device", help="auto, cpu or cuda:N")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP + "; of both trainers")
    p.add_argument("--seg-iters", type=int, help="override the PSPNet schedule")
    p.add_argument("--seg-output-stride", type=int, choices=[8, 16],
                   help="override PSPNet's output stride (16: about 2.5x cheaper per step; classes narrower than "
                   "16 px are then marked unresolvable)")
    p.add_argument("--gan-iters", type=int, help="override the pix2pixHD schedule")
    p.add_argument("--gan-crop", type=_crop, metavar="WxH|none",
                   help="train pix2pixHD on random WxH crops of its pairs (more iterations for the same time), "
                        "or 'none' for whole pairs (default: the config's)")
    p.add_argument("--budget", type=int, help="generated pairs per arm")
    p.add_argument("--rare", metavar="auto|a,b,c",
                   help="the rare classes of the tables and of single/multi/recon's targets: 'auto' (train classes "
                        "under 2%% of labelled train pixels, rarest first, at most 8) or a comma-separated list "
                        "(default: the config's; small, medium, full, paper and demo use the method's Cityscapes "
                        "classes on Cityscapes-labelled data, the auto rule elsewhere)")
    p.add_argument("--eval-split", help="split the final table is computed on (default: the config's; camvid: test)")
    p.add_argument("--pretrained", help="local ImageNet backbone weights for PSPNet")
    p.add_argument("--estimate", action="store_true",
                   help="time a few steps of each part on this device and print the config's run time and peak "
                        "memory instead of running it")
    p.add_argument("--estimate-steps", type=int, default=2, help="timed steps per part with --estimate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.experiments.protocol import preset, run_experiment

    arms = tuple(a.strip() for a in args.arms.split(",") if a.strip()) if args.arms else None
    rare = None
    if args.rare:
        rare = "auto" if args.rare.strip() == "auto" else tuple(r.strip() for r in args.rare.split(",") if r.strip())
    cfg = preset(args.config, dataset=args.dataset, seeds=args.seeds, arms=arms, device=args.device, amp=args.amp,
                 rare=rare, eval_split=args.eval_split,
                 seg_iters=args.seg_iters, seg_output_stride=args.seg_output_stride,
                 gan_iters=args.gan_iters, gan_crop=args.gan_crop, budget=args.budget, pretrained=args.pretrained)
    if args.estimate:
        from segbalance.core.experiments.estimate import estimate_experiment

        estimate_experiment(cfg, steps=args.estimate_steps)
        return 0
    run_experiment(cfg, args.out)
    return 0
