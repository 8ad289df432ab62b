"""pix2pixHD rendering: label (+instance) maps -> photos, from our checkpoints or the official release's.

`load_renderer(checkpoint)` accepts either a training checkpoint of `segbalance train-gan` (architecture, size
and feature clusters inside) or a bare generator state dict such as the official `latest_net_G.pth`, whose
architecture is read from the tensor shapes unless given (`label_nc=`, `ngf=`, `netG=`, ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from segbalance.core.errors import SegbalanceError
from segbalance.core.render.pix2pixhd_nets import (
    Pix2PixHDConfig,
    build_generator,
)
from segbalance.core.runs.runtime import (
    CHANNELS_LAST,
    choose_precision,
    file_sha256,
    load_checkpoint,
    load_state_checked,
    resolve_device,
)

# default render sizes (W, H) of the released models when a bare state dict does not say
DEFAULT_SIZE = {"global": (1024, 512), "local": (2048, 1024)}


# -- inputs --------------------------------------------------------------------------------------------
def edge_map(inst: torch.Tensor) -> torch.Tensor:
    """Instance boundaries (float 0/1, same shape): a pixel whose id differs from any 4-neighbour, both sides."""
    e = torch.zeros(inst.shape, dtype=torch.bool, device=inst.device)
    dh = inst[..., :, 1:] != inst[..., :, :-1]
    dv = inst[..., 1:, :] != inst[..., :-1, :]
    e[..., :, 1:] |= dh
    e[..., :, :-1] |= dh
    e[..., 1:, :] |= dv
    e[..., :-1, :] |= dv
    return e.float()


def one_hot(label: torch.Tensor, label_nc: int) -> torch.Tensor:
    """(B,H,W) ids -> (B,label_nc,H,W) one-hot; ids >= label_nc (e.g. 255 ignore) get all-zero vectors."""
    lab = label.long()
    valid = (lab < label_nc).unsqueeze(1).float()
    out = torch.zeros(lab.shape[0], label_nc, *lab.shape[1:], device=lab.device)
    return out.scatter_(1, lab.clamp(0, label_nc - 1).unsqueeze(1), valid)


def label_input(label: torch.Tensor, inst: torch.Tensor | None, cfg: Pix2PixHDConfig) -> torch.Tensor:
    """G's and D's label channels: one-hot plus the edge map (instance map, or the label map when there is none)."""
    x = one_hot(label, cfg.label_nc)
    if cfg.use_instance:
        x = torch.cat([x, edge_map(label if inst is None else inst).unsqueeze(1)], 1)
    return x


def instance_class(inst: np.ndarray) -> np.ndarray:
    """Class id of each instance-map value (Cityscapes: id for stuff, id*1000+k for things)."""
    inst = np.asarray(inst).astype(np.int64)
    return np.where(inst >= 1000, inst // 1000, inst)


class LabelTableFront:
    """G's first layer (reflect-pad 3 + 7x7 conv over one-hot + edge channels) as an exact table lookup.

    Every input pixel is one-hot, so each of the 49 taps adds one weight column chosen by the pixel's (label,
    edge) code: an embedding-bag sum replaces 2*49*C_in*ngf FLOPs per pixel with 49*ngf adds (30 of the 512p
    G's 245 GFLOP at 256x512, and most of the 1024p local branch's front). Accumulates in fp32 whatever the
    generator's dtype, so under bf16 it is more accurate than the conv it replaces.
    """

    def __init__(self, conv: nn.Conv2d, label_nc: int, use_instance: bool) -> None:
        w = conv.weight.detach().float()  # (ngf, label_nc [+ 1], 7, 7)
        ngf, taps = w.shape[0], w.shape[2] * w.shape[3]
        self.k, self.label_nc, self.use_instance = w.shape[2], label_nc, use_instance
        cols = w.permute(2, 3, 1, 0).reshape(taps, w.shape[1], ngf)  # tap, input channel, output channel
        rows = label_nc + 1  # codes 0..label_nc-1 are classes, label_nc is "no class" (ignore ids: all-zero)
        table = torch.zeros(taps, rows * (2 if use_instance else 1), ngf, device=w.device)
        table[:, :label_nc] = cols[:, :label_nc]
        if use_instance:
            table[:, rows:rows + label_nc] = cols[:, :label_nc] + cols[:, label_nc:label_nc + 1]
            table[:, rows + label_nc] = cols[:, label_nc]
        self.codes = table.shape[1]
        self.table = table.reshape(-1, ngf).contiguous()
        self.bias = conv.bias.detach().float() if conv.bias is not None else None
        self.offsets = torch.arange(taps, dtype=torch.int32, device=w.device) * self.codes

    def __call__(self, label: torch.Tensor, edge: torch.Tensor | None) -> torch.Tensor:
        """(B,H,W) ids (+ (B,H,W) 0/1 edges) -> (B,ngf,H,W) fp32 features, channels_last."""
        code = label.long().clamp(0, self.label_nc)  # ids >= label_nc -> the all-zero code
        if self.use_instance and edge is not None:
            code = code + (self.label_nc + 1) * (edge > 0).long()
        b, h, w = code.shape
        pad = self.k // 2
        code = nn.functional.pad(code.unsqueeze(1).float(), (pad,) * 4, mode="reflect").squeeze(1).to(torch.int32)
        idx = code.unfold(1, self.k, 1).unfold(2, self.k, 1).reshape(b * h * w, -1) + self.offsets
        out = nn.functional.embedding_bag(idx, self.table, mode="sum")
        if self.bias is not None:
            out += self.bias
        return out.reshape(b, h, w, -1).permute(0, 3, 1, 2)


class _TableFrontGlobal(nn.Module):
    """A global G whose first two layers (pad, conv) were taken over by a LabelTableFront."""

    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.rest = g.model[2:]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.rest(feats)


class _TableFrontLocal(nn.Module):
    """A local enhancer whose full-resolution branch front was taken over by a LabelTableFront; the global
    branch still sees the average-pooled one-hot input."""

    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.g = g
        self.local_rest = getattr(g, f"model{g.n_local_enhancers}_1")[2:]

    def forward(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        g, n_le = self.g, self.g.n_local_enhancers
        pyramid = [x]
        for _ in range(n_le):
            pyramid.append(g.downsample(pyramid[-1]))
        out = g.model(pyramid[-1])
        for n in range(1, n_le + 1):
            head = self.local_rest(feats) if n == n_le else getattr(g, f"model{n}_1")(pyramid[n_le - n])
            out = getattr(g, f"model{n}_2")(head + out)
        return out


# -- k-means over instance features ---------------------------------------------------------------------
def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Cluster centres (min(k, n) x d) by Lloyd's algorithm with k-means++ seeding."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    k = min(k, n)
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
        centres.append(x[rng.choice(n, p=p)])
    c = np.array(centres)
    for _ in range(iters):
        assign = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c.astype(np.float32)


def sample_features(inst: np.ndarray, clusters: Mapping[str, torch.Tensor | np.ndarray], feat_num: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(feat_num,H,W) feature map: each instance gets a random cluster centre of its class (zeros if none)."""
    out = np.zeros((feat_num, *inst.shape), np.float32)
    for iid in np.unique(inst):
        cls = int(iid) // 1000 if iid >= 1000 else int(iid)
        centres = clusters.get(str(cls))
        if centres is None or len(centres) == 0:
            continue
        c = np.asarray(centres[rng.integers(len(centres))], np.float32)
        out[:, inst == iid] = c[:, None]
    return out


