"""Writer of the built-in sample dataset: seeded samples saved in the Cityscapes layout.

Each sample is seeded from (seed, split, index), so sample i does not depend on how many are generated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segbalance.core.datasets.cityscapes import cityscapes_paths, write_cityscapes_sample
from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.datasets.sample.layout import make_layout
from segbalance.core.datasets.sample.painter import render_scene
from segbalance.core.errors import Cancelled, DataError

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

TRAIN_CITIES = ("synthville", "procburg")
VAL_CITIES = ("renderstadt",)
FRAME = 19  # Cityscapes' annotated frame number
_SPLIT_CODE = {"train": 1, "val": 2, "test": 3}


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one sample: independent of how many others are generated."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _SPLIT_CODE.get(split, 9), int(index)])


def sample_name(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of sample `index` of `split`."""
    cities = TRAIN_CITIES if split == "train" else VAL_CITIES
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{FRAME:06d}"


def make_sample(seed: int, split: str, index: int, size: tuple[int, int] = (256, 128)) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """(image RGB, label ids uint8, instance ids int32) of one sample."""
    rng = sample_rng(seed, split, index)
    label, inst = make_layout(rng, size)
    img = render_scene(label, inst, int(rng.integers(2**31)))
    return img, label, inst


_NAME_RE = re.compile(r"^(?P<stem>[a-z]+_(?P<seq>\d{6})_\d{6})_(leftImg8bit|gtFine_\w+)\.png$")


def make_sample_dataset(
    out: str | Path,
    n_train: int = 200,
    n_val: int = 50,
    size: tuple[int, int] = (256, 128),
    seed: int = 0,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    color: bool = True,
) -> Path:
    """Write the procedural sample dataset under `out` (Cityscapes layout) and return its root.

    Re-running into the same folder rewrites identical files and removes generated samples beyond
    the requested counts, so the folder always holds exactly what was asked for.
    """
    w, h = (int(v) for v in size)
    if w < 32 or h < 16:
        raise DataError(f"sample size {w}x{h} is too small (minimum 32x16)")
    if n_train < 0 or n_val < 0:
        raise DataError("sample counts must be >= 0")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError("exists and is not a folder", root)
    jobs = [("train", i) for i in range(n_train)] + [("val", i) for i in range(n_val)]
    total = len(jobs)
    if progress:
        progress(0, total)
    palette = CITYSCAPES.palette
    for done, (split, i) in enumerate(jobs, 1):
        if cancel is not None and cancel():
            raise Cancelled()
        img, label, inst = make_sample(seed, split, i, (w, h))
        city, stem = sample_name(split, i)
        write_cityscapes_sample(cityscapes_paths(root, split, city, stem), image=img, label=label,
                                instance=inst.astype(np.uint16), color=palette[label] if color else None)
        if progress:
            progress(done, total)
    _remove_stale(root, {"train": n_train, "val": n_val})
    return root


def is_sample_dataset(ds) -> bool:
    """Whether `ds` is the built-in sample dataset: Cityscapes layout, Cityscapes labels, and every sample in
    one of the sample's own made-up cities (no real dataset has them)."""
    if getattr(ds, "format", None) != "cityscapes" or ds.label_set.name != CITYSCAPES.name:
        return False
    refs = ds.samples()
    cities = set(TRAIN_CITIES) | set(VAL_CITIES)
    return bool(refs) and all(Path(r.label_path).parent.name in cities for r in refs)


def _remove_stale(root: Path, counts: dict[str, int]) -> None:
    """Delete generated files of ours with indices beyond the requested counts (from an earlier, larger run)."""
    for top in ("leftImg8bit", "gtFine"):
        for split, n in counts.items():
            cities = TRAIN_CITIES if split == "train" else VAL_CITIES
            for ci, city in enumerate(cities):
                d = root / top / split / city
                if not d.is_dir():
                    continue
                for p in d.iterdir():
                    mt = _NAME_RE.match(p.name)
                    if mt and mt.group("stem").startswith(city + "_"):
                        index = int(mt.group("seq")) * len(cities) + ci
                        if index >= n:
                            p.unlink()
