"""CamVid as SegNet distributes it, read in place, through the whole pipeline; rare classes from statistics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.labels import BUILTIN, CAMVID
from segbalance.core.errors import DataError


def _sb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segbalance.core.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_camvid_layout_is_detected_with_its_classes_and_palette(camvid_sample: Path) -> None:
    ds = open_dataset(camvid_sample)
    assert ds.format == "camvid" and ds.label_set is CAMVID and BUILTIN["camvid"] is CAMVID
    assert {s: len(ds.samples(s)) for s in ds.splits()} == {"train": 16, "val": 6, "test": 6}
    names = [c.name for c in ds.label_set.train_classes]
    assert names == ["sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car",
                     "pedestrian", "bicyclist"]
    assert ds.label_set.by_id[11].ignore_in_eval and ds.label_set.id_to_train_lut[11] == 255
    assert ds.label_set.ignore_id == 11  # what erasers paint: void, not sky (id 0)
    assert tuple(ds.label_set.palette[10]) == (0, 128, 192) and tuple(ds.label_set.palette[0]) == (128, 128, 128)
    # categories drive recombination's occlusion rules
    cat = {c.name: c.category for c in ds.label_set.classes}
    assert cat["road"] == cat["pavement"] == "flat" and cat["sky"] == "sky" and cat["pedestrian"] == "human"
    ref = ds.samples("train")[0]
    assert ds.load_label(ref).shape == ds.load_image(ref).shape[:2] == (360, 480)


def test_camvid_label_map_without_image_names_the_file(tmp_path: Path) -> None:
    for d in ("train", "trainannot"):
        (tmp_path / d).mkdir()
    cv2.imwrite(str(tmp_path / "trainannot" / "a.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="label map has no image") as e:
        open_dataset(tmp_path).samples()
    assert "a.png" in str(e.value)


def test_void_is_ignored_in_stats_and_in_the_metric(camvid_sample: Path, tmp_path: Path) -> None:
    from segbalance.core.datasets.stats import dataset_stats
    from segbalance.core.seg.metrics import confusion_matrix, mean_iou

    ds = open_dataset(camvid_sample)
    st = dataset_stats(ds, "train")
    void = int(st.pixels[11])
    assert void > 0
    assert st.labeled_pixels == int(st.pixels.sum()) - void
    assert len(st.train_pixels()) == 11
    # a prediction that is wrong only on void pixels scores as a perfect one
    t = ds.load_train_ids(ds.samples("train")[0])
    assert (t == 255).any()
    wrong_on_void = np.where(t == 255, 3, t).astype(np.uint8)
    assert mean_iou(confusion_matrix(wrong_on_void, t, 11)) == pytest.approx(1.0)


def test_layers_of_a_label_map_with_no_instance_map_are_connected_regions() -> None:
    from segbalance.core.recombine.layers import decompose

    lab = np.full((20, 30), 3, np.uint8)  # road
    lab[2:6, 2:6] = 9  # two pedestrians apart
    lab[10:15, 20:24] = 9
    lab[2:4, 10:12] = 9  # and one touching nothing but road
    cuts = decompose(lab, None, CAMVID)
    peds = [c for c in cuts if c.class_id == 9]
    assert len(peds) == 3 and sorted(c.area for c in peds) == [4, 16, 20]
    assert sum(c.area for c in cuts) == lab.size


def test_rare_classes_come_from_the_statistics_and_rare_overrides() -> None:
    from segbalance.core.planning.rare import multi_targets, parse_rare, rare_classes, single_target

    shares = {"road": 0.4, "sky": 0.2, "car": 0.05, "pole": 0.012, "fence": 0.019, "cyclist": 0.003,
              "sign": 0.0199, "absent": 0.0}
    assert rare_classes(shares) == ["cyclist", "pole", "fence", "sign"]  # rarest first; absent is not rare
    assert rare_classes(shares, limit=2) == ["cyclist", "pole"]
    layers = {"cyclist": 0, "pole": 7, "fence": 3, "sign": 1}
    assert single_target(["cyclist", "pole", "fence"], layers) == "pole"  # the first with a layer to paste
    assert multi_targets(["cyclist", "pole", "fence", "sign"], layers, limit=2) == ["pole", "fence"]
    assert parse_rare("pole, sign symbol,pole", CAMVID) == ["pole", "sign symbol"]
    with pytest.raises(DataError, match="unknown class 'wall'"):
        parse_rare("wall", CAMVID)
    with pytest.raises(DataError, match="not trained on"):
        parse_rare("unlabelled", CAMVID)


def test_experiment_rare_uses_the_rule_off_cityscapes_and_the_list_when_given(camvid_sample: Path) -> None:
    from segbalance.core.datasets.stats import dataset_stats
    from segbalance.core.experiments.protocol import experiment_rare, preset

    ds = open_dataset(camvid_sample)
    st = dataset_stats(ds, "train")
    rare, why = experiment_rare(preset("ci"), ds.label_set, st)  # ci asks for the paper's classes: not CamVid's
    assert rare == ["bicyclist", "pedestrian", "pole", "fence", "sign symbol"] and "under 2%" in why
    assert "wall" not in rare and "motorcycle" not in rare
    rare, why = experiment_rare(preset("ci", rare=("fence", "pole")), ds.label_set, st)
    assert (rare, why) == (["fence", "pole"], "--rare")


def test_camvid_config_needs_a_dataset_and_evaluates_on_test() -> None:
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.experiments.protocol import preset

    with pytest.raises(SegbalanceError, match="needs --dataset"):
        preset("camvid")
    cfg = preset("camvid", dataset="x")
    assert cfg.eval_split == "test" and cfg.seeds == 3 and cfg.rare == "auto"
    assert set(cfg.arms) >= {"baseline", "copypaste", "recon", "rcs"}
    r = _sb("experiment", "--config", "camvid")
    assert r.returncode == 2 and "needs --dataset" in r.stderr and "Traceback" not in r.stderr


def test_resized_copy_keeps_ids_splits_and_classes(camvid_sample: Path, tmp_path: Path) -> None:
    from segbalance.core.datasets.resize import resized_copy

    ds = open_dataset(camvid_sample)
    out = resized_copy(ds, tmp_path / "small", (96, 72))
    small = open_dataset(out)
    assert small.label_set == CAMVID and small.splits() == ds.splits()
    assert [r.id for r in small.samples()] == [r.id for r in ds.samples()]
    ref = small.samples("test")[0]
    lab = small.load_label(ref)
    assert lab.shape == small.load_image(ref).shape[:2] == (72, 96)
    assert set(np.unique(lab)) <= set(np.unique(ds.load_label(ds.samples("test")[0])))  # nearest: no new ids
    assert resized_copy(ds, out, (96, 72)) == out  # complete: reused
    with pytest.raises(DataError, match="fresh output folder"):
        resized_copy(ds, out, (64, 48))


def test_real_frames_end_to_end_through_the_cli(camvid_sample: Path, tmp_path: Path) -> None:
    """stats -> plan -> recombine -> generate (copy-paste, 4-iteration pix2pixHD) -> export (every format) ->
    train-seg 3 iterations -> evaluate on test -> gan-score, as a user types them."""
    d, ws = str(camvid_sample), str(tmp_path / "ws")
    r = _sb("stats", d, "--workspace", ws, "--json")
    assert r.returncode == 0, r.stderr
    classes = {c["name"]: c for c in json.loads(r.stdout)["classes"]}
    assert "unlabelled" in classes and classes["bicyclist"]["pixel_share"] < 0.01
    plan = str(tmp_path / "plan.json")
    r = _sb("plan", d, "--workspace", ws, "--preset", "raise-rare:0.02", "--budget", "4", "--strategy", "recon",
            "--out", plan)
    assert r.returncode == 0, r.stderr
    targets = json.loads(Path(plan).read_text())["target"]
    assert set(targets) <= {"bicyclist", "pedestrian", "pole", "fence", "sign symbol"} and targets
    r = _sb("recombine", plan, "--workspace", ws, "--out", str(tmp_path / "maps"))
    assert r.returncode == 0, r.stderr
    maps = sorted((tmp_path / "maps").glob("*labelIds.png"))
    assert len(maps) == 4
    for m in maps:
        ids = set(np.unique(cv2.imread(str(m), cv2.IMREAD_UNCHANGED)).tolist())
        assert ids <= set(range(12))
    assert _sb("generate", "--workspace", ws, "--dataset", d, "--plan", plan, "--renderer",
               "copypaste").returncode == 0
    gan = tmp_path / "gan"
    r = _sb("train-gan", d, "--workspace", ws, "--out", str(gan), "--preset", "tiny", "--iters", "4", "--size",
            "64x48")
    assert r.returncode == 0, r.stderr
    r = _sb("generate", "--workspace", ws, "--dataset", d, "--plan", plan, "--renderer", "pix2pixhd",
            "--checkpoint", str(gan / "ckpt.pt"))
    assert r.returncode == 0, r.stderr
    r = _sb("pairs", "--workspace", ws, "--json")
    pairs = json.loads(r.stdout)
    assert len(pairs) == 8 and {p["status"] for p in pairs} == {"pending"}
    for fmt in ("cityscapes", "mmseg", "hf"):
        out = tmp_path / f"export-{fmt}"
        r = _sb("export", "--workspace", ws, "--dataset", d, "--out", str(out), "--format", fmt)
        assert r.returncode == 0, (fmt, r.stderr)
        assert (out / "classes.json").exists() or (out / "id2label.json").exists()
    # the Cityscapes-layout export reads back with CamVid's classes, generated pairs included
    back = open_dataset(tmp_path / "export-cityscapes")
    assert back.label_set.name == "camvid" and len(back.samples("train")) == 16 + 8
    run = tmp_path / "run"
    r = _sb("train-seg", d, "--workspace", ws, "--out", str(run), "--iters", "3", "--batch", "2", "--crop",
            "96x128", "--workers", "0", "--backbone", "resnet18", "--extra", "pairs", "--extra-status", "pending")
    assert r.returncode == 0, r.stderr
    r = _sb("evaluate", str(run), "--dataset", d, "--split", "test", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["n_images"] == 6 and set(res["per_class"]) == {c.name for c in CAMVID.train_classes}
    r = _sb("gan-score", "--seg-checkpoint", str(run), "--dataset", d, "--workspace", ws, "--job", "1",
            "--max-images", "2", "--json")
    assert r.returncode == 0, r.stderr


def test_ci_experiment_on_the_camvid_sample(camvid_sample: Path, tmp_path: Path) -> None:
    from segbalance.core.experiments.protocol import preset, run_experiment

    # on a 128x96 copy, as the camvid config runs on a 256x192 one
    cfg = preset("ci", dataset=str(camvid_sample), arms=("baseline", "copypaste", "recon"), eval_split="test",
                 resize=(128, 96), gan_size=(128, 96), threads=1)
    said: list[str] = []
    payload = run_experiment(cfg, tmp_path / "exp", say=said.append)
    assert payload["rare"] == ["bicyclist", "pedestrian", "pole", "fence", "sign symbol"]
    assert payload["eval_split"] == "test" and payload["n_val"] == 6
    assert set(payload["arms"]) == {"baseline", "copypaste", "recon"}
    # the table is computed on test: each run's counts cover the 6 test frames
    counts = np.load(tmp_path / "exp" / "runs" / "baseline-seed0" / "test_counts.npy")
    assert counts.shape == (6, 11, 3)
    assert open_dataset(tmp_path / "exp" / "dataset-128x96").label_set.name == "camvid"
    table = (tmp_path / "exp" / "results.md").read_text()
    assert "resized to 128x96" in table and "6 test images" in table and "bicyclist" in table and "wall" not in table
    assert any("rare classes (train classes under 2%" in s for s in said)
    # the generator was trained on CamVid's 12 label ids, not Cityscapes' 35
    from segbalance.core.render.pix2pixhd import read_checkpoint

    ck = read_checkpoint(tmp_path / "exp" / "gan-seed0" / "ckpt.pt")
    assert ck["config"]["arch"]["label_nc"] == 12
