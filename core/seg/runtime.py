"""Device and precision for segmentation code: the shared training runtime's policy (one meaning of "auto")."""

from __future__ import annotations

from segbalance.core.runs.runtime import AMP_MODES, autocast, resolve_amp, resolve_device

__all__ = ["AMP_MODES", "autocast", "resolve_amp", "resolve_device"]
