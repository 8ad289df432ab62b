"""pix2pixHD networks (Wang et al., CVPR 2018): generators, instance-feature encoder, multiscale discriminator.

Module and attribute names follow the official release (`model.N...`, `model1_1`, `scale0_layer0`) so its
state dicts load without conversion. Norm is InstanceNorm2d without affine parameters, as in the released models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn.utils import parametrize


@dataclass
class Pix2PixHDConfig:
    """Architecture of one pix2pixHD model; defaults are the official 512p Cityscapes generator."""

    netG: str = "global"  # "global" (512p) or "local" (1024p: global G inside a local enhancer)
    label_nc: int = 35  # one-hot channels over label ids 0..label_nc-1
    use_instance: bool = True  # add the instance-boundary (edge) channel
    feat_num: int = 0  # instance-wise encoder features fed to G (official: 3 when enabled, 0 = off)
    output_nc: int = 3
    ngf: int = 64
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 1
    n_blocks_local: int = 3
    nef: int = 16
    n_downsample_E: int = 4
    ndf: int = 64
    n_layers_D: int = 3
    num_D: int = 2
    # "transpose": the official stride-2 transposed convs (their uneven overlap paints a checkerboard);
    # "resize": nearest 2x upsampling then a 3x3 conv, which cannot (Odena et al., Distill 2016). Only
    # "transpose" loads official checkpoints, so it stays the default and the official presets keep it.
    upsample: str = "transpose"
    # the decoder also sees the generator's input (one-hot + edge [+ features]) average-pooled to each upsampling
    # stage's scale, concatenated before that stage's conv: layout fed only at the input must survive the
    # bottleneck, which a short CPU schedule does not teach (CRN, SPADE). Global resize-conv generators only;
    # the official presets keep it off, so their checkpoints load unchanged
    label_skips: bool = False
    # Gaussian noise channels that join the label skips (not the front, so the first conv keeps its shape): a
    # deterministic G can only imitate per-pixel grain with a periodic pattern, which late in a short run turns
    # into a regular grid; with noise it can draw grain. Appended after the input's channels; needs label_skips
    noise_nc: int = 0
    # spectral normalisation of D's normalised convs (every stage but the first and the last, SPADE's layout):
    # bounds D's Lipschitz constant, against D outrunning G on a small training set. Changes D's state-dict
    # keys, so the official presets keep it off
    spectral_norm_D: bool = False

    @property
    def label_channels(self) -> int:
        """Channels describing the label map alone (one-hot + edge): what D sees besides RGB."""
        return self.label_nc + (1 if self.use_instance else 0)

    @property
    def input_nc(self) -> int:
        return self.label_channels + self.feat_num

    @property
    def g_input_nc(self) -> int:
        """Channels of the tensor G is called with: its input plus the noise channels at the end."""
        return self.input_nc + self.noise_nc

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this so down- and up-sampling return the same size."""
        local = self.n_local_enhancers if self.netG == "local" else 0
        return 2 ** (self.n_downsample_global + local)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Pix2PixHDConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=False)


class ResnetBlock(nn.Module):
    """Two reflect-padded 3x3 convs with an identity skip; `conv_block` keys as released."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class LabelSkip(nn.Module):
    """Marks where GlobalGenerator concatenates its pooled input; alone it passes features through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _up(ch_in: int, ch_out: int, mode: str, skip_nc: int = 0) -> list[nn.Module]:
    """One 2x upsampling stage with its norm and ReLU (resize: `skip_nc` input channels join before the conv)."""
    if mode == "transpose":
        if skip_nc:
            raise ValueError("label_skips needs upsample='resize'")
        conv: list[nn.Module] = [nn.ConvTranspose2d(ch_in, ch_out, 3, stride=2, padding=1, output_padding=1)]
    elif mode == "resize":
        skip: list[nn.Module] = [LabelSkip()] if skip_nc else []
        conv = [nn.Upsample(scale_factor=2, mode="nearest"), *skip, nn.ReflectionPad2d(1),
                nn.Conv2d(ch_in + skip_nc, ch_out, 3)]
    else:
        raise ValueError(f"upsample must be 'transpose' or 'resize', not {mode!r}")
    return [*conv, _norm(ch_out), nn.ReLU(True)]


