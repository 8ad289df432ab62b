"""The oracle renderer: the built-in sample dataset's own painter, for any Cityscapes label map."""

from __future__ import annotations

import numpy as np

from segbalance.core.render.interface import Renderer, RenderItem


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
