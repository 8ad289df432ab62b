"""segbalance demo: the main job end to end on the built-in sample dataset."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the built-in sample dataset")
    p.add_argument("--workspace", default="demo-workspace", help="workspace folder (default: demo-workspace)")
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--n-val", type=int, default=50)
    p.add_argument("--size", default="256x128", help="sample image size WxH")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.demo import DemoConfig, run_demo

    w, h = (int(v) for v in args.size.lower().split("x"))
    run_demo(DemoConfig(workspace=args.workspace, n_train=args.n_train, n_val=args.n_val, size=(w, h),
                        seed=args.seed, device=args.device))
    return 0