def _global_layers(input_nc: int, output_nc: int, ngf: int, n_down: int, n_blocks: int,
                   upsample: str = "transpose", label_skips: bool = False, noise_nc: int = 0) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), _norm(ngf), nn.ReLU(True)]
    for i in range(n_down):
        ch = ngf * 2**i
        layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
    ch = ngf * 2**n_down
    layers += [ResnetBlock(ch) for _ in range(n_blocks)]
    for i in range(n_down):
        ch = ngf * 2 ** (n_down - i)
        layers += _up(ch, ch // 2, upsample, input_nc + noise_nc if label_skips else 0)
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    return layers


class GlobalGenerator(nn.Module):
    """The 512p generator: conv front, strided downsampling, residual blocks, transposed-conv upsampling."""

    def __init__(self, input_nc: int, output_nc: int = 3, ngf: int = 64, n_downsampling: int = 4,
                 n_blocks: int = 9, upsample: str = "transpose", label_skips: bool = False,
                 noise_nc: int = 0) -> None:
        super().__init__()
        if noise_nc and not label_skips:
            raise ValueError("noise_nc needs label_skips (the noise joins the generator at its skips)")
        self.input_nc, self.noise_nc = input_nc, noise_nc
        self.model = nn.Sequential(*_global_layers(input_nc, output_nc, ngf, n_downsampling, n_blocks, upsample,
                                                   label_skips, noise_nc))
        self.skips = [i for i, m in enumerate(self.model) if isinstance(m, LabelSkip)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_nc [+ noise_nc], H, W); the noise channels, last, go to the skips only."""
        return self.decode(x[:, : self.input_nc], 0, x)

    def decode(self, h: torch.Tensor, start: int, x: torch.Tensor) -> torch.Tensor:
        """Run `model[start:]` on h; x (the full-resolution input, noise last) feeds the label skips: the input
        average-pooled to each stage's scale, the noise subsampled (pooling would shrink its variance)."""
        if not self.skips:
            return self.model[start:](h)
        lab, noise = x[:, : self.input_nc], x[:, self.input_nc:]
        for i in range(start, len(self.model)):
            if i in self.skips:
                size = h.shape[-2:]
                parts = [h, (lab if lab.shape[-2:] == size else
                             nn.functional.adaptive_avg_pool2d(lab, size)).to(h.dtype)]
                if self.noise_nc:
                    step = noise.shape[-1] // size[-1]
                    parts.append(noise[..., ::step, ::step].to(h.dtype))
                h = torch.cat(parts, 1)
            h = self.model[i](h)
        return h


class LocalEnhancer(nn.Module):
    """The 1024p generator: a 2*ngf global G (without its output layers) on the half-size input, refined by a
    full-resolution local branch whose features are added to the global ones."""

    def __init__(self, input_nc: int, output_nc: int = 3, ngf: int = 32, n_downsample_global: int = 4,
                 n_blocks_global: int = 9, n_local_enhancers: int = 1, n_blocks_local: int = 3,
                 upsample: str = "transpose") -> None:
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        ngf_global = ngf * 2**n_local_enhancers
        glob = _global_layers(input_nc, output_nc, ngf_global, n_downsample_global, n_blocks_global, upsample)
        self.model = nn.Sequential(*glob[:-3])
        for n in range(1, n_local_enhancers + 1):
            ch = ngf * 2 ** (n_local_enhancers - n)
            down = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ch, 7), _norm(ch), nn.ReLU(True),
                    nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
            up: list[nn.Module] = [ResnetBlock(ch * 2) for _ in range(n_blocks_local)]
            up += _up(ch * 2, ch, upsample)
            if n == n_local_enhancers:
                up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
            setattr(self, f"model{n}_1", nn.Sequential(*down))
            setattr(self, f"model{n}_2", nn.Sequential(*up))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            inp = pyramid[self.n_local_enhancers - n]
            out = getattr(self, f"model{n}_2")(getattr(self, f"model{n}_1")(inp) + out)
        return out


