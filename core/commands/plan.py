"""segbalance plan DATASET: choose recipes that move the class distribution toward a target."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from segbalance.core.errors import SegbalanceError

# kept here (not imported from core.planning.balance) so `segbalance --help` loads neither numpy nor OpenCV
PRESET_HELP = ("raise-rare[:SHARE] lifts every class below SHARE (default 0.01) to it; "
               "inverse-frequency[:T] targets shares proportional to share**(1/T) (T>=1, default 2; "
               "larger T is flatter); uniform-capped[:CAP] lifts classes toward a uniform share but at most "
               "CAP times (default 5) their current share")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="plan recombined maps that balance the class distribution")
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("--workspace", required=True, help="workspace folder (holds the layer bank and stats cache)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--target", help="explicit pixel shares, e.g. wall=0.02,fence=0.02 (or 2%%)")
    g.add_argument("--preset", help=PRESET_HELP.replace("%", "%%"))
    p.add_argument("--budget", type=int, required=True, help="maximum number of new maps")
    p.add_argument("--strategy", default="auto",
                   help="single, multi, recon, auto (all three), or a mix like single=0.6,recon=0.4")
    p.add_argument("--classes", help="comma-separated classes that may be targeted and pasted (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same plan)")
    p.add_argument("--split", default=None, help="split to balance (default: train, or all if none)")
    p.add_argument("--candidates", type=int, default=8, help="candidate recipes tried per step (default 8)")
    p.add_argument("--scale-range", default="0.6,1.4", metavar="MIN,MAX",
                   help="perspective scale range of pasted layers (default 0.6,1.4)")
    p.add_argument("--horizon", type=float, default=0.4,
                   help="horizon row as a fraction of the height; layers shrink toward it (default 0.4)")
    p.add_argument("--weight-by-iou", metavar="RUN_DIR",
                   help="weight the targeted classes by what this train-seg run gets wrong (1 - its val IoU), so "
                        "the budget goes first to the classes it misses most")
    p.add_argument("--out", required=True, help="plan file to write (JSON)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the predicted shares")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.datasets import open_dataset
    from segbalance.core.datasets.stats import dataset_stats
    from segbalance.core.planning.balance import (
        PRESETS,
        PlaceOptions,
        check_budget,
        parse_strategy,
        parse_target_spec,
        plan_balance,
    )
    from segbalance.core.planning.summaries import classes_line, plan_counts, strategies_line
    from segbalance.core.progress import cli_progress
    from segbalance.core.recombine import build_layer_bank
    from segbalance.core.workspace import Workspace

    check_budget(args.budget)
    if args.candidates <= 0:
        raise SegbalanceError("--candidates must be at least 1")

    try:
        smin, smax = (float(v) for v in args.scale_range.split(","))
    except ValueError:
        raise SegbalanceError(f"--scale-range must be MIN,MAX (got {args.scale_range!r})") from None
    if not 0 < smin <= smax:
        raise SegbalanceError(f"--scale-range needs 0 < MIN <= MAX (got {args.scale_range!r})")
    from segbalance.core.recombine.compose import MAX_LAYER_SCALE

    if smax > MAX_LAYER_SCALE:
        raise SegbalanceError(f"--scale-range MAX must be at most {MAX_LAYER_SCALE} (got {smax:g})")
    out = Path(args.out)
    if out.is_dir():
        raise SegbalanceError("--out is a folder; give the plan file to write, e.g. plan.json", out)
    if not 0 <= args.horizon < 1:
        raise SegbalanceError(f"--horizon must be in [0, 1) (got {args.horizon})")
    opts = PlaceOptions(horizon=args.horizon, scale_min=smin, scale_max=smax)
    ds = open_dataset(args.dataset)
    # cheap checks first: a typo should not wait for the layer bank
    parse_strategy(args.strategy)
    if args.target:
        parse_target_spec(args.target, ds.label_set)
    elif args.preset.split(":")[0].strip() not in PRESETS:
        raise SegbalanceError(f"unknown preset {args.preset!r}; valid presets: {', '.join(PRESETS)}")
    classes = [c for c in args.classes.split(",") if c.strip()] if args.classes else None
    if classes:
        for c in classes:
            ds.label_set.class_named(c)
    weights = None
    if args.weight_by_iou:
        from segbalance.core.planning.balance import iou_weights, run_iou

        weights = iou_weights(run_iou(args.weight_by_iou), [c.name for c in ds.label_set.train_classes])
    with Workspace(args.workspace) as ws:
        with cli_progress("layer bank", "map") as progress:
            bank = build_layer_bank(ds, ws, progress, split=args.split)
        split = None if bank.split == "all" else bank.split
        with cli_progress("stats", "map") as progress:
            stats = dataset_stats(ds, split, workspace=ws, progress=progress)
        with cli_progress("planning", "recipe") as progress:
            plan = plan_balance(stats, bank, args.target or args.preset, args.budget, args.strategy, classes,
                                args.seed, candidates=args.candidates, options=opts, class_weights=weights,
                                progress=progress)
    plan.dataset = str(ds.root)
    plan.save(args.out)
    if args.json:
        print(json.dumps({"n_recipes": len(plan.recipes), "before": plan.before, "after": plan.after,
                          "target": plan.target}))
        return 0
    print(f"{ds.root}  split={bank.split}  recipes={len(plan.recipes)}/{args.budget}  "
          f"objective {plan.objective['before']:.4g} -> {plan.objective['after']:.4g}")
    print(f"{'class':<16}{'before %':>10}{'after %':>10}{'target %':>10}")
    for name in sorted(plan.before, key=lambda k: plan.before[k]):
        t = f"{plan.target[name] * 100:>10.3f}" if name in plan.target else f"{'':>10}"
        mark = " *" if name in plan.target else ""
        print(f"{name:<16}{plan.before[name] * 100:>10.3f}{plan.after[name] * 100:>10.3f}{t}{mark}")
    if plan.class_weights:
        print("class weights (1 - IoU of " + args.weight_by_iou + "): "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(plan.class_weights.items(), key=lambda kv: -kv[1])))
    counts = plan_counts(plan, ds.label_set)  # the same numbers the app's Balance panel shows
    print(f"strategies: {strategies_line(counts)}")
    print(f"adding: {classes_line(counts)}")
    if plan.skipped:
        print(f"left out (no layers to paste in this dataset): {', '.join(plan.skipped)}", file=sys.stderr)
    if len(plan.recipes) < args.budget:
        print(f"stopped after {len(plan.recipes)} recipes: more maps would not bring the shares closer to the "
              "target", file=sys.stderr)
    print(f"plan: {args.out}")
    return 0
