"""One interface for every renderer: turn recombined label maps into RGB images.

A generator (pix2pixHD) needs only the label and instance maps; the copy-paste renderer also needs
the recipe and which pixels each layer painted, so the job hands every renderer a RenderItem and
each takes what it uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segbalance.core.errors import SegbalanceError

RENDERERS = ("copypaste", "pix2pixhd", "procedural")


@dataclass
class LayerWrite:
    """The pixels one pasted layer painted: its placement and a uint8 mask over rows y0:y1, cols x0:x1."""

    placement: object  # core.recombine.Placement
    box: tuple[int, int, int, int]  # y0, y1, x0, x1
    mask: np.ndarray


@dataclass
class RenderItem:
    label: np.ndarray  # uint8 label ids
    instance: np.ndarray | None  # int32
    recipe: object | None = None  # core.recombine.Recipe
    writes: list[LayerWrite] = field(default_factory=list)


class Renderer(ABC):
    """Renders batches of recombined maps; `name` and `checkpoint_sha256` go into every pair's provenance."""

    name: str = "?"
    checkpoint_sha256: str | None = None
    batch_size: int = 1

    @abstractmethod
    def render(self, items: list[RenderItem]) -> list[np.ndarray]:
        """RGB uint8 HxWx3 per item, same size as its label map."""

    def close(self) -> None:
        """Free what the renderer holds (GPU memory, file caches)."""
        return None

    def reseed(self, seed: int) -> None:
        """Make the next batch's randomness depend only on `seed` (resumed jobs repeat their pairs)."""
        return None


class GeneratorRenderer(Renderer):
    """Adapts a label-to-image generator (render_batch(labels, instances) -> RGB list) to the interface."""

    def __init__(self, model, name: str = "pix2pixhd", batch_size: int = 4) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size
        self.checkpoint_sha256 = getattr(model, "checkpoint_sha256", None)
        self.label_nc = getattr(model, "label_nc", None)

    def reseed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)
        if hasattr(self.model, "rng"):  # feature sampling of instance-wise generators
            self.model.rng = np.random.default_rng(seed)

    def render(self, items: list[RenderItem]) -> list[np.ndarray]:
        out = self.model.render_batch([it.label for it in items], [it.instance for it in items])
        return [np.asarray(o, dtype=np.uint8) for o in out]


class ProceduralRenderer(Renderer):
    """The sample dataset's own painter (core.datasets.sample.painter.render_scene): the experiments' "oracle" renderer.

    It draws any Cityscapes label map in the look of the built-in sample data, so pairs made this way
    match the sample dataset's image distribution exactly, an upper bound for a learned generator.
    """

    name = "procedural"

    def __init__(self) -> None:
        self._seed = 0

    def reseed(self, seed: int) -> None:
        self._seed = int(seed)

    def render(self, items: list[RenderItem]) -> list[np.ndarray]:
        from segbalance.core.datasets.sample import render_scene

        return [render_scene(it.label, it.instance, seed=self._seed + k) for k, it in enumerate(items)]



def check_label_nc(label_nc: int | None, needed: int, what: str, checkpoint: str | Path | None) -> None:
    """Refuse a generator whose one-hot input (label_nc channels) cannot hold label ids up to `needed - 1`.

    Ids >= label_nc would silently render as "no class"; generate (a dataset's label set) and render (the
    label maps themselves) share this one check.
    """
    if label_nc is not None and int(label_nc) < needed:
        raise SegbalanceError(f"generator has label_nc {label_nc}, but {what} uses ids up to {needed - 1} "
                              f"(needs label_nc >= {needed}); it was trained on another label set", checkpoint)


def load_renderer(kind: str, *, ds=None, checkpoint: str | None = None, device: str = "auto",
                  blend: str = "feather", batch_size: int = 4) -> Renderer:
    """A renderer by name: 'copypaste' (needs the dataset), 'pix2pixhd' (needs a checkpoint) or 'procedural'.

    A generator whose label_nc cannot hold the dataset's label ids is refused here, before any work.
    """
    if kind == "copypaste":
        if ds is None:
            raise SegbalanceError("the copypaste renderer needs the dataset the plan was made on")
        from segbalance.core.render.copypaste import CopyPasteRenderer

        return CopyPasteRenderer(ds, blend=blend)
    if kind == "pix2pixhd":
        if not checkpoint:
            raise SegbalanceError("--renderer pix2pixhd needs --checkpoint CKPT (a trained generator)")
        from segbalance.core.render import pix2pixhd

        model = pix2pixhd.load_renderer(checkpoint, device=device)
        if getattr(model, "checkpoint_sha256", None) is None:
            model.checkpoint_sha256 = pix2pixhd.file_sha256(checkpoint)
        r = GeneratorRenderer(model, "pix2pixhd", batch_size)
        if ds is not None:
            check_label_nc(r.label_nc, ds.label_set.label_nc, f"label set {ds.label_set.name!r}", checkpoint)
        return r
    if kind == "procedural":
        return ProceduralRenderer()
    raise SegbalanceError(f"unknown renderer {kind!r}; choose one of {', '.join(RENDERERS)}")
