"""Device and mixed-precision choices shared by training, evaluation and the quality scorer."""

from __future__ import annotations

import contextlib

import torch

from segbalance.core.errors import SegbalanceError

AMP_MODES = ("auto", "bf16", "fp16", "off")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; cuda:N checked to exist."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SegbalanceError(f"bad --device {device!r}; use auto, cpu or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SegbalanceError(f"--device {device}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SegbalanceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    return dev


def resolve_amp(amp: str, device: torch.device) -> str:
    """Concrete precision: auto -> bf16 on CUDA with bf16 support, fp16 on older CUDA, off on CPU."""
    if amp not in AMP_MODES:
        raise SegbalanceError(f"bad --amp {amp!r}; choose from {', '.join(AMP_MODES)}")
    if amp == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "off"
    if amp == "fp16" and device.type != "cuda":
        raise SegbalanceError("--amp fp16 needs a CUDA device (use bf16 or off on CPU)")
    return amp


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
