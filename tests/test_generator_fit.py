"""A generator is checked against the dataset before it renders (issue 41, item 8): one clear refusal for a
generator trained on another label set or image shape, in the CLI's generate as in the app; the procedural
renderer is offered only for the built-in sample dataset."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import select

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.labels import CITYSCAPES, LabelSet
from segbalance.core.errors import SegbalanceError
from segbalance.core.render.registry import GeneratorMismatch, check_generator_fits, renderers_for
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from tests.helpers import make_folder
from tests.test_jobs import _plan

CAMVID_LIKE = {"name": "camvid", "classes": [{"id": 0, "name": "sky", "color": [128, 128, 128]},
                                             {"id": 1, "name": "building", "color": [128, 0, 0]}]}


def fake_train_gan_checkpoint(path, label_set: dict, size=(256, 128)):
    """What train-gan's ckpt.pt says about itself (label set, size), without weights: the check reads no more."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"G": {}, "config": {"size": list(size), "arch": {}}, "label_set": label_set,
                "dataset": {"path": "/elsewhere"}}, path)
    return path


def test_a_generator_of_another_label_set_is_refused_naming_the_first_id_that_differs(sample_dataset, tmp_path):
    ds = open_dataset(sample_dataset)
    ckpt = fake_train_gan_checkpoint(tmp_path / "g" / "ckpt.pt", CAMVID_LIKE)
    with pytest.raises(GeneratorMismatch) as e:
        check_generator_fits(ds, ckpt)
    msg = str(e.value)
    assert "trained on label set 'camvid', not this dataset's 'cityscapes'" in msg
    assert "id 0 is 'unlabeled' here but 'sky' to the generator" in msg and str(ckpt) in msg


def test_the_bare_generator_beside_its_run_checkpoint_is_checked_too(sample_dataset, tmp_path):
    ds = open_dataset(sample_dataset)
    fake_train_gan_checkpoint(tmp_path / "g" / "ckpt.pt", CAMVID_LIKE)
    bare = tmp_path / "g" / "latest_net_G.pth"
    torch.save({"w": torch.zeros(1)}, bare)
    with pytest.raises(GeneratorMismatch):
        check_generator_fits(ds, bare)


def test_a_generator_of_another_shape_is_refused_and_a_fitting_one_passes(sample_dataset, tmp_path):
    ds = open_dataset(sample_dataset)  # 256x128 maps
    square = fake_train_gan_checkpoint(tmp_path / "sq" / "ckpt.pt", CITYSCAPES.to_dict(), size=(128, 128))
    with pytest.raises(GeneratorMismatch, match=r"renders 128x128 images .* maps are 256x128"):
        check_generator_fits(ds, square)
    fits = fake_train_gan_checkpoint(tmp_path / "ok" / "ckpt.pt", CITYSCAPES.to_dict(), size=(512, 256))
    check_generator_fits(ds, fits)  # same labels, same aspect: no word
    official = tmp_path / "official" / "latest_net_G.pth"
    official.parent.mkdir()
    torch.save({"w": torch.zeros(1)}, official)
    check_generator_fits(ds, official)  # no label set known: only the label_nc check applies (at load)


def test_cli_generate_refuses_a_mismatched_generator_in_one_line_and_starts_nothing(sample_dataset, tmp_path,
                                                                                  capsys):
    ws = tmp_path / "ws"
    plan = _plan(sample_dataset, ws, tmp_path / "plan.json")
    ckpt = fake_train_gan_checkpoint(tmp_path / "g" / "ckpt.pt", CAMVID_LIKE)
    rc = main(["generate", "--workspace", str(ws), "--dataset", str(sample_dataset), "--plan", str(plan),
               "--renderer", "pix2pixhd", "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "trained on label set 'camvid'" in err[0] and "Traceback" not in err[0]
    with Workspace(ws) as w, w.session() as s:
        assert s.scalar(select(m.Job).where(m.Job.kind == "generate")) is None, "nothing started"
        assert s.scalar(select(m.GeneratedPair)) is None


def test_procedural_is_offered_only_for_the_sample_dataset(sample_dataset, tmp_path):
    assert "procedural" in renderers_for(open_dataset(sample_dataset))
    from tests.helpers import make_cityscapes

    assert "procedural" not in renderers_for(open_dataset(make_cityscapes(tmp_path / "city")))
    assert "procedural" not in renderers_for(open_dataset(make_folder(tmp_path / "defects")))
    assert renderers_for(None) == ["copypaste", "pix2pixhd"]


def test_a_mismatch_is_a_user_error_the_cli_reports_in_one_line():
    assert issubclass(GeneratorMismatch, SegbalanceError)
    assert LabelSet.from_dict(CITYSCAPES.to_dict()).by_id[0].name == "unlabeled"  # what the message names
