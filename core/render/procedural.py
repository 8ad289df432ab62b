"""The sample dataset's own scene renderer as a Renderer: the oracle arm's perfect generator.

On the built-in sample dataset the images are drawn from the label maps by core.sample_data, so
rendering recombined maps with the same code gives pairs exactly as real as the originals: the
ceiling of what any generator could add.
"""

from __future__ import annotations

import zlib

import numpy as np

from core.render.base import Renderer, RenderItem
from core.sample_data import render_scene


class ProceduralRenderer(Renderer):
    name = "procedural"
    batch_size = 1

    def __init__(self) -> None:
        self.seed = 0

    def reseed(self, seed: int) -> None:
        self.seed = int(seed)

    def render(self, items: list[RenderItem]) -> list[np.ndarray]:
        out = []
        for it in items:
            # the scene's lighting and textures depend on the map itself, so replays are identical
            key = zlib.crc32(it.label.tobytes()) ^ (self.seed * 2654435761 & 0xFFFFFFFF)
            out.append(render_scene(it.label, it.instance, seed=int(key)))
        return out
