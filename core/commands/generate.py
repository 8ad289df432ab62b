"""segbalance generate: plan -> recombine -> render -> (quality gate) -> pairs in the workspace DB."""

from __future__ import annotations

import argparse
import sys

from segbalance.core.runs.amp import AMP_HELP, AMP_MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="render the recipes of a plan into training pairs (resumable job; "
                                        "under torchrun the ranks split the plan, one device each)")
    p.add_argument("--workspace", required=True, help="workspace folder (pairs go to WS/pairs/<job-id>/)")
    p.add_argument("--dataset", required=True, help="dataset folder the plan was made on")
    p.add_argument("--plan", required=True, help="plan file written by `segbalance plan`")
    p.add_argument("--renderer", required=True, choices=["pix2pixhd", "copypaste", "procedural"],
                   help="how to make the RGB (procedural: the sample data's painter, an oracle for sample data)")
    p.add_argument("--checkpoint", help="generator checkpoint (pix2pixhd)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda:N (default auto)")
    p.add_argument("--min-quality", type=float, default=None, metavar="Q",
                   help="mark pairs whose segmentation mIoU is below Q (0..1) as rejected")
    p.add_argument("--seg-checkpoint", help="segmentation run folder or checkpoint for --min-quality "
                   "(default: the newest finished train-seg run of the workspace)")
    p.add_argument("--blend", default="feather", choices=["feather", "poisson", "none"],
                   help="copypaste edge blending (default feather)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: each recipe's seed)")
    p.add_argument("--batch-size", type=int, default=None, help="maps rendered per batch")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP + "; generator and quality gate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.jobs.generate import run_generate
    from segbalance.core.progress import cli_progress
    from segbalance.core.runs.runtime import resolve_device

    resolve_device(args.device)  # the one device resolver: a bad --device is one line, first
    if args.batch_size is not None and args.batch_size < 1:
        raise SegbalanceError("--batch-size must be at least 1")
    import os

    rank = int(os.environ.get("RANK", "0") or 0) if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else 0
    with cli_progress("generating", "pair", enabled=rank == 0) as progress:  # under torchrun rank 0 speaks
        res = run_generate(args.workspace, args.dataset, args.plan, args.renderer, checkpoint=args.checkpoint,
                           device=args.device, blend=args.blend, min_quality=args.min_quality, seed=args.seed,
                           batch_size=args.batch_size, seg_checkpoint=args.seg_checkpoint, amp=args.amp,
                           progress=progress)
    if rank != 0:
        return 1 if res.failed else 0
    what = "resumed" if res.resumed else "job"
    print(f"{what} #{res.job_id}: {res.new} new pair(s), {res.done}/{res.total} done"
          + (f", {res.rejected} rejected by the quality gate" if res.rejected else "")
          + f"  ({res.pairs_dir})")
    if res.failed:
        print(f"{len(res.failed)} recipe(s) failed:", file=sys.stderr)
        for i, msg in res.failed:
            print(f"  recipe {i}: {msg}", file=sys.stderr)
        return 1
    return 0
