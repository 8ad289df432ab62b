"""Datasets people have: ADE20K and mmseg layouts, JPEG photos in a generic folder, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from segbalance.core.cli import main
from segbalance.core.datasets import ADE20KDataset, MmsegDataset, open_dataset
from segbalance.core.datasets.ade20k import ADE20K_CLASSES
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.io import image_size, read_label_png
from segbalance.core.recombine.compose import recon_background, rules_for
from tests.helpers import make_folder

# ADE20K ids (1-based, as in the annotation files)
WALL, FLOOR, CEILING, PERSON, LAMP = (ADE20K_CLASSES.index(n) + 1 for n in ("wall", "floor", "ceiling", "person",
                                                                             "lamp"))


def make_ade20k(parent: Path, n_train: int = 6, n_val: int = 2, h: int = 48, w: int = 64) -> Path:
    """A tiny ADEChallengeData2016 folder: rooms (wall, floor, ceiling, some 0 = other), people, a rare lamp."""
    root = parent / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    for split, n in (("training", n_train), ("validation", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            lab = np.full((h, w), WALL, np.uint8)
            lab[: h // 6] = CEILING
            lab[2 * h // 3 :] = FLOOR
            lab[h // 6 : h // 6 + 3, : w // 4] = 0  # unlabeled pixels
            x = int(rng.integers(0, w - 10))
            lab[h // 3 : h - 4, x : x + 8] = PERSON
            if i == 0:
                lab[h // 6 : h // 6 + 8, w - 12 : w - 4] = LAMP
            img = np.zeros((h, w, 3), np.uint8)
            for cid in np.unique(lab):
                img[lab == cid] = rng.integers(30, 220, 3)
            stem = f"ADE_{split}_{i + 1:08d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(root / "annotations" / split / f"{stem}.png"), lab)
    return root


def _pipeline(tmp_path: Path, data: Path, target: str, budget: int = 4, strategy: str = "auto") -> tuple[Path, dict]:
    """stats -> plan -> recombine -> generate (copypaste) -> export mmseg, all through the CLI."""
    ws = tmp_path / "ws"
    assert main(["stats", str(data), "--workspace", str(ws), "--workers", "1"]) == 0
    plan = tmp_path / "plan.json"
    assert main(["plan", str(data), "--workspace", str(ws), "--target", target, "--budget", str(budget),
                 "--strategy", strategy, "--out", str(plan)]) == 0
    assert main(["recombine", str(plan), "--workspace", str(ws), "--out", str(tmp_path / "maps")]) == 0
    assert len(list((tmp_path / "maps").glob("*_gtFine_labelIds.png"))) == budget
    assert main(["generate", "--workspace", str(ws), "--dataset", str(data), "--plan", str(plan),
                 "--renderer", "copypaste"]) == 0
    assert main(["export", "--workspace", str(ws), "--dataset", str(data), "--out", str(tmp_path / "E"),
                 "--format", "mmseg"]) == 0
    return ws, json.loads(plan.read_text())


def test_ade20k_reads_with_zero_label_reduced(tmp_path):
    root = make_ade20k(tmp_path)
    for given in (root, tmp_path):  # the folder itself or its parent
        ds = open_dataset(given)
        assert isinstance(ds, ADE20KDataset) and ds.root == root.resolve()
    assert ds.splits() == ["train", "val"] and len(ds.samples("train")) == 6
    assert ds.label_set.num_train_classes == 150
    ref = ds.samples("train")[0]
    lab = ds.load_label(ref)
    tid = ds.load_train_ids(ref)
    assert np.all(tid[lab == 0] == 255) and np.all(tid[lab == WALL] == WALL - 1)
    assert np.all(tid[lab == LAMP] == LAMP - 1)
    assert image_size(ref.image_path) == lab.shape
    assert ds.load_image(ref).shape == (*lab.shape, 3)


def test_ade20k_stats_plan_recombine_generate(tmp_path, capsys):
    root = make_ade20k(tmp_path / "data")
    capsys.readouterr()
    assert main(["stats", str(root), "--json", "--workers", "1"]) == 0
    st = json.loads(capsys.readouterr().out)
    by = {c["name"]: c for c in st["classes"]}
    assert "other" not in by or by["other"]["train_id"] == 255
    assert by["lamp"]["images"] == 1 and by["wall"]["train_id"] == 0
    ws, plan = _pipeline(tmp_path, root, "lamp=0.05")
    ds = open_dataset(tmp_path / "E", "mmseg")
    assert len(ds.samples("generated")) == 4
    ann = read_label_png(next((tmp_path / "E" / "ann_dir" / "generated").iterdir()))
    assert (ann == LAMP - 1).any(), "each generated map carries the rare class"
    assert set(np.unique(ann)) <= set(range(150)) | {255}


def test_ade20k_recon_keeps_room_background(tmp_path):
    """Recon removes things (people) and fills with the room's stuff (wall, floor), not with street classes."""
    root = make_ade20k(tmp_path)
    ds = open_dataset(root)
    lab = ds.load_label(ds.samples("train")[1])
    out = recon_background(lab, rules_for(ds.label_set), step=1)
    assert not (out == PERSON).any()
    assert set(np.unique(out)) <= {WALL, FLOOR, CEILING, 0}


def test_objects_only_label_set_recon_keeps_the_map(tmp_path):
    """A generic folder without categories (all 'object'): recon keeps the base instead of erasing it."""
    ls = open_dataset(make_folder(tmp_path / "f")).label_set
    lab = np.array([[0, 1, 2, 2]], np.uint8)
    assert np.array_equal(recon_background(lab, rules_for(ls), step=1), lab)


