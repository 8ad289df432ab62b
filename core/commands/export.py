"""segbalance export: originals + generated pairs in the layout a trainer reads (cityscapes, mmseg, hf)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the augmented dataset (Cityscapes, mmseg or Hugging Face Parquet "
                                      "layout, with a provenance manifest)")
    p.add_argument("--workspace", required=True)
    p.add_argument("--dataset", required=True, help="the original dataset")
    p.add_argument("--out", required=True,
                   help="output folder: new, empty, or an earlier export (a re-export replaces the files that "
                        "export wrote; a folder holding anything else is refused)")
    p.add_argument("--format", default="cityscapes", choices=["cityscapes", "mmseg", "hf"],
                   help="cityscapes: leftImg8bit/gtFine + lists; mmseg: img_dir/ann_dir + config fragment; "
                        "hf: Parquet shards + id2label.json (default cityscapes)")
    p.add_argument("--include", default="pending,accepted",
                   help="pair statuses to include (default pending,accepted)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--link", action="store_true",
                     help="hard-link the dataset's PNG files and the pairs instead of copying them (saves space, "
                          "but then editing an exported file in place edits the original)")
    how.add_argument("--copy", action="store_true",
                     help="copy files (the default; kept for scripts written when hard links were the default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from segbalance.core.datasets import open_dataset
    from segbalance.core.export.formats import export_dataset
    from segbalance.core.progress import cli_progress
    from segbalance.core.workspace import Workspace

    include = tuple(s.strip() for s in args.include.split(",") if s.strip())
    ds = open_dataset(args.dataset)
    with Workspace(args.workspace, create=False) as ws, cli_progress("exporting", "sample") as progress:
        man = export_dataset(ws, ds, args.out, include, fmt=args.format, link=args.link,
                             progress=progress)
    print(f"exported {man['originals']} original + {man['generated']} generated samples to {args.out} "
          f"({args.format}; provenance in {man['provenance']})")
    out = Path(args.out).resolve()
    if args.format == "mmseg":
        print(f"mmseg config fragment ({out / 'mmseg_config.py'}):")
        print((out / "mmseg_config.py").read_text(), end="")
    elif args.format == "hf":
        files = {k: [str(out / f) for f in v] for k, v in man["data_files"].items()}
        print(f'load with: datasets.load_dataset("parquet", data_files={files!r}); '
              f"labels in {out / 'id2label.json'}")
    return 0
