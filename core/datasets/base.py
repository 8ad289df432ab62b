"""The one interface every dataset reader implements."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import DataError
from segbalance.core.io import image_size, png_size, read_label_png, read_png


@dataclass(frozen=True)
class SampleRef:
    """Where one sample's files are; `id` is unique within the dataset (e.g. aachen_000000_000019)."""

    id: str
    split: str
    image_path: Path | None
    label_path: Path
    instance_path: Path | None = None
    # how label_path encodes classes: "labelIds", "trainIds", "index" or "color"
    label_kind: str = "labelIds"


class Dataset(ABC):
    """A dataset on disk: a label set plus samples per split."""

    format: str = "?"

    def __init__(self, root: str | Path, label_set: LabelSet) -> None:
        self.root = Path(root).resolve()
        self.label_set = label_set
        self._samples: dict[str, list[SampleRef]] | None = None

    @abstractmethod
    def _scan(self) -> dict[str, list[SampleRef]]:
        """Find every sample, grouped by split, sorted by id."""

    def _all(self) -> dict[str, list[SampleRef]]:
        if self._samples is None:
            self._samples = self._scan()
        return self._samples

    def splits(self) -> list[str]:
        return sorted(self._all())

    def samples(self, split: str | None = None) -> list[SampleRef]:
        """Samples of one split (all splits when None); unknown splits raise with the known ones."""
        data = self._all()
        if split is None:
            return [s for sp in sorted(data) for s in data[sp]]
        if split not in data:
            known = ", ".join(sorted(data)) or "none"
            raise DataError(f"no split {split!r} (found: {known})", self.root)
        return list(data[split])

    def sample(self, sample_id: str, split: str | None = None) -> SampleRef:
        for s in self.samples(split):
            if s.id == sample_id:
                return s
        raise DataError(f"no sample {sample_id!r}", self.root)

    # -- loading -------------------------------------------------------------------
    def load_image(self, s: SampleRef) -> np.ndarray:
        """RGB uint8 HxWx3."""
        if s.image_path is None:
            raise DataError(f"sample {s.id} has no image", self.root)
        return read_png(s.image_path, color=True)

    def load_label(self, s: SampleRef, *, check: bool = True) -> np.ndarray:
        """Label-id map, uint8 HxW, in the label set's ids whatever the file's encoding."""
        lab = self._decode_label(s)
        if check:
            self.check_ids(lab, s.label_path)
        return lab

    def load_train_ids(self, s: SampleRef) -> np.ndarray:
        """Train-id map (255 = ignore), what segmentation networks train on."""
        return self.label_set.id_to_train_lut[self.load_label(s)]

    def load_instance(self, s: SampleRef) -> np.ndarray | None:
        """Instance map (int32: class id for stuff, class*1000+k for things) or None."""
        if s.instance_path is None:
            return None
        return read_label_png(s.instance_path).astype(np.int32)

    def _decode_label(self, s: SampleRef) -> np.ndarray:
        arr = read_label_png(s.label_path)
        if arr.dtype != np.uint8:
            if arr.max() > 255:
                raise DataError(f"label ids up to {int(arr.max())} do not fit 0..255", s.label_path)
            arr = arr.astype(np.uint8)
        if s.label_kind == "trainIds":
            bad = ~np.isin(np.unique(arr), np.r_[[c.train_id for c in self.label_set.train_classes], 255])
            if bad.any():
                vals = np.unique(arr)[bad][:5].tolist()
                raise DataError(f"train ids {vals} not in the label set", s.label_path)
            return self.label_set.train_to_id_lut[arr]
        return arr

    def check_ids(self, lab: np.ndarray, path: Path | str) -> None:
        counts = np.bincount(lab.ravel(), minlength=256) if lab.size < 4096 else _hist(lab)
        self.check_counts(counts, path)

    def check_counts(self, counts: np.ndarray, path: Path | str) -> None:
        """Raise DataError naming the ids of `counts` (256 bins) that the label set lacks."""
        present = np.flatnonzero(counts)
        bad = np.setdiff1d(present, self.label_set.valid_ids)
        if bad.size:
            raise DataError(
                f"label ids {bad[:8].tolist()} are not in label set {self.label_set.name!r}", path
            )

    def check_pair(self, s: SampleRef, label_shape: tuple[int, int]) -> None:
        """Image and instance map must exist and have the label's size (header check, no decode)."""
        if s.image_path is not None:
            if image_size(s.image_path) != tuple(label_shape):
                h, w = image_size(s.image_path)
                raise DataError(
                    f"image is {w}x{h} but its label {Path(s.label_path).name} is "
                    f"{label_shape[1]}x{label_shape[0]}",
                    s.image_path,
                )
        if s.instance_path is not None and png_size(s.instance_path) != tuple(label_shape):
            raise DataError("instance map size differs from its label map", s.instance_path)

    def fingerprint(self) -> str:
        """Stable id of this dataset's content list (ids, splits and label set), for plans and jobs."""
        h = hashlib.sha256()
        h.update(self.label_set.name.encode())
        for c in self.label_set.classes:
            h.update(f"{c.id}:{c.name}:{c.train_id};".encode())
        for s in self.samples():
            h.update(f"{s.split}/{s.id}\n".encode())
        return h.hexdigest()[:16]


IMAGE_EXTS = (".png", ".jpg", ".jpeg")  # photo files every folder-style layout accepts


def pair_by_stem(split: str, idir: Path, adir: Path, kind: str, noun: str, *,
                 image_ext: str = ".png") -> list[SampleRef]:
    """The samples of one split whose images (in `idir`) and label PNGs (in `adir`) share a stem, sorted.

    The rule every layout with a photo folder beside a label folder follows: a label without its image, an
    image without its label, or two images of one stem (foo.png beside foo.jpg: which one is meant is a guess)
    is a one-line error naming the file. `noun` is what the layout calls a label file (mask, annotation, ...).
    """
    import os

    try:
        labels = sorted(n for n in os.listdir(adir) if n.lower().endswith(".png"))
        images: dict[str, str] = {}
        for n in sorted(n for n in (os.listdir(idir) if idir.is_dir() else []) if n.lower().endswith(IMAGE_EXTS)):
            if Path(n).stem in images:
                raise DataError(f"two images for one {noun}: {images[Path(n).stem]} and {n}; keep one", idir / n)
            images[Path(n).stem] = n
    except OSError as exc:
        raise DataError(f"cannot read folder ({exc.strerror})", adir) from None
    refs = []
    for a in labels:
        stem = Path(a).stem
        if stem not in images:
            raise DataError(f"{noun} has no image (expected {idir / (stem + image_ext)})", adir / a)
        refs.append(SampleRef(stem, split, idir / images[stem], adir / a, None, kind))
    extra = sorted(set(images) - {Path(a).stem for a in labels})
    if extra:
        raise DataError(f"image has no {noun} (expected {adir / (extra[0] + '.png')})", idir / images[extra[0]])
    return refs


def _hist(lab: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.calcHist([lab], [0], None, [256], [0, 256]).ravel().astype(np.int64)
