"""The built-in sample dataset: layout, determinism, class balance, rendering and the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.datasets.sample import THING_IDS, make_layout, make_sample_dataset, render_scene, sample_rng
from segbalance.core.datasets.stats import dataset_stats
from segbalance.core.errors import Cancelled

# Cityscapes train split, % of the pixels of the 19 evaluated classes
CITYSCAPES_SHARES = {
    "road": 36.9, "building": 22.8, "vegetation": 15.9, "car": 7.0, "sidewalk": 6.1, "sky": 4.0, "pole": 1.2,
    "person": 1.2, "terrain": 1.2, "fence": 0.9, "wall": 0.7, "traffic sign": 0.6, "bicycle": 0.4, "truck": 0.3,
    "bus": 0.2, "train": 0.2, "traffic light": 0.2, "rider": 0.14, "motorcycle": 0.1,
}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path: Path) -> None:
    a = _files(make_sample_dataset(tmp_path / "a", n_train=3, n_val=1, size=(96, 48), seed=5))
    b = _files(make_sample_dataset(tmp_path / "b", n_train=3, n_val=1, size=(96, 48), seed=5))
    c = _files(make_sample_dataset(tmp_path / "c", n_train=3, n_val=1, size=(96, 48), seed=6))
    assert len(a) == 4 * 4  # image, labelIds, instanceIds, color per sample
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith("_leftImg8bit.png"))
    assert sum(a[k] != c[k] for k in a if k.endswith("_labelIds.png")) >= 3


def test_a_sample_does_not_depend_on_how_many_are_generated(tmp_path: Path) -> None:
    few = _files(make_sample_dataset(tmp_path / "few", n_train=2, n_val=1, size=(96, 48)))
    many = _files(make_sample_dataset(tmp_path / "many", n_train=5, n_val=2, size=(96, 48)))
    assert few.items() <= many.items()


def test_rerun_into_the_same_folder_is_idempotent_and_drops_extra_samples(tmp_path: Path) -> None:
    root = make_sample_dataset(tmp_path / "s", n_train=4, n_val=2, size=(96, 48))
    first = _files(root)
    make_sample_dataset(root, n_train=4, n_val=2, size=(96, 48))
    assert _files(root) == first
    make_sample_dataset(root, n_train=2, n_val=1, size=(96, 48))
    ds = open_dataset(root)
    assert (len(ds.samples("train")), len(ds.samples("val"))) == (2, 1)
    assert not list(root.rglob("*.tmp"))


def test_progress_and_cancel(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    make_sample_dataset(tmp_path / "p", n_train=2, n_val=1, size=(64, 32), progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    with pytest.raises(Cancelled):
        make_sample_dataset(tmp_path / "c", n_train=5, n_val=0, size=(64, 32), cancel=lambda: True)


def test_layout_is_a_readable_cityscapes_dataset_with_consistent_instances(sample_dataset: Path) -> None:
    ds = open_dataset(sample_dataset)
    assert ds.format == "cityscapes"
    assert ds.splits() == ["train", "val"]
    assert len(ds.samples("train")) == 24 and len(ds.samples("val")) == 8
    assert {s.id.split("_")[0] for s in ds.samples("train")} == {"synthville", "procburg"}
    for ref in ds.samples():
        img, lab, inst = ds.load_image(ref), ds.load_label(ref), ds.load_instance(ref)
        assert img.shape == (128, 256, 3) and lab.shape == (128, 256) and inst is not None
        things = inst >= 1000
        assert np.array_equal(inst[things] // 1000, lab[things].astype(np.int32))
        assert np.array_equal(inst[~things], lab[~things].astype(np.int32))
        # every pixel of a thing class carries an instance id
        assert not np.isin(lab[~things], list(THING_IDS)).any()


@pytest.fixture(scope="module")
def stats_200(tmp_path_factory: pytest.TempPathFactory):
    # the default 200-image train set, at half size to keep the test quick
    root = make_sample_dataset(tmp_path_factory.mktemp("s200") / "s", n_train=200, n_val=0, size=(128, 64),
                               color=False)
    return dataset_stats(open_dataset(root), "train", workers=1)


def test_every_train_class_appears_and_rare_classes_are_rare(stats_200) -> None:
    pixels = stats_200.train_pixels()
    images = stats_200.train_images()
    names = [c.name for c in CITYSCAPES.train_classes]
    missing = [n for n, p in zip(names, pixels, strict=True) if p == 0]
    assert not missing, f"classes absent from 200 images: {missing}"
    by_name = dict(zip(names, images, strict=True))
    assert by_name["road"] == 200
    for rare in ("train", "bus", "motorcycle"):
        assert by_name[rare] < 40, f"{rare} should be in few images, is in {by_name[rare]}"


def test_pixel_shares_resemble_cityscapes(stats_200) -> None:
    pixels = stats_200.train_pixels().astype(float)
    share = dict(zip((c.name for c in CITYSCAPES.train_classes), pixels / pixels.sum() * 100, strict=True))
    for name in ("road", "building", "vegetation", "car", "sidewalk", "sky", "person", "pole", "terrain"):
        ratio = share[name] / CITYSCAPES_SHARES[name]
        assert 0.5 < ratio < 2.0, f"{name}: {share[name]:.2f}% vs Cityscapes {CITYSCAPES_SHARES[name]}%"
    order = sorted(share, key=share.get, reverse=True)
    assert order[0] == "road"


def _hand_made_map() -> tuple[np.ndarray, np.ndarray]:
    lab = np.full((128, 256), 23, np.uint8)  # sky
    lab[30:70, :100] = 11  # building
    lab[30:70, 160:] = 21  # vegetation
    lab[70:, :] = 7  # road
    lab[70:90, :40] = 8  # sidewalk
    lab[60:100, 110:150] = 26  # one car
    lab[40:100, 200:215] = 24  # one person
    lab[20:70, 104:107] = 17  # pole
    inst = lab.astype(np.int32)
    inst[lab == 26] = 26000
    inst[lab == 24] = 24000
    return lab, inst


def test_render_gives_textured_classes_whose_colour_varies_between_images() -> None:
    lab, inst = _hand_made_map()
    raw = [render_scene(lab, inst, seed) for seed in range(4)]
    assert all(i.shape == (128, 256, 3) and i.dtype == np.uint8 for i in raw)
    imgs = [i.astype(np.float32) for i in raw]
    for cid in (23, 11, 21, 7, 8, 26, 24):
        m = lab == cid
        for img in imgs:
            assert img[m].std(axis=0).max() > 2.0, f"class {cid} is a flat colour"
        means = np.array([img[m].mean(axis=0) for img in imgs])
        assert np.abs(means - means[0]).max() > 4.0, f"class {cid} has the same mean colour in every image"


def test_render_is_deterministic_and_handles_any_label_map() -> None:
    lab, inst = _hand_made_map()
    assert np.array_equal(render_scene(lab, inst, 3), render_scene(lab, inst, 3))
    # every Cityscapes id as vertical stripes, without an instance map (recombined maps may lack one)
    ids = np.array([c.id for c in CITYSCAPES.classes if c.id >= 0], np.uint8)
    stripes = np.repeat(ids, 8)[None, :].repeat(64, axis=0)
    img = render_scene(stripes, None, 1)
    assert img.shape == (64, stripes.shape[1], 3) and img.dtype == np.uint8


def test_a_generated_layout_renders_road_like_a_road() -> None:
    lab, inst = make_layout(sample_rng(0, "train", 0), (256, 128))
    img = render_scene(lab, inst, 0)
    road = img[lab == 7].astype(float)
    sky = img[lab == 23].astype(float)
    assert road.mean() < sky.mean()  # asphalt is darker than the sky


def test_cli_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["sample-data", str(out), "--n-train", "2", "--n-val", "1", "--size", "64x32", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "2 train + 1 val" in printed and str(out.resolve()) in printed
    assert len(open_dataset(out).samples()) == 3


@pytest.mark.parametrize("size", ["256", "256x", "axb", "10x10", "256*128"])
def test_cli_bad_size_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str) -> None:
    assert main(["sample-data", str(tmp_path / "x"), "--size", size]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segbalance sample-data: error:") and "--size" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_render_handles_a_real_cityscapes_map(cityscapes_sample: Path) -> None:
    # the oracle experiment renders recombined real maps: irregular shapes, void ids, real instance ids
    ds = open_dataset(cityscapes_sample)
    ref = ds.samples("train")[0]
    lab = cv2.resize(ds.load_label(ref), (512, 256), interpolation=cv2.INTER_NEAREST)
    inst = cv2.resize(ds.load_instance(ref), (512, 256), interpolation=cv2.INTER_NEAREST)
    img = render_scene(lab, inst, 0)
    assert img.shape == (256, 512, 3)
    for cid in np.unique(lab):
        m = lab == cid
        if m.sum() > 500 and cid not in (1, 2, 3):  # ego vehicle and borders are near-uniform dark on purpose
            assert img[m].std(axis=0).max() > 1.0, f"class {cid} rendered flat"
