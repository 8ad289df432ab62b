"""segbalance sample-data OUT: write the built-in procedural street-scene dataset."""

from __future__ import annotations

import argparse
import re

from segbalance.core.errors import SegbalanceError


def parse_size(text: str) -> tuple[int, int]:
    """(W, H) from "WxH"; anything else is a user error."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise SegbalanceError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 256x128")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 32 or h < 16 or w > 8192 or h > 8192:
        raise SegbalanceError(f"--size {text!r}: width must be 32..8192 and height 16..8192")
    return w, h


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample-data", help="write the built-in procedural sample dataset (Cityscapes layout)")
    p.add_argument("out", help="output folder (created; re-running rewrites the same files)")
    p.add_argument("--n-train", type=int, default=200, help="training images (default 200)")
    p.add_argument("--n-val", type=int, default=50, help="validation images (default 50)")
    p.add_argument("--size", default="256x128", help="image size WxH (default 256x128)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed gives identical files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    if args.n_train < 0 or args.n_val < 0:
        raise SegbalanceError("--n-train and --n-val must be >= 0")
    from segbalance.core.datasets.sample import make_sample_dataset
    from segbalance.core.progress import cli_progress

    with cli_progress("generating", "img") as progress:
        root = make_sample_dataset(args.out, n_train=args.n_train, n_val=args.n_val, size=size, seed=args.seed,
                                   progress=progress)
    print(f"wrote {args.n_train} train + {args.n_val} val images ({size[0]}x{size[1]}, seed {args.seed}) "
          f"to {root.resolve()}")
    return 0
