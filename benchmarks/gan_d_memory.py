"""Does a trained pix2pixHD discriminator remember its training images? Prints figures, asserts nothing.

For each train-gan output folder (its ckpt.pt), the discriminator's mean output on real (label, image) pairs of
the train split against the same number of real pairs of another split. D is trained to output 1 on real pairs
wherever they come from, so a train score above the held-out one is memory of the training images, the small-data
failure that augmenting D's input (train-gan --d-augment) is meant to prevent.

    python benchmarks/gan_d_memory.py --dataset DS RUN_DIR [RUN_DIR ...] [--images 60] [--held-out val]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from segbalance.core.datasets import open_dataset
from segbalance.core.render.gan_train import CKPT_NAME, GANTrainConfig, PairSource
from segbalance.core.render.pix2pixhd import label_input, read_checkpoint
from segbalance.core.render.pix2pixhd_nets import build_discriminator


def d_scores(run: Path, ds, split: str, n: int) -> np.ndarray:
    """Per-pair mean over D's scales and patches of its last output, on n real pairs of a split."""
    ckpt = read_checkpoint(run / CKPT_NAME)
    cfg = GANTrainConfig.from_dict(ckpt["config"])
    D = build_discriminator(cfg.arch)
    D.load_state_dict(ckpt["D"])
    D.eval()
    src = PairSource(ds, split, cfg.size, cfg.seed, flip=False)
    out = []
    with torch.inference_mode():
        for i in range(min(n, len(src.refs))):
            lab, inst, img = src.load(i)
            x = label_input(torch.from_numpy(lab)[None].long(), torch.from_numpy(inst)[None], cfg.arch)
            real = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
            preds = D(torch.cat([x, real], 1))
            out.append(float(np.mean([p[-1].float().mean().item() for p in preds])))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="train-gan --out folders")
    ap.add_argument("--dataset", required=True, help="the dataset the runs trained on")
    ap.add_argument("--images", type=int, default=60, help="real pairs per split")
    ap.add_argument("--held-out", default="val", help="the split D never saw")
    args = ap.parse_args()
    ds = open_dataset(args.dataset)
    print(f"D's mean output on {args.images} real pairs (target 1 for real); gap = train - {args.held_out}, "
          "with a 95% bootstrap interval over the pairs")
    print(f"| run | iteration | train | {args.held_out} | gap |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for run in args.runs:
        tr, ho = d_scores(run, ds, "train", args.images), d_scores(run, ds, args.held_out, args.images)
        boots = [rng.choice(tr, tr.size).mean() - rng.choice(ho, ho.size).mean() for _ in range(1000)]
        lo, hi = np.percentile(boots, [2.5, 97.5])
        it = read_checkpoint(run / CKPT_NAME)["iteration"]
        print(f"| {run} | {it} | {tr.mean():.3f} | {ho.mean():.3f} | {tr.mean() - ho.mean():+.3f} "
              f"[{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    main()
