"""The few engine calls the app makes that need more than one core function, kept in one place.

Each function is a plain call into core (no Qt), so it runs in a Worker and stays testable. Every engine
part is a hard import: a broken module fails at start-up (and in CI), it is never shown as "not installed".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segbalance.core.datasets import Dataset
from segbalance.core.datasets.stats import DatasetStats
from segbalance.core.jobs.pairs import DEFAULT_EXPORT
from segbalance.core.runs.records import RUNNING
from segbalance.core.workspace import Workspace

Progress = Callable[[int, int], None] | None
Cancel = Callable[[], bool] | None


# -- balance planning ----------------------------------------------------------------------------
def preset_names() -> list[str]:
    from segbalance.core.planning.balance import PRESETS

    return list(PRESETS)


def preset_default(name: str) -> float:
    from segbalance.core.planning.balance import PRESETS

    return float(PRESETS[name])


def preset_target(name: str, param: float, shares: dict[str, float], allowed: list[str] | None) -> dict[str, float]:
    from segbalance.core.planning.balance import preset_target as _preset

    return _preset(f"{name}:{param:g}", shares, allowed)


def make_plan(ds: Dataset, workspace: Workspace, stats: DatasetStats, target: dict[str, float], budget: int,
              strategy: str | dict[str, float], seed: int = 0, *, progress: Progress = None,
              cancel: Cancel = None):
    """Build (or reuse) the layer bank, plan, and save the plan under WS/plans/; returns (plan, path)."""
    from segbalance.core.planning.balance import plan_balance
    from segbalance.core.recombine.layers import build_layer_bank

    bank = build_layer_bank(ds, workspace, progress=progress, cancel=cancel)
    plan = plan_balance(stats, bank, target, budget, strategy, classes=list(target), seed=seed,
                        progress=progress, cancel=cancel)
    if not plan.dataset:
        plan.dataset = str(ds.root)
    path = workspace.subdir("plans") / f"plan-{time.strftime('%Y%m%d-%H%M%S')}-{seed}.json"
    plan.save(path)
    return plan, path


def load_plan(path: str | Path, ds: Dataset):
    """A saved plan, checked against the dataset it is to run on (DataError when it was made for another)."""
    from segbalance.core.planning.balance import Plan

    plan = Plan.load(path)
    plan.check_dataset(ds, path)
    return plan


def plan_summary(plan, label_set) -> str:
    """Recipes per strategy and per class added, in one line each (the CLI's numbers, core.planning.summaries)."""
    from segbalance.core.planning.summaries import plan_summary as _summary

    return _summary(plan, label_set)


# -- generation ------------------------------------------------------------------------------------
def renderer_names(ds: Dataset | None = None) -> list[str]:
    """Renderers the engine offers for the dataset (copypaste first: it needs no trained model; procedural
    only for the built-in sample dataset, whose look it paints)."""
    from segbalance.core.render.registry import renderers_for

    return sorted(renderers_for(ds), key=lambda r: r != "copypaste")


def run_generation(workspace: Workspace, ds: Dataset, plan_path: str | Path, renderer: str, *,
                   checkpoint: str | None = None, device: str = "auto", min_quality: float | None = None,
                   log: Callable[[str], None] | None = None, progress: Progress = None, cancel: Cancel = None):
    """Run (or resume) a generation job: recombine -> render -> score -> pairs in the DB; returns its result."""
    from segbalance.core.jobs.generate import run_generate

    return run_generate(workspace, ds, str(plan_path), renderer, checkpoint=checkpoint, device=device,
                        min_quality=min_quality, plan_source=str(plan_path), log=log, progress=progress,
                        cancel=cancel)


def running_jobs(workspace: Workspace) -> list[dict]:
    """Jobs of the workspace DB whose status is running (whoever started them)."""
    from segbalance.core.jobs.job_rows import job_info, list_jobs

    return [job_info(workspace, j["id"]) for j in list_jobs(workspace) if j["status"] == RUNNING]


def export_dataset(workspace: Workspace, ds: Dataset, out: str | Path,
                   include: tuple[str, ...] = DEFAULT_EXPORT, *, progress: Progress = None,
                   cancel: Cancel = None) -> dict:
    """Write the dataset plus its generated pairs (not the rejected ones) in the Cityscapes layout."""
    from segbalance.core.export.formats import export_dataset as _export

    return _export(workspace, ds, out, tuple(include), progress=progress, cancel=cancel)


# -- training a generator ----------------------------------------------------------------------------
GAN_SIZE = (256, 128)  # train-gan's default --size, what the app's "Train tiny GAN" trains at


def gan_seconds_per_iteration(device: str = "auto", steps: int = 2) -> float:
    """Seconds one tiny pix2pixHD training step takes on this machine, timed on a few real steps."""
    from segbalance.core.experiments.estimate import gan_step
    from segbalance.core.runs.runtime import resolve_device

    return gan_step("tiny", GAN_SIZE, "off", resolve_device(device), steps)[0]


def gan_samples(out_dir: str | Path, dataset: str | Path, n: int = 3) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """A GAN run's generator rendering the first n val label maps of its dataset (train maps when there is no
    val split): [(colored label map, render, sample id)], from the run's last checkpoint."""

    from segbalance.core.datasets import open_dataset
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.io import read_label_png
    from segbalance.core.render.pix2pixhd import load_renderer

    ckpt = Path(out_dir) / "ckpt.pt"
    if not ckpt.is_file():
        raise SegbalanceError("no checkpoint yet (train-gan saves one every minute and when it stops)", out_dir)
    ds = open_dataset(dataset)
    refs = ds.samples("val") or ds.samples("train") or ds.samples()
    renderer = load_renderer(ckpt, device="cpu")
    out = []
    for ref in refs[:n]:
        label = read_label_png(ref.label_path)
        label = label if label.dtype == np.uint8 else label.astype(np.uint8)
        img = np.ascontiguousarray(renderer.render(label)[..., :3], dtype=np.uint8)
        color = ds.label_set.colorize(label)
        if color.shape[:2] != img.shape[:2]:
            import cv2

            color = cv2.resize(color, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        out.append((color, img, ref.id))
    return out
