"""Renderers by name, and the checks a renderer must pass before any work is done with it."""

from __future__ import annotations

from pathlib import Path

from segbalance.core.errors import SegbalanceError
from segbalance.core.render.interface import GeneratorRenderer, Renderer
from segbalance.core.render.procedural import ProceduralRenderer

RENDERERS = ("copypaste", "pix2pixhd", "procedural")
ASPECT_TOLERANCE = 0.05  # relative difference of width/height beyond which renders come out distorted


class GeneratorMismatch(SegbalanceError):
    """A generator trained on another label set or another image shape than the dataset it is asked to serve."""


def check_label_nc(label_nc: int | None, needed: int, what: str, checkpoint: str | Path | None) -> None:
    """Refuse a generator whose one-hot input (label_nc channels) cannot hold label ids up to `needed - 1`.

    Ids >= label_nc would silently render as "no class"; generate (a dataset's label set) and render (the
    label maps themselves) share this one check.
    """
    if label_nc is not None and int(label_nc) < needed:
        raise SegbalanceError(f"generator has label_nc {label_nc}, but {what} uses ids up to {needed - 1} "
                              f"(needs label_nc >= {needed}); it was trained on another label set", checkpoint)


def generator_meta(checkpoint: str | Path) -> dict | None:
    """What the train-gan run that made this generator knew: {"label_set", "size", "dataset"}, read from the
    checkpoint itself or, for a bare latest_net_G.pth, from the run's ckpt.pt beside it; None when unknown
    (official pix2pixHD weights carry no label set)."""
    from segbalance.core.runs.runtime import load_checkpoint

    path = Path(checkpoint)
    for candidate in (path, path.parent / "ckpt.pt"):
        if not candidate.is_file():
            continue
        try:
            ckpt = load_checkpoint(candidate, expected="a generator checkpoint")
        except SegbalanceError:
            continue  # unreadable: the renderer's own loader says so, in its words
        if isinstance(ckpt, dict) and isinstance(ckpt.get("config"), dict) and "label_set" in ckpt:
            size = ckpt["config"].get("size")
            return {"label_set": ckpt["label_set"], "size": tuple(size) if size else None,
                    "dataset": (ckpt.get("dataset") or {}).get("path")}
    return None


def check_generator_fits(ds, checkpoint: str | Path) -> None:
    """Refuse, in one line, a generator trained on another label set (same ids, other classes) or on images of
    another shape than `ds`'s; generate (CLI and app) calls it before anything renders."""
    from segbalance.core.datasets.labels import LabelSet
    from segbalance.core.io import png_size

    meta = generator_meta(checkpoint)
    if meta is None:
        return
    theirs = LabelSet.from_dict(meta["label_set"], source=str(checkpoint))
    ours = ds.label_set
    differ = [c for c in ours.classes if (t := theirs.by_id.get(c.id)) is None or t.name != c.name]
    if differ:
        c = differ[0]
        t = theirs.by_id.get(c.id)
        there = repr(t.name) if t is not None else "unknown"
        raise GeneratorMismatch(
            f"generator was trained on label set {theirs.name!r}, not this dataset's {ours.name!r}: id {c.id} is "
            f"{c.name!r} here but {there} to the "
            f"generator ({len(differ)} of {len(ours.classes)} ids differ); train a generator on this dataset "
            "(Train tiny GAN, or segbalance train-gan)", checkpoint)
    refs = ds.samples("train") or ds.samples()
    if meta.get("size") and refs:
        gw, gh = (int(v) for v in meta["size"])
        h, w = png_size(refs[0].label_path)
        if abs(gw / gh - w / h) > ASPECT_TOLERANCE * (w / h):
            raise GeneratorMismatch(
                f"generator renders {gw}x{gh} images (aspect {gw / gh:.2f}) but this dataset's maps are {w}x{h} "
                f"({w / h:.2f}): its renders would be distorted; train a generator at this shape "
                f"(segbalance train-gan --size {w}x{h} or a smaller size of the same aspect)", checkpoint)


def renderers_for(ds) -> list[str]:
    """Renderers that make sense for the dataset: procedural paints the built-in sample data's look, so it is
    offered only for the sample dataset."""
    from segbalance.core.datasets.sample import is_sample_dataset

    return [r for r in RENDERERS if r != "procedural" or (ds is not None and is_sample_dataset(ds))]


def load_renderer(kind: str, *, ds=None, checkpoint: str | None = None, device: str = "auto",
                  blend: str = "feather", batch_size: int = 4, raw_weights: bool = False, amp: str = "auto"
                  ) -> Renderer:
    """A renderer by name: 'copypaste' (needs the dataset), 'pix2pixhd' (needs a checkpoint) or 'procedural'.

    raw_weights: a pix2pixhd checkpoint renders with its trained G rather than its weight average.
    amp: the generator's precision (the runtime's policy; "auto" by default).

    A generator whose label_nc cannot hold the dataset's label ids, or that was trained on another label set or
    image shape (check_generator_fits), is refused here, before any work.
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

        if ds is not None:
            check_generator_fits(ds, checkpoint)
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
