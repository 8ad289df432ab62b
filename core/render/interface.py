"""The one interface every renderer implements: recombined label maps in, RGB images out.

A generator (pix2pixHD) needs only the label and instance maps; the copy-paste renderer also needs
the recipe and which pixels each layer painted, so the job hands every renderer a RenderItem and
each takes what it uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


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