# -- checkpoints ---------------------------------------------------------------------------------------

def read_checkpoint(path: str | Path) -> dict:
    """A generator checkpoint, read by the runtime's one loader (weights_only, one-line errors)."""
    return load_checkpoint(path, expected="a state dict or a segbalance train-gan checkpoint")


def strip_module_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix DataParallel/DDP wrappers add to every key."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def infer_generator_config(sd: Mapping[str, torch.Tensor]) -> dict:
    """Architecture fields readable from a bare generator state dict (assumes the edge channel, no features)."""
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        return {}
    local = any(k.startswith("model1_1.") for k in sd)
    glob = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    idx = sorted({int(k.split(".")[0]) for k in glob if k.split(".")[0].isdigit()})
    blocks = sorted({int(k.split(".")[0]) for k in glob if ".conv_block." in k})
    first = glob.get("1.weight")
    if first is None or first.ndim != 4 or not blocks:
        return {}
    out: dict = {"netG": "local" if local else "global"}
    n_down = len([i for i in idx if i < blocks[0] and glob.get(f"{i}.weight") is not None
                  and glob[f"{i}.weight"].ndim == 4]) - 1
    out["n_downsample_global"] = n_down
    out["n_blocks_global"] = len(blocks)
    # the first upsampling after the blocks halves the channels: a transposed conv stores (in, out, k, k),
    # a resize conv (out, in, k, k)
    up = next((glob[f"{i}.weight"] for i in idx if i > blocks[-1] and glob.get(f"{i}.weight") is not None
               and glob[f"{i}.weight"].ndim == 4), None)
    input_nc = int(first.shape[1])
    if up is not None and int(up.shape[1]) == 2 * int(up.shape[0]):
        out["upsample"] = "resize"
    elif up is not None and int(up.shape[1]) >= 2 * int(up.shape[0]) + input_nc:  # the input joins each stage,
        out["upsample"], out["label_skips"] = "resize", True                       # noise channels after it
        out["noise_nc"] = int(up.shape[1]) - 2 * int(up.shape[0]) - input_nc
    if local:
        n_local = len({m.group(1) for k in sd if (m := re.match(r"model(\d+)_1\.", k))})
        w = sd.get(f"model{n_local}_1.1.weight")
        if w is None:
            return {}
        out["n_local_enhancers"] = n_local
        out["n_blocks_local"] = len({k.split(".")[1] for k in sd if k.startswith(f"model{n_local}_2.")
                                     and ".conv_block." in k})
        out["ngf"] = int(w.shape[0])  # the last enhancer's local branch runs at ngf
    else:
        out["ngf"] = int(first.shape[0])
    out["label_nc"] = input_nc - 1
    out["use_instance"] = True
    out["feat_num"] = 0
    return out




