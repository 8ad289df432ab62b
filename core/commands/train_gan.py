"""segbalance train-gan DATASET: train pix2pixHD (CPU, one GPU, or several through torchrun)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from segbalance.core.runs.amp import AMP_HELP, AMP_MODES


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 256x128, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def _d_augment(text: str) -> str:
    """A canonical policy, or 'off' (None would mean 'the preset's default')."""
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.render.gan_augment import parse_policy

    try:
        return parse_policy(text) or "off"
    except SegbalanceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ema(text: str) -> float:
    """A decay in (0, 1), or 0.0 for 'off' (None would mean 'the preset's default')."""
    if text.lower() == "off":
        return 0.0
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a decay such as 0.999 or 'off', got {text!r}") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"the decay must lie between 0 and 1 (exclusive), got {text!r}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-gan", help="train the pix2pixHD renderer on a dataset",
                       description="Train pix2pixHD. Multi-GPU: torchrun --nproc_per_node N -m core.cli train-gan ...")
    p.add_argument("dataset", help="dataset folder (Cityscapes layout or images/ + masks/ + classes.json)")
    p.add_argument("--workspace", required=True, help="workspace folder: loss curves go to its database")
    p.add_argument("--out", required=True, help="checkpoint folder (ckpt.pt, latest_net_G.pth, latest_net_D.pth)")
    p.add_argument("--size", type=_size, default=(256, 128), help="training size WxH (default 256x128)")
    p.add_argument("--crop", type=_size, metavar="WxH",
                   help="train on random WxH crops of the --size pairs, as the release's fineSize: G and D are "
                        "fully convolutional, so a half-area crop runs twice the iterations in the same time "
                        "(default: whole pairs)")
    p.add_argument("--preset", choices=["tiny", "512p", "1024p"], default="tiny",
                   help="architecture: tiny (CPU minutes), 512p or 1024p (the official models)")
    n = p.add_mutually_exclusive_group()
    n.add_argument("--iters", type=int, help="iterations (default: 2000 for tiny, else 200 epochs)")
    n.add_argument("--epochs", type=int, help="epochs over the split")
    p.add_argument("--batch", type=int, default=1, help="batch size per process (default 1, as the paper)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:N (default auto)")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help=AMP_HELP)
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt exactly where it stopped")
    p.add_argument("--label-nc", type=int, help="one-hot channels (default: 35 for Cityscapes, else max id + 1)")
    p.add_argument("--features", action="store_true", help="instance-wise encoder features (3) for diverse outputs")
    p.add_argument("--vgg-weights", help="torchvision vgg19 state dict for the perceptual loss "
                                         "(default $SEGBALANCE_VGG19; without it the VGG loss is off)")
    p.add_argument("--class-balance", action="store_true",
                   help="OASIS-style inverse class-frequency weights on the adversarial and feature losses")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lr-d", type=float, help="discriminator learning rate (default: --lr)")
    p.add_argument("--lambda-l1", type=float, help="weight of the pixel L1 loss to the real image "
                                                 "(default 0 = off, as the official models)")
    p.add_argument("--ema", type=_ema, metavar="DECAY|off",
                   help="render with an exponential moving average of G's weights, updated every step with this "
                        "decay (warmed up over the first steps); 'off' renders the trained weights, as the release "
                        "(default: the preset's)")
    p.add_argument("--ema-warmup", choices=["short", "debias"],
                   help="how the average starts: short weighs step t by at most (1+t)/(10+t), so over a few thousand "
                        "steps it spans about the run's last ninth; debias spans ~1/(1-DECAY) steps from the start "
                        "(default: the preset's)")
    p.add_argument("--spectral-norm-d", action=argparse.BooleanOptionalAction,
                   help="spectral normalisation of the discriminator's normalised convs (changes D's state-dict "
                        "keys; default: the preset's, off in every preset)")
    p.add_argument("--d-augment", type=_d_augment, metavar="POLICY|off",
                   help="differentiable augmentation of the discriminator's input against its memorising a small "
                        "training set: translation, cutout or both, comma separated; 'off' as the release "
                        "(default: the preset's)")
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=500, help="checkpoint every N iterations (default 500)")
    p.add_argument("--save-every-s", type=float, default=60.0, metavar="SECONDS",
                   help="also checkpoint when this many seconds passed since the last one, so a stop loses at "
                        "most that much work (default 60; 0 = by iterations only)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    import torch
    from tqdm import tqdm

    from segbalance.core.datasets import open_dataset
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.render.gan_train import generator_label_nc, make_config, train_gan

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = open_dataset(args.dataset)
    from segbalance.core.workspace import check_apart

    check_apart(dataset=args.dataset, workspace=args.workspace, out=args.out)
    label_nc = args.label_nc or generator_label_nc(ds.label_set)
    for name in ("iters", "epochs", "batch", "save_every", "lr", "lr_d"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise SegbalanceError(f"--{name.replace('_', '-')} must be positive")
    if args.lambda_l1 is not None and args.lambda_l1 < 0:
        raise SegbalanceError("--lambda-l1 must be 0 or more")
    arch = {"feat_num": 3 if args.features else 0}
    if args.spectral_norm_d is not None:
        arch["spectral_norm_D"] = args.spectral_norm_d
    cfg = make_config(args.preset, label_nc=label_nc, arch=arch,
                      size=args.size, crop=args.crop, iters=args.iters, epochs=args.epochs, batch_size=args.batch,
                      device=args.device, amp=args.amp, vgg_weights=args.vgg_weights,
                      class_balance=args.class_balance, lr=args.lr, lr_d=args.lr_d, lambda_l1=args.lambda_l1,
                      ema=args.ema, ema_warmup=args.ema_warmup, d_augment=args.d_augment, split=args.split,
                      seed=args.seed,
                      save_every=args.save_every, save_every_s=args.save_every_s)
    master = os.environ.get("RANK", "0") == "0"
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.quiet or not master:
            return
        if bar is None:
            bar = tqdm(total=total, initial=done - 1, desc="train-gan", unit="it", file=sys.stderr,
                       dynamic_ncols=True)
        bar.update(done - bar.n)

    def log(done: int, losses: dict[str, float]) -> None:
        if bar is not None:
            bar.set_postfix({"G": f"{losses['loss_G_GAN']:.3f}", "Feat": f"{losses['loss_G_GAN_Feat']:.2f}",
                             "VGG": f"{losses['loss_G_VGG']:.2f}",
                             "D": f"{0.5 * (losses['loss_D_real'] + losses['loss_D_fake']):.3f}",
                             "L1": f"{losses['l1']:.3f}"}, refresh=False)

    def show(message, *_args, **_kw) -> None:
        print(f"segbalance train-gan: warning: {message}", file=sys.stderr)

    # SIGTERM (the desktop app's cancel) and a first Ctrl-C stop after the current step with a checkpoint saved;
    # a second Ctrl-C stops at once
    stop = []

    def on_signal(signum, _frame) -> None:
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = show
            res = train_gan(ds, args.workspace, args.out, cfg, resume=args.resume, progress=progress, log=log,
                            cancel=lambda: bool(stop))
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
    if master:
        last = res.history[-1] if res.history else {}
        print(f"trained {res.iteration} iterations; checkpoint {res.checkpoint}; generator {res.generator}"
              + (f"; last L1 {last['l1']:.4f}" if last else "") + (f"; {res.precision}" if res.precision else ""))
    return 0