def test_folder_with_jpeg_images_end_to_end(tmp_path):
    """Issue 15 item 12: JPEG photos in a generic folder are read (labels stay PNG)."""
    root = make_folder(tmp_path / "f", n=6, size=(64, 32))
    rng = np.random.default_rng(1)
    for p in sorted((root / "images").glob("*.png")):
        cv2.imwrite(str(p.with_suffix(".jpg")), rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
        p.unlink()
    ds = open_dataset(root)
    ref = ds.samples("train")[0]
    assert ref.image_path.suffix == ".jpg" and ds.load_image(ref).shape == (32, 64, 3)
    _pipeline(tmp_path, root, "rust=0.6", budget=2)
    exp = open_dataset(tmp_path / "E")
    assert len(exp.samples("train")) == 6 and len(exp.samples("generated")) == 2


def test_truncated_jpeg_is_one_line(tmp_path, capsys):
    root = make_folder(tmp_path / "f", n=2, size=(64, 32))
    img = root / "images" / "img0.png"
    cv2.imwrite(str(img.with_suffix(".jpg")), np.full((32, 64, 3), 90, np.uint8))
    img.unlink()
    data = img.with_suffix(".jpg").read_bytes()
    img.with_suffix(".jpg").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["stats", str(root), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "img0.jpg" in err and "truncated JPEG" in err


def test_mmseg_layout_with_a_list_of_names(tmp_path):
    root = tmp_path / "m"
    for split in ("train", "val"):
        (root / "img_dir" / split).mkdir(parents=True)
        (root / "ann_dir" / split).mkdir(parents=True)
        for i in range(3):
            ann = np.zeros((16, 32), np.uint8)
            ann[:, 16:] = 1
            ann[0, 0] = 255
            cv2.imwrite(str(root / "ann_dir" / split / f"s{i}.png"), ann)
            cv2.imwrite(str(root / "img_dir" / split / f"s{i}.jpg"), np.full((16, 32, 3), 50 * i, np.uint8))
    (root / "classes.json").write_text(json.dumps(["soil", "crop"]))
    ds = open_dataset(root)
    assert isinstance(ds, MmsegDataset) and ds.splits() == ["train", "val"]
    ref = ds.samples("val")[0]
    assert ds.load_train_ids(ref)[0, 0] == 255 and ds.load_train_ids(ref)[0, 20] == 1
    assert [c.name for c in ds.label_set.train_classes] == ["soil", "crop"]


def test_mmseg_without_classes_is_one_line(tmp_path, capsys):
    (tmp_path / "m" / "img_dir" / "train").mkdir(parents=True)
    (tmp_path / "m" / "ann_dir" / "train").mkdir(parents=True)
    capsys.readouterr()
    assert main(["stats", str(tmp_path / "m")]) == 2
    assert "needs a classes.json" in capsys.readouterr().err


def test_mmseg_export_reads_back_as_a_dataset(tmp_path, sample_dataset):
    ws = tmp_path / "ws"
    assert main(["export", "--workspace", str(ws), "--dataset", str(sample_dataset), "--out", str(tmp_path / "E"),
                 "--format", "mmseg"]) == 2  # no workspace yet: one line
    from segbalance.core.workspace import Workspace

    Workspace(ws).close()
    assert main(["export", "--workspace", str(ws), "--dataset", str(sample_dataset), "--out", str(tmp_path / "E"),
                 "--format", "mmseg"]) == 0
    exp, orig = open_dataset(tmp_path / "E"), open_dataset(sample_dataset)
    assert isinstance(exp, MmsegDataset) and isinstance(exp.label_set, LabelSet)
    a, b = exp.samples("val")[0], orig.samples("val")[0]
    assert a.id == b.id and np.array_equal(exp.load_label(a), orig.label_set.train_to_id_lut[
        orig.label_set.id_to_train_lut[orig.load_label(b)]])


def test_daformer_class_stats_equal_a_hand_count(tmp_path, capsys):
    """stats --daformer: DAFormer's sample_class_stats.json / samples_with_class.json, counted by hand here."""
    from tests.helpers import make_cityscapes

    root = make_cityscapes(tmp_path / "cs", n=3, size=(64, 32))
    out = tmp_path / "daformer"
    assert main(["stats", str(root), "--workers", "1", "--daformer", str(out)]) == 0
    per_sample = json.loads((out / "sample_class_stats.json").read_text())
    with_class = json.loads((out / "samples_with_class.json").read_text())
    # make_cityscapes: road (train 0) below, sky (10) top third, building (2) a block, one 8x6 car (13)
    expect = []
    for i in range(3):
        lab = read_label_png(root / "gtFine/train/testcity" / f"testcity_{i:06d}_000019_gtFine_labelIds.png")
        hand = {"0": int((lab == 7).sum()), "2": int((lab == 11).sum()), "10": int((lab == 23).sum()),
                "13": int((lab == 26).sum())}
        assert hand["13"] == 48 and sum(hand.values()) == 64 * 32
        expect.append({**hand, "file": f"gtFine/train/testcity/testcity_{i:06d}_000019_gtFine_labelTrainIds.png"})
    assert per_sample == expect
    assert sorted(with_class) == ["0", "10", "13", "2"]
    assert with_class["13"] == [[e["file"], 48] for e in expect]
    by_file = json.loads((out / "sample_class_stats_dict.json").read_text())
    assert by_file[expect[0]["file"]]["10"] == expect[0]["10"]