def instance_mean(feat: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
    """Replace each pixel's features by the mean over its instance (differentiable, one pass per image)."""
    b, c, h, w = feat.shape
    out = []
    for i in range(b):
        _, inv = torch.unique(inst[i].reshape(-1), return_inverse=True)
        n = int(inv.max()) + 1
        f = feat[i].reshape(c, -1)
        sums = torch.zeros(c, n, dtype=f.dtype, device=f.device).index_add(1, inv, f)
        counts = torch.bincount(inv, minlength=n).to(f.dtype).clamp_min(1)
        out.append((sums / counts)[:, inv].reshape(c, h, w))
    return torch.stack(out)


class Encoder(nn.Module):
    """Image -> low-dimensional per-instance features (instance-averaged), for diverse outputs at inference."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 16, n_downsampling: int = 4) -> None:
        super().__init__()
        self.output_nc = output_nc
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), _norm(ngf), nn.ReLU(True)]
        for i in range(n_downsampling):
            ch = ngf * 2**i
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
        for i in range(n_downsampling):
            ch = ngf * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1), _norm(ch // 2),
                       nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
        return instance_mean(self.model(image), inst)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: 4x4 convs (padding 2), the last two with stride 1; each stage kept for feature matching."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, spectral_norm: bool = False) -> None:
        super().__init__()
        self.n_stages = n_layers + 2
        stages: list[list[nn.Module]] = [[nn.Conv2d(input_nc, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True)]]
        nf = ndf
        for n in range(1, n_layers + 1):
            prev, nf = nf, min(nf * 2, 512)
            stride = 2 if n < n_layers else 1
            conv = nn.Conv2d(prev, nf, 4, stride=stride, padding=2)
            if spectral_norm:
                conv = nn.utils.parametrizations.spectral_norm(conv)
            stages.append([conv, _norm(nf), nn.LeakyReLU(0.2, True)])
        stages.append([nn.Conv2d(nf, 1, 4, stride=1, padding=2)])
        for i, st in enumerate(stages):
            setattr(self, f"model{i}", nn.Sequential(*st))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i in range(self.n_stages):
            x = getattr(self, f"model{i}")(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """num_D PatchGANs on successively average-pooled inputs; returns every stage's features per scale."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, num_D: int = 2,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        self.num_D = num_D
        self.n_stages = n_layers + 2
        for i in range(num_D):
            d = NLayerDiscriminator(input_nc, ndf, n_layers, spectral_norm)
            for j in range(self.n_stages):
                # the release flattens each scale's stages into scale{i}_layer{j}
                setattr(self, f"scale{i}_layer{j}", getattr(d, f"model{j}"))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for i in range(self.num_D):
            scale = self.num_D - 1 - i  # the release runs its last-built D on full resolution
            feats, h = [], x
            for j in range(self.n_stages):
                h = getattr(self, f"scale{scale}_layer{j}")(h)
                feats.append(h)
            results.append(feats)
            if i != self.num_D - 1:
                x = self.downsample(x)
        return results


def build_generator(cfg: Pix2PixHDConfig) -> nn.Module:
    if cfg.netG == "global":
        return GlobalGenerator(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.n_downsample_global, cfg.n_blocks_global,
                               cfg.upsample, cfg.label_skips, cfg.noise_nc)
    if cfg.label_skips or cfg.noise_nc:
        raise ValueError("label_skips and noise_nc are for the global generator only")
    if cfg.netG == "local":
        return LocalEnhancer(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.n_downsample_global, cfg.n_blocks_global,
                             cfg.n_local_enhancers, cfg.n_blocks_local, cfg.upsample)
    raise ValueError(f"netG must be 'global' or 'local', not {cfg.netG!r}")


def build_discriminator(cfg: Pix2PixHDConfig) -> MultiscaleDiscriminator:
    return MultiscaleDiscriminator(cfg.label_channels + cfg.output_nc, cfg.ndf, cfg.n_layers_D, cfg.num_D,
                                   bool(cfg.spectral_norm_D))


def build_encoder(cfg: Pix2PixHDConfig) -> Encoder | None:
    if cfg.feat_num <= 0:
        return None
    return Encoder(cfg.output_nc, cfg.feat_num, cfg.nef, cfg.n_downsample_E)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())



def init_weights(module: nn.Module) -> None:
    """The release's initialisation: conv weights N(0, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            # a spectrally normalised conv computes .weight from .original, which is what is initialised
            nn.init.normal_(m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight")
                            else m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
