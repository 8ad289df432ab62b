"""segbalance recombine PLAN: write the label and instance maps of every recipe in a plan."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segbalance.core.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recombine", help="write the recombined label/instance maps of a plan")
    p.add_argument("plan", help="plan file written by `segbalance plan`")
    p.add_argument("--workspace", required=True, help="workspace folder (holds the layer bank)")
    p.add_argument("--out", required=True, help="output folder for *_gtFine_labelIds.png / *_gtFine_instanceIds.png")
    p.add_argument("--dataset", help="dataset folder (default: the one recorded in the plan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.datasets import open_dataset
    from segbalance.core.planning.balance import Plan
    from segbalance.core.progress import cli_progress
    from segbalance.core.recombine import build_layer_bank
    from segbalance.core.recombine.write import check_recipes, recombine_recipes
    from segbalance.core.workspace import Workspace

    plan = Plan.load(args.plan)
    root = args.dataset or plan.dataset
    if not root:
        raise DataError("plan names no dataset; pass --dataset", args.plan)
    ds = open_dataset(root)
    out = Path(args.out).resolve()
    if out == ds.root or ds.root in out.parents:  # as export: new maps must not become part of the dataset
        raise DataError("--out must not be inside the dataset", args.out)
    plan.check_dataset(ds, args.plan)
    _refuse_foreign_maps(out, len(plan.recipes))
    with Workspace(args.workspace) as ws:
        with cli_progress("layer bank", "map") as progress:
            bank = build_layer_bank(ds, ws, progress, split=plan.split)
        try:
            check_recipes(plan.recipes, bank)
        except DataError as exc:
            raise DataError(str(exc), args.plan) from None
        with cli_progress("recombining", "map") as progress:
            res = recombine_recipes(plan.recipes, ds, bank, args.out, progress=progress)
    print(f"wrote {len(res.written)} label maps + instance maps to {args.out}")
    if res.failed:
        print(f"{len(res.failed)} of {len(plan.recipes)} recipes failed:", file=sys.stderr)
        for i, msg in res.failed:
            print(f"  recipe {i}: {msg}", file=sys.stderr)
        return 1
    return 0


def _refuse_foreign_maps(out, n: int) -> None:
    """Refuse an --out holding recombined maps this run would not overwrite (a larger plan's, or what a killed
    run left): they would sit beside this run's maps as if they were part of them, and are not ours to delete."""
    import re

    from segbalance.core.errors import DataError
    from segbalance.core.recombine.write import map_stem

    if not out.is_dir():
        return
    ours = {map_stem(i) for i in range(n)}
    pattern = re.compile(r"^(recomb_\d{6}_000019)_gtFine_(labelIds|instanceIds)\.png$")
    extra = sorted(p.name for p in out.iterdir() if (m := pattern.match(p.name)) and m.group(1) not in ours)
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise DataError(f"--out already holds recombined maps that this plan would not overwrite ({extra[0]}{more}: "
                        "an earlier, larger or interrupted run's); use an empty folder or move them away", out)
