"""pix2pixHD losses: LSGAN, discriminator feature matching, VGG19 perceptual loss, OASIS-style class weights.

The VGG19 weights come from a local file in torchvision's `vgg19` state-dict layout (`features.N.weight`),
never from the network: option `--vgg-weights` or env SEGBALANCE_VGG19.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from segbalance.core.errors import SegbalanceError

VGG_ENV = "SEGBALANCE_VGG19"
# torchvision vgg19 "E" configuration; "M" = 2x2 max pool
_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
# features index right after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (exclusive slice ends)
VGG_SLICES = (2, 7, 12, 21, 30)
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class VGG19Features(nn.Module):
    """VGG19 conv trunk up to relu5_1, indexed like torchvision's `features` so its weights load as-is."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                ch = v
        self.features = nn.Sequential(*layers[: VGG_SLICES[-1]])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations relu1_1..relu5_1 of an image in [-1, 1] (ImageNet-normalised first, as the weights expect)."""
        h = ((x + 1) / 2 - self.mean) / self.std
        out, start = [], 0
        for end in VGG_SLICES:
            for i in range(start, end):
                h = self.features[i](h)
            out.append(h)
            start = end
        return out


def vgg_weights_path(option: str | os.PathLike | None) -> Path | None:
    """The VGG19 weights file from the option, else from $SEGBALANCE_VGG19, else None."""
    p = option or os.environ.get(VGG_ENV)
    return Path(p) if p else None


def load_vgg19(path: str | Path) -> VGG19Features:
    """VGG19 trunk with frozen weights from a torchvision-layout state dict; a wrong file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise SegbalanceError("VGG19 weights file not found", path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise SegbalanceError(f"cannot read VGG19 weights ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                              path) from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise SegbalanceError("VGG19 weights: expected a state dict", path)
    net = VGG19Features()
    want = net.state_dict()
    picked = {k: v for k, v in sd.items() if k in want}
    missing = [k for k in want if k not in picked]
    bad = [k for k in picked if tuple(picked[k].shape) != tuple(want[k].shape)]
    if missing or bad:
        detail = (f"missing {missing[:4]}" if missing else "") + (f" wrong shape {bad[:4]}" if bad else "")
        raise SegbalanceError(f"not torchvision vgg19 weights ({detail.strip()})", path)
    net.load_state_dict(picked)
    net.requires_grad_(False)
    return net.eval()


class VGGLoss(nn.Module):
    """Weighted L1 between VGG19 activations of fake and real (real detached)."""

    def __init__(self, vgg: VGG19Features) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fx, rx = self.vgg(fake), self.vgg(real)
        return sum(w * F.l1_loss(f, r.detach()) for w, f, r in zip(VGG_WEIGHTS, fx, rx, strict=True))


def _weighted_mean(err: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return err.mean()
    w = F.adaptive_avg_pool2d(weight, err.shape[-2:]) if weight.shape[-2:] != err.shape[-2:] else weight
    return (err * w.to(err.dtype)).mean() / w.mean().clamp_min(1e-8)


def lsgan_loss(preds: list[list[torch.Tensor]], target_real: bool, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares GAN loss summed over the discriminator scales (last feature of each scale is the output)."""
    target = 1.0 if target_real else 0.0
    return sum(_weighted_mean((p[-1].float() - target) ** 2, weight) for p in preds)


def feature_matching_loss(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]], n_layers: int,
                          weight: torch.Tensor | None = None, lambda_feat: float = 10.0) -> torch.Tensor:
    """L1 between D's intermediate features on fake and real, weighted 4/(n_layers+1) per layer and 1/num_D."""
    num_d = len(fake)
    w_layer, w_d = 4.0 / (n_layers + 1), 1.0 / num_d
    total = fake[0][0].new_zeros((), dtype=torch.float32)
    for fs, rs in zip(fake, real, strict=True):
        for f, r in zip(fs[:-1], rs[:-1], strict=True):
            total = total + w_d * w_layer * lambda_feat * _weighted_mean((f.float() - r.detach().float()).abs(), weight)
    return total


def l1_loss(fake: torch.Tensor, real: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute pixel error to the real image (class-weighted like the other terms when weights are given).

    pix2pix's content term: a direct pull toward the real colours from the first step, which the adversarial and
    feature terms give only once the discriminator has learned (off by default: it showed no gain in our pilots).
    """
    return _weighted_mean((fake.float() - real.float()).abs(), weight)


def class_balance_weights(label: torch.Tensor, label_nc: int) -> torch.Tensor:
    """OASIS-style per-pixel weights (B,1,H,W): inverse class frequency in the batch, mean 1 over pixels.

    Rare classes get a large weight so the generator is pushed hardest where data is scarce.
    """
    lab = label.long().clamp(0, label_nc)  # ids outside the one-hot share one extra bin
    counts = torch.bincount(lab.reshape(-1), minlength=label_nc + 1).float()
    present = (counts > 0).sum().clamp_min(1)
    coef = torch.where(counts > 0, lab.numel() / (present * counts.clamp_min(1)), torch.zeros_like(counts))
    return coef[lab].unsqueeze(1)
