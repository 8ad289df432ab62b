"""segbalance demo: the main job end to end on the built-in sample dataset."""

from __future__ import annotations

import argparse

from segbalance.core.runs.amp import AMP_HELP, AMP_MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the built-in sample dataset")
    p.add_argument("--workspace", default="demo-workspace", help="workspace folder (default: demo-workspace)")
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--n-val", type=int, default=50)
    p.add_argument("--size", default="256x128", help="sample image size WxH")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP)
    p.add_argument("--config", default="demo", choices=["demo", "ci"],
                   help="demo (about 10 minutes on 2 CPU cores) or ci (a one-minute smoke run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.commands.sample_data import parse_size
    from segbalance.core.experiments.demo import DemoConfig, run_demo

    run_demo(DemoConfig(workspace=args.workspace, n_train=args.n_train, n_val=args.n_val,
                        size=parse_size(args.size), device=args.device, config=args.config, amp=args.amp))
    return 0
