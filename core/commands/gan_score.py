"""segbalance gan-score: the label-to-image score of rendered images, next to its ceilings."""

from __future__ import annotations

import argparse
import json
import sys

from segbalance.core.commands import row_id
from segbalance.core.runs.amp import AMP_HELP, AMP_MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gan-score", help="label-to-image score: segment rendered images with a model trained on real data",
        description="mIoU of a segmenter (a train-seg run trained on real images) on rendered images against "
                    "the label maps they came from. Scores a generation job's pairs (--workspace, --job), or "
                    "renders the label maps of a dataset split (--renderer); the real images of the same split "
                    "are always scored too: that is the ceiling.")
    p.add_argument("--seg-checkpoint", required=True, metavar="RUN_DIR|CKPT",
                   help="train-seg run folder or checkpoint, trained on real data only")
    p.add_argument("--dataset", required=True, help="the dataset the label maps come from")
    p.add_argument("--split", default="val", help="split for --renderer and the real-image ceiling (default val)")
    p.add_argument("--workspace", help="workspace of --job")
    p.add_argument("--job", type=row_id, help="score the pairs of this generation job")
    p.add_argument("--renderer", choices=["copypaste", "pix2pixhd", "procedural"],
                   help="render the split's label maps with this renderer and score them")
    p.add_argument("--checkpoint", help="generator checkpoint for --renderer pix2pixhd")
    p.add_argument("--max-images", type=int, help="score at most this many images of each kind")
    p.add_argument("--montage", metavar="PNG", help="with --job: write label map | render | original rows here")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:N")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.datasets import open_dataset
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.progress import cli_progress
    from segbalance.core.runs.runtime import choose_precision
    from segbalance.core.seg import gan_score as gs
    from segbalance.core.seg.quality import load_scorer

    if (args.job is None) == (args.renderer is None):
        raise SegbalanceError("give either --job N (with --workspace) or --renderer NAME")
    if args.job is not None and not args.workspace:
        raise SegbalanceError("--job needs --workspace")
    if args.montage and args.job is None:
        raise SegbalanceError("--montage needs --job")
    ds = open_dataset(args.dataset)
    scorer = load_scorer(args.seg_checkpoint, device=args.device, amp=args.amp)
    # everything that can be refused (the job's pairs, the generator) is checked before the real images are scored
    out: dict[str, dict] = {}
    if args.job is not None:
        from segbalance.core.jobs.pairs import FAILED, list_pairs
        from segbalance.core.workspace import Workspace

        with Workspace(args.workspace, create=False) as ws:
            pairs = [p for p in list_pairs(ws, job_id=args.job) if p["status"] != FAILED]
            if not pairs:
                raise SegbalanceError(f"job {args.job} has no pairs to score", ws.path)
            pairs = pairs[: args.max_images or None]
            with cli_progress(f"real {args.split}", "img") as progress:
                out["real"] = gs.score_real(scorer, ds, args.split, max_images=args.max_images, progress=progress)
            with cli_progress(f"job {args.job}", "pair") as progress:
                out["rendered"] = gs.score_pairs(scorer, pairs, ws.path, progress=progress)
            if args.montage:
                gs.pair_montage(args.montage, pairs, ws.path, ds)
    else:
        from segbalance.core.render.registry import load_renderer

        rend = load_renderer(args.renderer, ds=ds, checkpoint=args.checkpoint, device=args.device, amp=args.amp)
        try:
            with cli_progress(f"real {args.split}", "img") as progress:
                out["real"] = gs.score_real(scorer, ds, args.split, max_images=args.max_images, progress=progress)
            with cli_progress(f"{args.renderer} {args.split}", "img") as progress:
                out["rendered"] = gs.score_renderer(scorer, ds, rend, args.split, max_images=args.max_images,
                                                    progress=progress)
        finally:
            rend.close()
    print(f"segbalance gan-score: {choose_precision(args.amp, scorer.device).line()}", file=sys.stderr)  # after success
    real, ren = out["real"], out["rendered"]
    ratio = (ren["miou"] / real["miou"]) if real["miou"] and ren["miou"] is not None else None
    if args.json:
        print(json.dumps({k: {"miou": v["miou"], "per_class": v["per_class"], "n_images": v["n_images"]}
                          for k, v in out.items()} | {"ratio": ratio}))
        return 0
    pct = lambda v: "    -" if v is None else f"{v * 100:6.2f}"  # noqa: E731
    print(f"label-to-image score (mIoU of {args.seg_checkpoint} against the maps the images came from)")
    print(f"  real {args.split} images : {pct(real['miou'])}%  ({real['n_images']} images; the ceiling)")
    print(f"  rendered images  : {pct(ren['miou'])}%  ({ren['n_images']} images)"
          + (f"  = {ratio * 100:.0f}% of the ceiling" if ratio is not None else ""))
    print(f"{'class':<16}{'real %':>8}{'rendered %':>12}")
    for name in real["per_class"]:
        print(f"{name:<16}{pct(real['per_class'][name]):>8}{pct(ren['per_class'][name]):>12}")
    if args.montage:
        print(f"montage: {args.montage}")
    return 0
