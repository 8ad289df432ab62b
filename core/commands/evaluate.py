"""segbalance evaluate RUN_DIR|CKPT --dataset DATASET: mIoU, pixel accuracy and per-class IoU of a model."""

from __future__ import annotations

import argparse
import json
import sys

from segbalance.core.runs.amp import AMP_HELP, AMP_MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a PSPNet checkpoint on a dataset split (mIoU, per-class IoU)")
    p.add_argument("run", metavar="RUN_DIR|CKPT", help="train-seg run folder or checkpoint file")
    p.add_argument("--dataset", required=True, help="dataset folder")
    p.add_argument("--split", default="val", help="split to evaluate (default: val)")
    p.add_argument("--json", action="store_true",
                   help='print one object {"miou", "pixel_acc", "per_class", "split", "n_images"} (fractions; absent '
                        'classes null)')
    p.add_argument("--mode", choices=["whole", "slide"], default="whole",
                   help="whole image at once, or sliding crops (2/3 overlap) of the training crop size")
    p.add_argument("--crop", help="sliding-window size HEIGHTxWIDTH (default: the run's training crop)")
    p.add_argument("--save-predictions", metavar="DIR", help="write predictions as label-id PNGs (<id>.png)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.commands.train_seg import parse_size
    from segbalance.core.datasets import open_dataset
    from segbalance.core.progress import cli_progress
    from segbalance.core.runs.runtime import choose_precision, resolve_device
    from segbalance.core.seg.evaluate import evaluate

    precision = choose_precision(args.amp, resolve_device(args.device))  # a bad --device/--amp: one line, first
    crop = parse_size(args.crop) if args.crop else None
    ds = open_dataset(args.dataset)
    with cli_progress("evaluating", "img") as progress:
        res = evaluate(args.run, ds, args.split, mode=args.mode, crop=crop, device=args.device, amp=args.amp,
                       save_predictions=args.save_predictions, progress=progress)
    print(f"segbalance evaluate: {precision.line()}", file=sys.stderr)  # after success: errors stay one line
    if args.json:
        print(json.dumps({"miou": res["miou"], "pixel_acc": res["pixel_acc"], "per_class": res["per_class"],
                          "split": args.split, "n_images": res["n_images"]}))
        return 0
    pct = lambda v: "    -" if v is None else f"{v * 100:6.2f}"  # noqa: E731
    print(f"{ds.root}  split={args.split}  images={res['n_images']}  mode={args.mode}")
    print(f"mIoU {pct(res['miou'])}%   pixel acc {pct(res['pixel_acc'])}%   mean acc {pct(res['mean_acc'])}%")
    print(f"{'class':<16}{'IoU %':>8}")
    for name, v in res["per_class"].items():
        print(f"{name:<16}{pct(v):>8}")
    if args.save_predictions:
        print(f"predictions: {args.save_predictions}")
    return 0
