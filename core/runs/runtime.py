"""The training runtime train-seg and train-gan share: device and precision policy, DDP from torchrun's
environment, seeding and RNG state, the checkpoint file (atomic write, weights-only read, checked load) and
file hashes. Each trainer's loop stays its own short script; this holds what they must agree on.
"""

from __future__ import annotations

import contextlib
import functools
import io
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from segbalance.core.errors import SegbalanceError
from segbalance.core.io import bytes_sha256, file_sha256  # noqa: F401 - part of the runtime's surface
from segbalance.core.ranks import Rank, torchrun_rank
from segbalance.core.runs.amp import AMP_MODES

T = TypeVar("T")
DEVICE_HELP = "use auto, cpu or cuda:N"


# -- device and precision ------------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The one device resolver: "auto" -> cuda when available, else cpu; cuda:N checked to exist; any other
    kind (mps, xpu, meta, ...) is refused in one line, since the engine is tested on CPU and CUDA only."""
    if isinstance(device, torch.device):
        dev = device
    elif device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise SegbalanceError(f"bad --device {device!r}; {DEVICE_HELP}") from None
    if dev.type not in ("cpu", "cuda"):
        raise SegbalanceError(f"unsupported --device {str(device)!r}; {DEVICE_HELP}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SegbalanceError(f"--device {device}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SegbalanceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    return dev


# -- precision: one "auto" for every command and the app, decided here -------------------------------------
# x86 flags of the instructions oneDNN's bf16 kernels run natively on; without them bf16 is emulated (slower
# than fp32 on AVX512 CPUs without BF16), or oneDNN has no bf16 kernels at all (AVX2 CPUs)
_NATIVE_BF16_X86 = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    """A concrete precision ("bf16", "fp16" or "off" = fp32) and why it was chosen: what a run records."""

    amp: str
    reason: str
    requested: str = "auto"

    @property
    def name(self) -> str:
        return "fp32" if self.amp == "off" else self.amp

    def line(self) -> str:
        """The run-log line: "precision: bf16 (auto: ...)"."""
        return f"precision: {self.name} ({self.reason})"

    def to_dict(self) -> dict:
        return {"precision": self.name, "amp": self.amp, "requested": self.requested, "reason": self.reason}


@functools.lru_cache(maxsize=1)
def _cpu_features() -> tuple[frozenset[str] | None, bool]:
    """(the CPU's feature flags from /proc/cpuinfo, or None where unreadable; oneDNN has bf16 kernels here)."""
    try:
        mkldnn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        mkldnn_bf16 = False
    flags: frozenset[str] | None = None
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):  # x86, aarch64
                flags = frozenset(value.split())
                break
    except OSError:
        pass
    return flags, mkldnn_bf16


def cpu_fast_bf16() -> tuple[bool, str]:
    """(bf16 autocast is faster than fp32 on this CPU, why): oneDNN must have bf16 kernels for it, and on x86
    the CPU must run them natively (AVX512-BF16 or AMX-BF16); where the flags cannot be read, oneDNN's word."""
    flags, mkldnn_bf16 = _cpu_features()
    if not mkldnn_bf16:
        return False, "CPU without bf16 kernels in oneDNN (no AVX512/bf16 extension)"
    if flags is None:
        return True, "oneDNN has bf16 kernels for this CPU (CPU flags unreadable)"
    native = [f for f in _NATIVE_BF16_X86 if f in flags]
    if native:
        return True, f"CPU runs bf16 natively ({', '.join(native)})"
    if "bf16" in flags:  # aarch64's BF16 extension
        return True, "CPU runs bf16 natively (Arm BF16 extension)"
    if "avx512f" in flags:
        return False, "CPU emulates bf16 (AVX512 without AVX512-BF16/AMX): slower than fp32"
    return False, "CPU without native bf16 instructions"


def choose_precision(amp: str, device: torch.device) -> Precision:
    """The one precision policy. "auto": bf16 on CUDA with bf16, fp16 (with loss scaling in training) on older
    CUDA, and on CPU bf16 exactly where it is fast (cpu_fast_bf16), else fp32. Explicit choices are checked."""
    if amp not in AMP_MODES:
        raise SegbalanceError(f"bad --amp {amp!r}; choose from {', '.join(AMP_MODES)}")
    if amp == "auto":
        if device.type == "cuda":
            gpu = torch.cuda.get_device_name(device)
            if torch.cuda.is_bf16_supported():
                return Precision("bf16", f"auto: {gpu} supports bf16")
            return Precision("fp16", f"auto: {gpu} has no bf16; fp16 with loss scaling")
        if device.type == "cpu":
            fast, why = cpu_fast_bf16()
            return Precision("bf16" if fast else "off", f"auto: {why}")
        return Precision("off", f"auto: fp32 on {device.type}")
    if amp == "fp16" and device.type != "cuda":
        raise SegbalanceError("--amp fp16 needs a CUDA device (use bf16 or off on CPU)")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SegbalanceError("--amp bf16 is not supported by this GPU; use fp16 or off")
    return Precision(amp, f"--amp {amp} asked for", requested=amp)


def run_config(cfg: object, precision: Precision | None) -> dict:
    """A run's config for its DB rows (TrainingRun.config, Job.params): the settings asked for (`amp` as given,
    "auto" included) plus "precision", what this run chose and why."""
    d = cfg.to_dict()  # type: ignore[attr-defined]
    if precision is not None:
        d["precision"] = precision.to_dict()
    return d


def resolve_amp(amp: str, device: torch.device) -> str:
    """Concrete precision ("bf16", "fp16" or "off") of choose_precision: the same "auto" in every command."""
    return choose_precision(amp, device).amp


