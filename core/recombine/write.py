"""Replay a plan's recipes into label + instance PNGs, one failed recipe never stopping the others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segbalance.core.datasets import Dataset
from segbalance.core.datasets.cityscapes import INSTANCE_SUFFIX, LABEL_SUFFIX
from segbalance.core.errors import Cancelled
from segbalance.core.io import write_png
from segbalance.core.recombine.compose import MissingSourceError, Recipe, _checked_row, apply_recipe
from segbalance.core.recombine.layers import LayerBank


def map_stem(index: int, prefix: str = "recomb") -> str:
    """Cityscapes-like stem (city_sequence_frame) of the index-th recombined map."""
    return f"{prefix}_{index:06d}_000019"


def check_recipes(recipes: list[Recipe], bank: LayerBank) -> None:
    """DataError on the first layer the bank does not hold as recorded (a stale or hand-edited plan)."""
    for i, r in enumerate(recipes):
        for p in r.layers:
            try:
                _checked_row(bank, p)
            except Exception as exc:
                raise type(exc)(f"recipe {i}: {exc}") from None


@dataclass
class RecombineResult:
    written: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def instance_png(inst: np.ndarray) -> np.ndarray:
    """Instance map as the uint16 array Cityscapes stores."""
    return inst.clip(0, 65535).astype(np.uint16)


def recombine_recipes(recipes: list[Recipe], ds: Dataset, bank: LayerBank, out: str | Path, *,
                      prefix: str = "recomb", progress: Callable[[int, int], None] | None = None,
                      cancel: Callable[[], bool] | None = None) -> RecombineResult:
    """Write `<stem>_gtFine_labelIds.png` and `<stem>_gtFine_instanceIds.png` for every recipe under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = RecombineResult()
    n = len(recipes)
    for i, r in enumerate(recipes):
        if cancel and cancel():
            raise Cancelled()
        try:
            label, inst = apply_recipe(r, ds, bank)
        except MissingSourceError as exc:
            res.failed.append((i, str(exc)))
        else:
            stem = map_stem(i, prefix)
            write_png(out / (stem + LABEL_SUFFIX), label)
            write_png(out / (stem + INSTANCE_SUFFIX), instance_png(inst))
            res.written.append(i)
        if progress:
            progress(i + 1, n)
    return res
