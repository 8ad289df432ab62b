"""The label-to-image score: the oracle renderer scores like the real images, a renderer that draws nothing
scores far below, and the command prints both next to each other."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.render.interface import Renderer
from segbalance.core.render.procedural import ProceduralRenderer
from segbalance.core.seg.gan_score import score_real, score_renderer
from segbalance.core.seg.quality import load_scorer

# the oracle paints the val maps with new seeds: same image distribution, so the same score up to the
# sampling noise of 24 small val images
TOLERANCE = 0.06


class Blank(Renderer):
    """Draws nothing: a flat grey image whatever the map."""

    name = "blank"

    def render(self, items):
        return [np.full((*it.label.shape, 3), 128, np.uint8) for it in items]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from segbalance.core.datasets.sample import make_sample_dataset
    from segbalance.core.seg.train import SegTrainConfig, train_seg

    base = tmp_path_factory.mktemp("score")
    ds_root = make_sample_dataset(base / "ds", n_train=24, n_val=24, size=(96, 48), seed=1)
    cfg = SegTrainConfig(dataset=str(ds_root), out_dir=str(base / "run"), workspace=str(base / "ws"),
                         backbone="resnet18", crop=(48, 96), batch=4, iters=150, workers=0, log_interval=20,
                         amp="off", device="cpu", stdout_json=False, threads=2, lr=0.02, scale=(0.75, 1.5))
    train_seg(cfg)
    return open_dataset(ds_root), base / "run"


def test_oracle_renders_score_like_real_images_and_blank_ones_do_not(scored):
    ds, run = scored
    scorer = load_scorer(run, device="cpu")
    real = score_real(scorer, ds, "val")
    oracle = score_renderer(scorer, ds, ProceduralRenderer(), "val", seed=100)
    blank = score_renderer(scorer, ds, Blank(), "val")
    assert real["n_images"] == oracle["n_images"] == 24
    assert real["miou"] > 0.12  # the segmenter has learned something, or the comparison means nothing
    assert abs(oracle["miou"] - real["miou"]) < TOLERANCE, (oracle["miou"], real["miou"])
    assert blank["miou"] < real["miou"] - 0.1
    assert real["image_counts"].shape == (24, ds.label_set.num_train_classes, 3)


def test_gan_score_command_prints_both_and_ratio(scored, capsys):
    ds, run = scored
    rc = main(["gan-score", "--seg-checkpoint", str(run), "--dataset", str(ds.root), "--renderer", "procedural",
               "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(out) == {"real", "rendered", "ratio"}
    assert out["ratio"] == pytest.approx(out["rendered"]["miou"] / out["real"]["miou"])
    rc = main(["gan-score", "--seg-checkpoint", str(run), "--dataset", str(ds.root), "--device", "cpu"])
    assert rc == 2 and "either --job N" in capsys.readouterr().err
