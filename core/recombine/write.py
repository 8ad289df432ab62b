"""Replay a plan's recipes into label + instance PNGs, one failed recipe never stopping the others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segbalance.core.datasets import Dataset
from segbalance.core.datasets.cityscapes import INSTANCE_SUFFIX, LABEL_SUFFIX
from segbalance.core.errors import Cancelled, DataError
from segbalance.core.io import write_png
from segbalance.core.processes import temp_prefix
from segbalance.core.recombine.compose import MAX_LAYER_SCALE, MissingSourceError, Recipe, _checked_row, apply_recipe
from segbalance.core.recombine.layers import LayerBank


def map_stem(index: int, prefix: str = "recomb") -> str:
    """Cityscapes-like stem (city_sequence_frame) of the index-th recombined map."""
    return f"{prefix}_{index:06d}_000019"


def check_recipes(recipes: list[Recipe], bank: LayerBank) -> None:
    """DataError on the first recipe whose sizes do not fit the data or whose layer the bank does not hold.

    Sizes are checked before any map is built: a hand-edited `"w": 200000` would otherwise ask OpenCV
    for 40 GB halfway through a run.
    """
    for i, r in enumerate(recipes):
        si = bank.sample_index.get(r.base)
        if si is not None:
            s = bank.samples[si]
            if tuple(r.size) != (int(s["height"]), int(s["width"])):
                raise DataError(f"recipe {i}: size {r.size[1]}x{r.size[0]} differs from its base map "
                                f"{r.base} ({s['width']}x{s['height']})")
        H, W = r.size
        for j, p in enumerate(r.layers):
            if p.w > MAX_LAYER_SCALE * W or p.h > MAX_LAYER_SCALE * H:
                raise DataError(f"recipe {i}: layer {j} is {p.w}x{p.h}, more than {MAX_LAYER_SCALE}x the "
                                f"{W}x{H} map it is pasted into")
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
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    res = RecombineResult()
    written: list[Path] = []
    inflight: Path | None = None
    n = len(recipes)
    try:
        for i, r in enumerate(recipes):
            if cancel and cancel():
                raise Cancelled()
            try:
                label, inst = apply_recipe(r, ds, bank)
            except MissingSourceError as exc:
                res.failed.append((i, str(exc)))
            else:
                stem = map_stem(i, prefix)
                for path, arr in ((out / (stem + LABEL_SUFFIX), label), (out / (stem + INSTANCE_SUFFIX),
                                                                         instance_png(inst))):
                    inflight = path
                    fresh = not path.exists()  # a map already there (an earlier run's) is only ours once replaced
                    if fresh:
                        written.append(path)  # before the write: a signal may land between its rename and the next line
                    write_png(path, arr)
                    if not fresh:
                        written.append(path)
                res.written.append(i)
            if progress:
                progress(i + 1, n)
    except BaseException:
        # a run that stops early leaves nothing behind: not its maps, not the folder it made
        for path in written:
            path.unlink(missing_ok=True)
        if inflight is not None:  # its temp file is ours (our pid in the name), if the signal beat its clean-up
            for tmp in inflight.parent.glob(temp_prefix(inflight) + "*.tmp"):
                tmp.unlink(missing_ok=True)
        _remove_if_empty(out, created)
        raise
    if not res.written:
        _remove_if_empty(out, created)
    return res


def _remove_if_empty(folder: Path, created: bool) -> None:
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (someone else's files) or already gone