# Memory layout per concrete precision, for every network we train or run (benchmarks/bench_precision.py,
# docs/benchmarks.md): under bf16 channels-last was faster for PSPNet-18/50 on both CPUs measured; the generator,
# which always rendered bf16 channels-last, keeps it although it measured slower on the Sapphire Rapids (changing
# it would change every bf16 render). fp16 (CUDA) is unmeasured. fp32 stays contiguous: channels-last was slower
# there on an fp32-only CPU.
CHANNELS_LAST = {"bf16": True, "fp16": True, "off": False}


def memory_format(amp: str) -> torch.memory_format:
    """The layout to put a model and its inputs in for a concrete precision from resolve_amp."""
    return torch.channels_last if CHANNELS_LAST.get(amp, False) else torch.contiguous_format


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast for a concrete precision from resolve_amp ("off": a no-op context)."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# -- DDP ---------------------------------------------------------------------------------------------
def setup_ddp(device: torch.device) -> tuple[Rank, torch.device]:
    """(this process's rank, its device) from torchrun's environment (RANK/WORLD_SIZE/LOCAL_RANK); gloo on
    CPU, nccl on CUDA, one GPU per local rank. Without torchrun: rank 0 of 1 and the device unchanged."""
    info = torchrun_rank("nccl" if device.type == "cuda" else "gloo")
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return info, device


def teardown_ddp(info: Rank) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def in_rank_order(ddp: Rank, fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 first (it creates the DB / fills the stats cache), then on the other ranks."""
    if not ddp.enabled:
        return fn()
    if ddp.master:
        res = fn()
        dist.barrier()
        return res
    dist.barrier()
    return fn()


def any_rank(ddp: Rank, flag: bool) -> bool:
    """True on every rank when `flag` is true on one (a stop or a NaN must stop all, or the rest hang)."""
    if not ddp.enabled:
        return flag
    t = torch.tensor([float(flag)])
    dist.all_reduce(t)
    return t.item() > 0


# -- seeding and RNG state ----------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def keyed_generator(key: list[int]) -> torch.Generator:
    """A CPU torch generator that is a function of key alone (e.g. [seed, iteration, stream]): draws made from it
    need no saved RNG state to repeat on resume, and every process can make the whole batch's draw."""
    return torch.Generator().manual_seed(int(np.random.default_rng(key).integers(2**62)))


def rng_state() -> dict:
    """torch, CUDA, numpy and Python RNG states as weights_only-loadable containers."""
    st = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])],
        "python": [py[0], list(py[1]), py[2]],
    }


def set_rng_state(st: dict) -> None:
    if "torch" in st:
        torch.set_rng_state(st["torch"])
    if st.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if st.get("numpy"):
        n = st["numpy"]
        np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    if st.get("python"):
        py = st["python"]
        random.setstate((int(py[0]), tuple(int(x) for x in py[1]), py[2]))


# -- checkpoint files -------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, obj: object) -> None:
    """Atomic: a reader (or a crash) sees the previous file or the whole new one; a killed writer's temp
    file carries its pid and is swept by the next run in the folder."""
    from segbalance.core.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, *, expected: str = "a dict of tensors and settings") -> dict:
    """torch.load with weights_only=True; anything unreadable is a one-line SegbalanceError naming the file.

    The one checkpoint reader: train-seg, train-gan and the renderers all load through it.
    """
    path = Path(path)
    if not path.is_file():
        raise SegbalanceError("checkpoint not found", path)
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch zip archive or legacy pickle
        raise SegbalanceError("not a PyTorch checkpoint file", path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt/foreign files of every kind end up here
        text = str(exc).strip()
        if "Weights only load failed" in text:
            msg = "it holds Python objects beyond tensors and plain containers; refusing to unpickle them"
        else:  # torch's first sentence, whole (its later ones may suggest weights_only=False: never pass that on)
            msg = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(exc).__name__
            if "zip archive" in msg:
                msg = f"damaged or truncated file: {msg}"
            elif "weights_only" in msg:
                msg = "refused by the safe loader"
        raise SegbalanceError(f"not a readable PyTorch checkpoint ({msg})", path) from None
    if not isinstance(ck, dict) or not ck:
        raise SegbalanceError(f"not a checkpoint (expected {expected})", path)
    return ck


def load_state_checked(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Strict load; a mismatch raises one line naming the file and the missing, unexpected and wrongly shaped
    keys (the first few), instead of torch's page-long RuntimeError."""
    if not isinstance(state, Mapping):
        raise SegbalanceError(f"checkpoint holds no {what} weights", path)
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [f"{k} {list(state[k].shape)} vs {list(want[k].shape)}" for k in want
              if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"shape mismatch (checkpoint vs model): {', '.join(shapes[:3])}"
                         + (f" (+{len(shapes) - 3} more)" if len(shapes) > 3 else ""))
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:4])}" + (f" (+{len(missing) - 4})"
                                                                       if len(missing) > 4 else ""))
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:4])}"
                         + (f" (+{len(unexpected) - 4})" if len(unexpected) > 4 else ""))
        raise SegbalanceError(f"checkpoint does not match the {what}: " + "; ".join(parts), path)
    model.load_state_dict(state)


__all__ = ["AMP_MODES", "Precision", "choose_precision", "cpu_fast_bf16", "resolve_device", "resolve_amp",
           "run_config", "autocast", "setup_ddp", "teardown_ddp",
           "in_rank_order", "any_rank", "seed_everything", "keyed_generator", "rng_state", "set_rng_state",
           "save_checkpoint", "load_checkpoint", "load_state_checked", "file_sha256", "bytes_sha256"]
