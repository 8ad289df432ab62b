"""segbalance export: originals + generated pairs as a Cityscapes-layout dataset with lists and manifest."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the augmented dataset (Cityscapes layout, train_list.txt, manifest)")
    p.add_argument("--workspace", required=True)
    p.add_argument("--dataset", required=True, help="the original dataset")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--include", default="pending,accepted",
                   help="pair statuses to include (default pending,accepted)")
    p.add_argument("--copy", action="store_true", help="copy files instead of hard-linking them")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.datasets import open_dataset
    from segbalance.core.export import export_dataset
    from segbalance.core.progress import cli_progress
    from segbalance.core.workspace import Workspace

    include = tuple(s.strip() for s in args.include.split(",") if s.strip())
    ds = open_dataset(args.dataset)
    with Workspace(args.workspace, create=False) as ws, cli_progress("exporting", "sample") as progress:
        man = export_dataset(ws, ds, args.out, include, copy=args.copy, progress=progress)
    print(f"exported {man['originals']} original + {man['generated']} generated samples to {args.out}")
    return 0
