"""Renderers by name, and the checks a renderer must pass before any work is done with it."""

from __future__ import annotations

from pathlib import Path

from segbalance.core.errors import SegbalanceError
from segbalance.core.render.interface import GeneratorRenderer, Renderer
from segbalance.core.render.procedural import ProceduralRenderer

RENDERERS = ("copypaste", "pix2pixhd", "procedural")


def check_label_nc(label_nc: int | None, needed: int, what: str, checkpoint: str | Path | None) -> None:
    """Refuse a generator whose one-hot input (label_nc channels) cannot hold label ids up to `needed - 1`.

    Ids >= label_nc would silently render as "no class"; generate (a dataset's label set) and render (the
    label maps themselves) share this one check.
    """
    if label_nc is not None and int(label_nc) < needed:
        raise SegbalanceError(f"generator has label_nc {label_nc}, but {what} uses ids up to {needed - 1} "
                              f"(needs label_nc >= {needed}); it was trained on another label set", checkpoint)


def load_renderer(kind: str, *, ds=None, checkpoint: str | None = None, device: str = "auto",
                  blend: str = "feather", batch_size: int = 4, raw_weights: bool = False, amp: str = "auto"
                  ) -> Renderer:
    """A renderer by name: 'copypaste' (needs the dataset), 'pix2pixhd' (needs a checkpoint) or 'procedural'.

    raw_weights: a pix2pixhd checkpoint renders with its trained G rather than its weight average.
    amp: the generator's precision (the runtime's policy; "auto" by default).

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

        model = pix2pixhd.load_renderer(checkpoint, device=device, raw_weights=raw_weights, amp=amp)
        if getattr(model, "checkpoint_sha256", None) is None:
            model.checkpoint_sha256 = pix2pixhd.file_sha256(checkpoint)
        r = GeneratorRenderer(model, "pix2pixhd", batch_size)
        if ds is not None:
            check_label_nc(r.label_nc, ds.label_set.label_nc, f"label set {ds.label_set.name!r}", checkpoint)
        return r
    if kind == "procedural":
        return ProceduralRenderer()
    raise SegbalanceError(f"unknown renderer {kind!r}; choose one of {', '.join(RENDERERS)}")
