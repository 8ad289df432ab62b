"""PSPNet (Zhao et al., CVPR 2017) on dilated ResNets, written from the paper and the issue's facts.

Backbones: ResNet-18/34 (basic blocks) and ResNet-50/101 (bottlenecks), optionally with the "deep stem"
(three 3x3 convs 64, 64, 128) used by the reference PSPNet code, at output stride 8 (layer3 dilation 2,
layer4 dilation 4, both stride 1) or 16 (layer3 strided, layer4 dilation 2: cheaper per step, see
docs/benchmarks.md, at the price of objects narrower than 16 px). Module names follow the reference/torchvision
state-dict layouts (conv1/bn1[/conv2/bn2/conv3/bn3], layerN.M.convK, downsample.0/1) so pretrained files load
directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segbalance.core.errors import DataError
from segbalance.core.seg import BACKBONES

# blocks per stage and block type of each depth
_DEPTHS = dict(zip(BACKBONES, (
    ("basic", (2, 2, 2, 2)),  # resnet18
    ("basic", (3, 4, 6, 3)),  # resnet34
    ("bottleneck", (3, 4, 6, 3)),  # resnet50
    ("bottleneck", (3, 4, 23, 3)),  # resnet101
), strict=True))
OUTPUT_STRIDE = 8  # the default: layer3 and layer4 dilated, not strided: logits at 1/8 of the input size
OUTPUT_STRIDES = (8, 16)


@dataclass
class PSPNetConfig:
    """Everything needed to rebuild a PSPNet (stored in every checkpoint)."""

    num_classes: int = 19
    backbone: str = "resnet50"
    deep_stem: bool | None = None  # None: deep for 50/101 (reference layout), plain 7x7 for 18/34 (torchvision)
    bins: tuple[int, ...] = (1, 2, 3, 6)
    aux: bool = True
    dropout: float = 0.1
    output_stride: int = OUTPUT_STRIDE  # checkpoints from before this field are at 8

    def __post_init__(self) -> None:
        if self.backbone not in _DEPTHS:
            raise DataError(f"unknown backbone {self.backbone!r}; choose from {', '.join(BACKBONES)}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise DataError(f"output stride must be 8 or 16 (got {self.output_stride})")
        if self.deep_stem is None:
            self.deep_stem = _DEPTHS[self.backbone][0] == "bottleneck"
        self.bins = tuple(int(b) for b in self.bins)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bins"] = list(self.bins)
        return d


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += idt  # in place, as the reference: no extra activation-sized tensor per block (same values)
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        # stride on the 3x3 conv, as in the reference PSPNet ResNets (and torchvision's v1.5)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += idt  # in place, as the reference: no extra activation-sized tensor per block (same values)
        return self.relu(out)


class ResNet(nn.Module):
    """Dilated ResNet trunk at output stride 8 or 16; forward returns (layer3, layer4) features.

    Both strides have the same modules and state-dict keys (only a conv's stride and dilations differ), so
    one ImageNet file serves both.
    """

    def __init__(self, name: str, deep_stem: bool, output_stride: int = OUTPUT_STRIDE) -> None:
        super().__init__()
        kind, layers = _DEPTHS[name]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.deep_stem = deep_stem
        if deep_stem:
            self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.conv2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(64)
            self.conv3 = nn.Conv2d(64, 128, 3, 1, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(128)
            self.inplanes = 128
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.inplanes = 64
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(block, 64, layers[0], 1, 1)
        self.layer2 = self._stage(block, 128, layers[1], 2, 1)
        s3, d3, d4 = (1, 2, 4) if output_stride == 8 else (2, 1, 2)
        self.layer3 = self._stage(block, 256, layers[2], s3, d3)
        self.layer4 = self._stage(block, 512, layers[3], 1, d4)
        self.layer3_channels = 256 * block.expansion
        self.out_channels = 512 * block.expansion
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    def _stage(self, block: type, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, dilation, down)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.deep_stem:
            x = self.relu(self.bn2(self.conv2(x)))
            x = self.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        x = self.layer2(self.layer1(x))
        c3 = self.layer3(x)
        return c3, self.layer4(c3)


class PyramidPooling(nn.Module):
    """Pool to each bin size, reduce to in/len(bins) channels, upsample, concatenate with the input."""

    def __init__(self, in_channels: int, bins: tuple[int, ...]) -> None:
        super().__init__()
        red = in_channels // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, red, 1, bias=False),
                nn.BatchNorm2d(red),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )
        self.out_channels = in_channels + red * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x] + [F.interpolate(s(x), size, mode="bilinear", align_corners=True) for s in self.stages]
        return torch.cat(outs, 1)


def _head(cin: int, mid: int, classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(mid, classes, 1),
    )


class PSPNet(nn.Module):
    """Logits at input resolution; in training mode with aux, returns (main, aux) logits."""

    def __init__(self, config: PSPNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNet(config.backbone, bool(config.deep_stem), config.output_stride)
        self.ppm = PyramidPooling(self.backbone.out_channels, config.bins)
        self.head = _head(self.ppm.out_channels, 512, config.num_classes, config.dropout)
        self.aux = _head(self.backbone.layer3_channels, 256, config.num_classes, config.dropout) if config.aux else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        c3, c4 = self.backbone(x)
        out = F.interpolate(self.head(self.ppm(c4)), size, mode="bilinear", align_corners=True)
        if self.training and self.aux is not None:
            aux = F.interpolate(self.aux(c3), size, mode="bilinear", align_corners=True)
            return out, aux
        return out

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at 10x the base lr (everything but the backbone)."""
        mods = [self.ppm, self.head] + ([self.aux] if self.aux is not None else [])
        return [p for m in mods for p in m.parameters()]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_layout(path: str | Path) -> str:
    """"deep" or "plain": the stem layout of a backbone weights file (so the model can be built to fit it)."""
    sd = _read_backbone_file(Path(path))
    return "deep" if "conv3.weight" in sd and "conv2.weight" in sd else "plain"


def _read_backbone_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError("backbone weights file not found", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise DataError(f"cannot read backbone weights ({type(exc).__name__}: {str(exc)[:120]})", path) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise DataError("not a state dict", path)
    sd: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        for pre in ("module.", "backbone.", "encoder."):
            if k.startswith(pre):
                k = k[len(pre):]
        if k.startswith("fc.") or not torch.is_tensor(v):
            continue
        sd[k] = v
    if "conv1.weight" not in sd or "layer4.0.conv1.weight" not in sd:
        raise DataError("not a ResNet state dict (no conv1/layer4 weights)", path)
    return sd


def load_backbone_weights(model: PSPNet, path: str | Path) -> dict:
    """Load ImageNet weights into the backbone from a local file; returns {"loaded": n, "skipped": [...]}.

    Accepts the reference deep-stem layout (conv1..3/bn1..3) and torchvision's plain layout (7x7 conv1),
    bare or wrapped ({"state_dict": ...}) and with "module."/"backbone." prefixes; the classifier (fc.*)
    is dropped. A file whose stem layout differs from the model's is an error, not a silent partial load.
    """
    path = Path(path)
    sd = _read_backbone_file(path)
    file_deep = "conv3.weight" in sd and "conv2.weight" in sd
    bb = model.backbone
    if file_deep != bb.deep_stem:
        want = "deep-stem (conv1..3)" if bb.deep_stem else "plain 7x7-stem (torchvision)"
        have = "deep-stem" if file_deep else "plain 7x7-stem"
        raise DataError(f"{have} weights do not fit a {model.config.backbone} with a {want} layout", path)
    own = bb.state_dict()
    bad = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if bad or missing:
        what = f"shape mismatch at {bad[0]}" if bad else f"missing {missing[0]} (+{len(missing) - 1} more)"
        raise DataError(f"weights do not fit {model.config.backbone}: {what}", path)
    skipped = [k for k in sd if k not in own]
    bb.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return {"loaded": len(sd) - len(skipped), "skipped": skipped}
