"""segbalance stats DATASET: per-class pixel share and image frequency."""

from __future__ import annotations

import argparse
import json
import sys

from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.stats import dataset_stats
from segbalance.core.progress import cli_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="per-class pixel share and image frequency of a dataset")
    p.add_argument("dataset", help="dataset folder (Cityscapes layout, or images/ + masks/ + classes.json)")
    p.add_argument("--split", default="train", help="split to measure (default: train; 'all' for every split)")
    p.add_argument("--workspace", help="workspace folder: caches per-sample counts in its database")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="PNG", help="write a bar chart of pixel shares (log scale, class colours)")
    p.add_argument("--workers", type=int, default=None, help="parallel worker processes (default: all cores)")
    p.add_argument("--daformer", metavar="DIR", help="also write DAFormer's sample_class_stats.json and "
                   "samples_with_class.json (train ids, for rare-class sampling) into DIR")
    p.add_argument("--skip-bad", action="store_true", help="report and skip bad samples instead of stopping")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = open_dataset(args.dataset)
    ws = None
    if args.workspace:
        from segbalance.core.workspace import Workspace

        ws = Workspace(args.workspace)
    split = None if args.split == "all" else args.split
    try:
        with cli_progress("scanning", "img") as progress:
            st = dataset_stats(ds, split, workspace=ws, workers=args.workers, skip_bad=args.skip_bad,
                               progress=progress)
    finally:
        if ws is not None:
            ws.close()
    for b in st.bad:
        print(f"skipped: {b.error}", file=sys.stderr)
    if st.bad and st.n_images == 0:  # nothing measured: no table, plot or DAFormer files to trust
        from segbalance.core.errors import DataError

        raise DataError(f"every label map of split {st.split} was skipped as bad ({len(st.bad)}); nothing was "
                        "measured", ds.root)
    classes = st.classes()
    if args.daformer:
        from segbalance.core.datasets.stats import write_daformer_stats

        written = write_daformer_stats(args.daformer, ds, st)
        print("DAFormer class stats: " + ", ".join(str(p) for p in written), file=sys.stderr)
    if args.plot:
        from segbalance.core.plots import bar_chart

        shown = sorted((c for c in classes if c["train_id"] != 255), key=lambda c: -c["pixels"])
        bar_chart(
            args.plot,
            [c["name"] for c in shown],
            [max(c["pixel_share"] * 100, 1e-6) for c in shown],
            [ds.label_set.by_id[c["id"]].color for c in shown],
            title=f"{ds.root.name} [{st.split}]: pixel share per class ({st.n_images} images)",
            ylabel="% of labeled pixels (log)",
        )
    if args.json:
        print(json.dumps(st.to_json()))
        return 0
    evald = sorted((c for c in classes if c["train_id"] != 255), key=lambda c: (c["pixels"], c["id"]))
    void = [c for c in classes if c["train_id"] == 255 and c["pixels"]]
    print(f"{ds.root}  split={st.split}  images={st.n_images}  labeled pixels={st.labeled_pixels:,}"
          f"  (cached {st.cached}/{st.n_images})")
    print(f"{'class':<16}{'id':>4}{'train':>6}{'pixels':>15}{'share %':>10}{'images':>8}{'img %':>8}")
    n = max(1, st.n_images)
    for c in evald:
        print(f"{c['name']:<16}{c['id']:>4}{c['train_id']:>6}{c['pixels']:>15,}{c['pixel_share'] * 100:>10.3f}"
              f"{c['images']:>8}{c['images'] / n * 100:>8.1f}")
    if void:
        print("void classes (not evaluated): " + ", ".join(f"{c['name']} {c['pixels']:,}" for c in void))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
