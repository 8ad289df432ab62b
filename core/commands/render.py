"""segbalance render LABEL_DIR: batch-render label maps (+ instance maps) into photos with pix2pixHD."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from segbalance.core.runs.amp import AMP_HELP, AMP_MODES

LABEL_SUFFIX = re.compile(r"(_gtFine)?_labelIds$")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 1024x512, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render label maps into photos with a pix2pixHD checkpoint",
                       description="Render every label-id PNG under LABEL_DIR (instance maps are taken from "
                                   "*_instanceIds.png siblings). Outputs keep the sub-folders: OUT/<name>.png.")
    p.add_argument("label_dir", help="folder of label-id PNGs (searched recursively)")
    p.add_argument("--checkpoint", required=True,
                   help="train-gan ckpt.pt, or a bare G state dict such as the official latest_net_G.pth")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch", type=int, default=1, help="label maps per forward pass (default 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:N (default auto)")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP)
    p.add_argument("--size", type=_size, help="render size WxH (default: the training size; 1024x512 for a bare "
                                              "global G, 2048x1024 for a local one)")
    p.add_argument("--label-nc", type=int, help="describe a bare state dict: one-hot channels (official: 35)")
    p.add_argument("--ngf", type=int,
                   help="describe a bare state dict: generator width (official: 64 global, 32 local)")
    p.add_argument("--netG", choices=["global", "local"], help="describe a bare state dict: generator type")
    p.add_argument("--n-downsample", type=int, help="describe a bare state dict: downsamplings of the global G")
    p.add_argument("--n-blocks", type=int, help="describe a bare state dict: residual blocks of the global G")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator (slow first batch)")
    p.add_argument("--seed", type=int, default=0, help="seed for instance-feature sampling")
    p.set_defaults(func=run)


def _label_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.png") if not p.stem.endswith(("instanceIds", "labelTrainIds", "color"))
                  and not p.name.startswith("."))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from segbalance.core.errors import SegbalanceError
    from segbalance.core.io import read_label_png, write_png
    from segbalance.core.render.pix2pixhd import load_renderer
    from segbalance.core.render.registry import check_label_nc
    from segbalance.core.runs.runtime import resolve_device

    resolve_device(args.device)  # the one device resolver: a bad --device is one line, first
    root = Path(args.label_dir)
    if not root.is_dir():
        raise SegbalanceError("label folder not found", root)
    if args.batch <= 0:
        raise SegbalanceError("--batch must be positive")
    files = _label_files(root)
    if not files:
        raise SegbalanceError("no label PNGs found", root)
    renderer = load_renderer(args.checkpoint, args.device, size=args.size, amp=args.amp, compile=args.compile,
                             seed=args.seed, label_nc=args.label_nc, ngf=args.ngf, netG=args.netG,
                             n_downsample_global=args.n_downsample, n_blocks_global=args.n_blocks)
    # one pass over the maps before any output: a map the generator cannot represent stops the run here
    top, top_file = -1, files[0]
    for f in files:
        lab = read_label_png(f)
        if lab.dtype != "uint8":
            raise SegbalanceError(f"label ids up to {int(lab.max())} do not fit 0..255", f)
        if int(lab.max()) > top:
            top, top_file = int(lab.max()), f
    check_label_nc(renderer.label_nc, top + 1, f"label map {top_file}", args.checkpoint)
    out = Path(args.out)
    with tqdm(total=len(files), desc="render", unit="img", file=sys.stderr, dynamic_ncols=True) as bar:
        for i in range(0, len(files), args.batch):
            chunk = files[i:i + args.batch]
            labels, insts = [], []
            for f in chunk:
                labels.append(read_label_png(f))
                inst_path = f.with_name(f.name.replace("labelIds", "instanceIds"))
                insts.append(read_label_png(inst_path).astype("int32")
                             if inst_path != f and inst_path.exists() else None)
            for f, img in zip(chunk, renderer.render_batch(labels, insts), strict=True):
                rel = f.relative_to(root)
                name = LABEL_SUFFIX.sub("", rel.stem) + ".png"
                write_png(out / rel.parent / name, img, rgb=True)
            bar.update(len(chunk))
    print(f"rendered {len(files)} images into {out} (device {renderer.device}, "
          f"size {renderer.size[0]}x{renderer.size[1]}, checkpoint sha256 {renderer.checkpoint_sha256[:12]})")
    print(f"segbalance render: {renderer.precision.line()}", file=sys.stderr)  # after success: errors stay one line
    return 0