def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)




# -- renderer ------------------------------------------------------------------------------------------
class Renderer:
    """A loaded generator that renders batches of label maps; build it with `load_renderer`."""

    def __init__(self, generator: nn.Module, arch: Pix2PixHDConfig, size: tuple[int, int], device: torch.device,
                 checkpoint_sha256: str, *, feature_clusters: Mapping[str, torch.Tensor] | None = None,
                 amp: str = "auto", compile: bool = False, seed: int = 0, table_front: bool = True,
                 channels_last: bool | None = None) -> None:
        self.arch = arch
        self.size = (int(size[0]), int(size[1]))  # (W, H) the generator runs at
        self.device = device
        self.checkpoint_sha256 = checkpoint_sha256
        self.feature_clusters = {k: np.asarray(v, np.float32) for k, v in (feature_clusters or {}).items()}
        self.rng = np.random.default_rng(seed)
        # the runtime's one policy ("auto": bf16 where this device runs it fast, fp16 on older CUDA, else fp32)
        self.precision = choose_precision("off" if amp == "fp32" else amp, device)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision.amp)
        generator = generator.to(device).eval().requires_grad_(False)
        # the one-hot front as a table lookup (exact); instance features make the input no longer one-hot
        self.front: LabelTableFront | None = None
        if table_front and arch.feat_num == 0 and not arch.label_skips:  # the skips need the one-hot input
            # (and noise joins only through the skips)
            conv = generator.model[1] if arch.netG == "global" else \
                getattr(generator, f"model{arch.n_local_enhancers}_1")[1]
            self.front = LabelTableFront(conv, arch.label_nc, arch.use_instance)
        if self.dtype is not None:
            # autocast would re-cast every weight on every call (docs/benchmarks.md); convs see the
            # same bf16 weights either way, and autocast still runs the norms in fp32. The module is ours to change.
            generator = generator.to(self.dtype)
        # memory layout: None = the measured policy (CHANNELS_LAST); True/False force it (benchmarks)
        self.channels_last = CHANNELS_LAST.get(self.precision.amp, False) if channels_last is None else channels_last
        self._layout = torch.channels_last if self.channels_last else torch.contiguous_format
        self.generator = generator.to(memory_format=self._layout)
        net = self.generator
        if self.front is not None:
            net = _TableFrontGlobal(net) if arch.netG == "global" else _TableFrontLocal(net)
        self._forward = torch.compile(net, dynamic=False) if compile else net
        self._compiled = compile
        m = arch.size_multiple
        if self.size[0] % m or self.size[1] % m:
            raise SegbalanceError(f"render size {self.size[0]}x{self.size[1]} must be a multiple of {m}")
        if min(self.size) < 2 * m:  # the bottleneck needs 2x2 pixels (instance norm, reflection padding)
            raise SegbalanceError(f"render size {self.size[0]}x{self.size[1]} is too small for this generator: "
                                  f"each side must be at least {2 * m}")

    def _compile_options(self):
        """Inductor freezing while (re)compiling: weights become constants oneDNN can pre-pack. Scoped, because
        frozen weights must never change, which only holds for this renderer's private generator."""
        if not self._compiled:
            return nullcontext()
        import torch._inductor.config as inductor_config

        return inductor_config.patch(freezing=True)

    @property
    def label_nc(self) -> int:
        return self.arch.label_nc

    def _prepare(self, label: np.ndarray, inst: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        w, h = self.size
        label = np.asarray(label)
        if label.ndim != 2:
            raise SegbalanceError(f"label map must be 2-D, got shape {label.shape}")
        if label.shape != (h, w):
            label = cv2.resize(label.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        if inst is not None:
            inst = np.asarray(inst).astype(np.int32)
            if inst.shape != (h, w):
                inst = cv2.resize(inst, (w, h), interpolation=cv2.INTER_NEAREST)
        return label, inst

    def render_batch(self, labels: Sequence[np.ndarray], instances: Sequence[np.ndarray | None] | None = None
                     ) -> list[np.ndarray]:
        """RGB uint8 images, one per label map, at each label map's own size (rendered at `self.size`)."""
        if not labels:
            return []
        instances = list(instances) if instances is not None else [None] * len(labels)
        if len(instances) != len(labels):
            raise SegbalanceError(f"{len(labels)} label maps but {len(instances)} instance maps")
        y = self.raw_output(labels, instances)
        imgs = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out = []
        for img, lab in zip(imgs, labels, strict=True):
            hh, ww = np.asarray(lab).shape[:2]
            img = np.ascontiguousarray(img)
            if (ww, hh) != self.size:
                img = cv2.resize(img, (ww, hh), interpolation=cv2.INTER_CUBIC)
            out.append(img)
        return out

    def raw_output(self, labels: Sequence[np.ndarray], instances: Sequence[np.ndarray | None]) -> torch.Tensor:
        """G's float32 output in [-1, 1] at `self.size`, (B,3,H,W): what benchmarks compare across precisions."""
        prepared = [self._prepare(lab, ins) for lab, ins in zip(labels, instances, strict=True)]
        with torch.inference_mode():
            lab_t = torch.from_numpy(np.stack([p[0] for p in prepared])).to(self.device)
            edges = None
            if self.arch.use_instance:
                edges = torch.stack([edge_map(torch.from_numpy(p[1] if p[1] is not None else p[0].astype(np.int32)))
                                     for p in prepared]).to(self.device)
            args: list[torch.Tensor] = []
            if self.front is None or self.arch.netG == "local":  # the local G's global branch needs the one-hot
                x = one_hot(lab_t, self.arch.label_nc)
                if edges is not None:
                    x = torch.cat([x, edges.unsqueeze(1)], 1)
                if self.arch.feat_num:
                    feats = [sample_features(p[1] if p[1] is not None else p[0].astype(np.int32),
                                             self.feature_clusters, self.arch.feat_num, self.rng) for p in prepared]
                    x = torch.cat([x, torch.from_numpy(np.stack(feats)).to(self.device)], 1)
                if self.arch.noise_nc:  # from the renderer's seeded generator: the same seed renders the same
                    noise = self.rng.standard_normal((len(prepared), self.arch.noise_nc, *x.shape[-2:]),
                                                     dtype=np.float32)
                    x = torch.cat([x, torch.from_numpy(noise).to(self.device)], 1)
                args.append(x.contiguous(memory_format=self._layout))
            if self.front is not None:
                f = self.front(lab_t, edges)
                f = f.to(self.dtype) if self.dtype is not None else f
                args.append(f.contiguous(memory_format=self._layout))  # the table front's output is NHWC
            with autocast_context(self.device, self.dtype), self._compile_options():
                y = self._forward(*args)
        return y.float()

    def render(self, label: np.ndarray, instance: np.ndarray | None = None) -> np.ndarray:
        """One RGB uint8 image for one label map."""
        return self.render_batch([label], [instance])[0]


def load_renderer(checkpoint: str | os.PathLike, device: str | torch.device = "auto", *,
                  size: tuple[int, int] | None = None, amp: str = "auto", compile: bool = False, seed: int = 0,
                  table_front: bool = True, raw_weights: bool = False, **arch_overrides) -> Renderer:
    """A Renderer from a train-gan checkpoint or a bare G state dict (official latest_net_G.pth included).

    arch_overrides (label_nc, ngf, netG, n_downsample_global, n_blocks_global, feat_num, use_instance, ...)
    describe a bare state dict; they are checked against the tensors, and a mismatch names the keys.
    raw_weights: render a train-gan checkpoint's trained G even when it also holds a weight average.
    """
    path = Path(checkpoint)
    ckpt = read_checkpoint(path)
    clusters = None
    if "G" in ckpt and isinstance(ckpt.get("config"), dict):
        arch_dict = dict(ckpt["config"].get("arch", {}))
        # the weight average renders when the run kept one (train-gan --ema), as latest_net_G.pth holds it
        sd = ckpt["G_ema"] if ckpt.get("G_ema") is not None and not raw_weights else ckpt["G"]
        clusters = ckpt.get("feature_clusters")
        if size is None and ckpt["config"].get("size"):
            size = tuple(ckpt["config"]["size"])
    else:
        sd = ckpt
        if not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise SegbalanceError("not a generator state dict (values are not all tensors)", path)
        arch_dict = infer_generator_config(strip_module_prefix(sd))
    sd = strip_module_prefix(sd)
    unknown = set(arch_overrides) - {f for f in Pix2PixHDConfig.__dataclass_fields__}
    if unknown:
        raise SegbalanceError(f"unknown architecture options: {', '.join(sorted(unknown))}")
    arch_dict.update({k: v for k, v in arch_overrides.items() if v is not None})
    try:
        arch = Pix2PixHDConfig.from_dict(arch_dict)
        generator = build_generator(arch)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise SegbalanceError(f"invalid architecture {arch_dict}: {exc}", path) from None
    desc = f"generator (netG={arch.netG}, label_nc={arch.label_nc}, ngf={arch.ngf}, " \
           f"n_downsample={arch.n_downsample_global}, n_blocks={arch.n_blocks_global})"
    load_state_checked(generator, sd, path, desc)
    dev = resolve_device(device)
    return Renderer(generator, arch, size or DEFAULT_SIZE[arch.netG], dev, file_sha256(path),
                    feature_clusters=clusters, amp=amp, compile=compile, seed=seed, table_front=table_front)
