"""Recombination engine and balance planner: layer bank, recipes, planner, CLI, real Cityscapes frames."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.datasets.stats import dataset_stats, pixel_counts
from segbalance.core.errors import DataError
from segbalance.core.planning.balance import Plan, parse_target_spec, plan_balance, preset_target
from segbalance.core.recombine import Placement, Recipe, apply_recipe, build_layer_bank, compose, decompose, rules_for
from segbalance.core.recombine.compose import recon_background, sort_layers
from segbalance.core.recombine.layers import unpack_mask
from segbalance.core.workspace import Workspace
from tests.recombine_helpers import BUILDING, CAR, EGO, FENCE, PERSON, ROAD, SKY, WALL, make_dataset, scene

LS = CITYSCAPES
VALID = set(LS.valid_ids.tolist())


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    ds_root = make_dataset(root / "ds", n=6)
    ds = open_dataset(ds_root)
    ws = Workspace(root / "ws")
    bank = build_layer_bank(ds, ws, workers=1)
    stats = dataset_stats(ds, "train", workspace=ws, workers=1)
    yield ds, ws, bank, stats, root
    ws.close()


# -- layers ----------------------------------------------------------------------------------------
def test_decompose_keeps_touching_cars_apart_and_regions_whole():
    lab, inst = scene(np.random.default_rng(3))
    cuts = decompose(lab, inst, LS)
    cars = [c for c in cuts if c.class_id == CAR]
    assert len(cars) == 2, "two touching cars are two instances, so two layers"
    assert sorted(c.instance_id for c in cars) == [CAR * 1000, CAR * 1000 + 1]
    assert all(c.area == 120 for c in cars)
    # every layer mask is exactly its class's pixels inside its bbox
    for c in cuts:
        m = unpack_mask(c.blob, c.h, c.w)
        assert m.sum() == c.area
        assert (lab[c.y:c.y + c.h, c.x:c.x + c.w][m] == c.class_id).all()
        assert c.bottom == pytest.approx((c.y + c.h) / lab.shape[0])
    # ego vehicle (void) is never a layer; stuff regions cover all their class pixels
    assert not any(c.class_id == EGO for c in cuts)
    road = sum(c.area for c in cuts if c.class_id == ROAD)
    assert road == (lab == ROAD).sum()


def test_bank_is_reused_on_second_run(synth):
    ds, ws, bank, _, _ = synth
    t = time.perf_counter()
    again = build_layer_bank(ds, ws, workers=1)
    assert again.bank_id == bank.bank_id
    assert len(again) == len(bank) > 0
    assert time.perf_counter() - t < 2.0
    for k in ("class_id", "x", "y", "w", "h", "offset"):
        assert np.array_equal(again.cols[k], bank.cols[k])
    # masks read back from the shard match the label maps
    r = int(bank.rows_of_class(WALL)[0])
    sample = bank.samples[int(bank.cols["sample_idx"][r])]["name"]
    lab = ds.load_label(ds.sample(sample))
    x, y, w, h = (int(bank.cols[k][r]) for k in ("x", "y", "w", "h"))
    assert (lab[y:y + h, x:x + w][bank.mask(r)] == WALL).all()


# -- compositing properties (random label maps, no DB) --------------------------------------------
def _ids():
    return st.sampled_from(sorted(VALID))


@st.composite
def random_case(draw):
    h, w = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    pal = np.array(draw(st.lists(_ids(), min_size=1, max_size=6)))
    # blocky random maps: regions, not noise
    small = pal[rng.integers(0, pal.size, (max(1, h // 4), max(1, w // 4)))].astype(np.uint8)
    src = np.kron(small, np.ones((4, 4), np.uint8))[:h, :w]
    src = np.pad(src, ((0, h - src.shape[0]), (0, w - src.shape[1])), mode="edge")
    base = pal[rng.integers(0, pal.size, (max(1, h // 3), max(1, w // 3)))].astype(np.uint8)
    base = np.kron(base, np.ones((3, 3), np.uint8))
    base = np.pad(base, ((0, max(0, h - base.shape[0])), (0, max(0, w - base.shape[1]))), mode="edge")[:h, :w]
    return src, base, seed


def _place_all(cuts, rng, h, w, classes=None):
    out, masks = [], {}
    for c in cuts:
        if classes is not None and c.class_id not in classes:
            continue
        s = float(rng.uniform(0.5, 1.5))
        pw, ph = max(1, round(c.w * s)), max(1, round(c.h * s))
        p = Placement("src", c.key, c.class_id, (c.x, c.y, c.w, c.h), int(rng.integers(-pw, w)),
                      int(rng.integers(-ph, h)), pw, ph, bool(rng.random() < 0.5))
        out.append(p)
        masks[c.key] = unpack_mask(c.blob, c.h, c.w)
    return out, masks


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_composed_maps_hold_only_valid_ids_and_pasted_classes(case):
    src, base, seed = case
    rng = np.random.default_rng(seed)
    cuts = decompose(src, None, LS)
    if not cuts:
        return
    cls = cuts[int(rng.integers(len(cuts)))].class_id
    layers, masks = _place_all(cuts, rng, *base.shape, classes={cls})
    rules = rules_for(LS)
    lab = base.copy()
    inst = base.astype(np.int32)
    compose(lab, inst, sort_layers(layers, rules), lambda p: masks[p.key], rules)
    assert set(np.unique(lab).tolist()) <= VALID
    before, after = pixel_counts(base), pixel_counts(lab)
    # a single recipe adds pixels of its class only: every other class can only lose pixels
    grew = np.flatnonzero(after > before)
    assert set(grew.tolist()) <= {cls}
    # protected pixels (ego vehicle, out of roi, rectification border) never change
    prot = rules.protected[base]
    assert (lab[prot] == base[prot]).all()
    # ground classes never land on sky
    if rules.ground[cls]:
        assert not (rules.sky[base] & (lab == cls) & (base != cls)).any()
    # instance map stays consistent with the label map
    things = inst >= 1000
    assert (inst[things] // 1000 == lab[things]).all()
    assert (inst[~things] == lab[~things]).all()


@settings(max_examples=25, deadline=None)
@given(random_case())
def test_recon_background_removes_every_thing(case):
    src, _, _ = case
    rules = rules_for(LS)
    bg = recon_background(src, rules, step=2)
    assert not rules.thing[bg].any() or rules.thing[src].all()
    keep = ~rules.thing[src]
    assert (bg[keep] == src[keep]).all()


def test_occlusion_order_and_fresh_instance_ids():
    rules = rules_for(LS)
    base = np.full((20, 20), ROAD, np.uint8)
    base[5:10, 5:10] = CAR
    inst = base.astype(np.int32)
    inst[5:10, 5:10] = CAR * 1000 + 7
    full = np.ones((20, 20), bool)
    wall = Placement("s", 0, WALL, (0, 0, 20, 20), 0, 0, 20, 20)
    car = Placement("s", 1, CAR, (0, 0, 4, 4), 12, 12, 4, 4)
    person = Placement("s", 2, PERSON, (0, 0, 3, 3), 14, 14, 3, 3)
    masks = {0: full, 1: np.ones((4, 4), bool), 2: np.ones((3, 3), bool)}
    layers = sort_layers([person, car, wall], rules)
    assert [p.class_id for p in layers] == [WALL, CAR, PERSON]
    lab = base.copy()
    compose(lab, inst, layers, lambda p: masks[p.key], rules)
    assert (lab[5:10, 5:10] == CAR).all(), "a construction layer goes behind the vehicle already there"
    assert (inst[5:10, 5:10] == CAR * 1000 + 7).all()
    assert lab[12, 12] == CAR and inst[12, 12] == CAR * 1000 + 8, "pasted car gets a fresh instance id"
    assert lab[15, 15] == PERSON and inst[15, 15] == PERSON * 1000 + 1
    assert lab[0, 0] == WALL and inst[0, 0] == WALL


# -- recipes, replay, planner -----------------------------------------------------------------------
def test_plan_recipes_roundtrip_and_replay_bit_exact(synth):
    ds, _, bank, stats, _ = synth
    plan = plan_balance(stats, bank, "wall=0.05,fence=0.05", 6, "auto", seed=3)
    assert 0 < len(plan.recipes) <= 6
    again = Plan.from_json(plan.to_json())
    assert [r.to_dict() for r in again.recipes] == [r.to_dict() for r in plan.recipes]
    assert again.to_dict() == plan.to_dict()  # every field survives, `skipped` included
    plan.skipped = ["rider"]
    assert Plan.from_json(plan.to_json()).skipped == ["rider"]
    plan.skipped = []
    for r, r2 in zip(plan.recipes, again.recipes, strict=True):
        a = apply_recipe(r, ds, bank)
        b = apply_recipe(Recipe.from_dict(json.loads(json.dumps(r2.to_dict()))), ds, bank)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert a[0].dtype == np.uint8 and a[1].dtype == np.int32
    # same seed, same plan; other seed, other plan
    same = plan_balance(stats, bank, "wall=0.05,fence=0.05", 6, "auto", seed=3)
    assert same.to_dict() == plan.to_dict()
    assert plan_balance(stats, bank, "wall=0.05,fence=0.05", 6, "auto", seed=4).to_dict() != plan.to_dict()


@pytest.mark.parametrize("strategy", ["single", "multi", "recon"])
def test_each_strategy_adds_its_classes(synth, strategy):
    ds, _, bank, stats, _ = synth
    plan = plan_balance(stats, bank, "wall=0.04,fence=0.04", 3, strategy, seed=1)
    assert plan.recipes and all(r.strategy == strategy for r in plan.recipes)
    rules = rules_for(LS)
    for r in plan.recipes:
        lab, inst = apply_recipe(r, ds, bank)
        base = ds.load_label(ds.sample(r.base))
        added = r.classes_added()
        assert any((pixel_counts(lab)[c] > pixel_counts(base)[c]) for c in added if c in (WALL, FENCE))
        assert (lab[base == EGO] == EGO).all()
        if strategy == "recon":
            assert len(r.sources()) >= 2, "recon draws objects from other maps"
        else:
            grew = set(np.flatnonzero(pixel_counts(lab) > pixel_counts(base)).tolist())
            assert grew <= set(added)
        things = inst >= 1000
        assert (inst[things] // 1000 == lab[things]).all() and (inst[~things] == lab[~things]).all()
        assert not (rules.sky[base] & rules.ground[lab]).any()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(1, 12), seed=st.integers(0, 1000),
       wall=st.floats(0.005, 0.05), fence=st.floats(0.005, 0.05))
def test_planner_respects_budget_and_moves_targets_toward(synth, budget, seed, wall, fence):
    _, _, bank, stats, _ = synth
    plan = plan_balance(stats, bank, {"wall": wall, "fence": fence}, budget, seed=seed)
    assert len(plan.recipes) <= budget
    for name, t in plan.target.items():
        b, a = plan.before[name], plan.after[name]
        assert abs(a - t) <= abs(b - t) + 1e-12, f"{name}: {b} -> {a}, target {t}"
    assert plan.objective["after"] <= plan.objective["before"]


def test_presets_and_spec_parsing():
    assert parse_target_spec("wall=0.02, fence=2%", LS) == {"wall": 0.02, "fence": 0.02}
    shares = {c.name: 0.0 for c in LS.train_classes} | {"road": 0.5, "building": 0.3, "wall": 0.001,
                                                          "car": 0.199}
    rr = preset_target("raise-rare:0.01", shares)
    assert rr["wall"] == 0.01 and "road" not in rr
    inv = preset_target("inverse-frequency:2", shares)
    assert "wall" in inv and inv["wall"] > 0.001
    cap = preset_target("uniform-capped:5", shares)
    assert cap["wall"] == pytest.approx(0.005)
    with pytest.raises(DataError, match="valid names"):
        parse_target_spec("wal=0.1", LS)
    with pytest.raises(DataError, match="sum to"):
        parse_target_spec("wall=0.6,fence=0.5", LS)
    with pytest.raises(DataError, match="unknown preset"):
        preset_target("rare", shares)


def test_realised_shares_match_prediction(synth, tmp_path):
    ds, ws, _, stats, root = synth
    plan_file = tmp_path / "plan.json"
    assert main(["plan", str(ds.root), "--workspace", str(ws.path), "--target", "wall=0.04,fence=0.03",
                 "--budget", "12", "--seed", "2", "--out", str(plan_file)]) == 0
    out = tmp_path / "maps"
    assert main(["recombine", str(plan_file), "--workspace", str(ws.path), "--out", str(out)]) == 0
    plan = Plan.load(plan_file)
    labels = sorted(out.glob("*_gtFine_labelIds.png"))
    assert len(labels) == len(plan.recipes) == len(sorted(out.glob("*_gtFine_instanceIds.png")))
    counts = stats.pixels.copy()
    from segbalance.core.io import read_label_png

    for p in labels:
        counts += pixel_counts(read_label_png(p))
    lut = LS.id_to_train_lut
    train = np.bincount(lut[lut != 255], weights=counts[lut != 255], minlength=19)
    for name in plan.target:
        realised = train[LS.class_named(name).train_id] / train.sum()
        assert realised == pytest.approx(plan.after[name], rel=0.10)
        assert realised > plan.before[name]


def test_sample_dataset_plan_recombine_realises_prediction(sample_dataset, tmp_path):
    """The built-in sample dataset, through the CLI: preset and explicit targets, all three strategies."""
    ws = tmp_path / "ws"
    for target, strategy in ((["--preset", "raise-rare:0.01"], "auto"),
                             (["--target", "wall=0.03,fence=0.03,bus=0.01"], "single=0.4,multi=0.3,recon=0.3")):
        plan_file = tmp_path / "plan.json"
        out = tmp_path / f"maps_{strategy[:4]}"
        assert main(["plan", str(sample_dataset), "--workspace", str(ws), *target, "--budget", "16",
                     "--strategy", strategy, "--out", str(plan_file)]) == 0
        assert main(["recombine", str(plan_file), "--workspace", str(ws), "--out", str(out)]) == 0
        plan = Plan.load(plan_file)
        assert 0 < len(plan.recipes) <= 16
        stats = dataset_stats(open_dataset(sample_dataset), "train", workers=1)
        counts = stats.pixels.copy()
        from segbalance.core.io import read_label_png

        for p in sorted(out.glob("*_gtFine_labelIds.png")):
            counts += pixel_counts(read_label_png(p))
        lut = LS.id_to_train_lut
        train = np.bincount(lut[lut != 255], weights=counts[lut != 255], minlength=19)
        for name in plan.target:
            realised = train[LS.class_named(name).train_id] / train.sum()
            assert realised == pytest.approx(plan.after[name], rel=0.10), name
            assert abs(realised - plan.target[name]) < abs(plan.before[name] - plan.target[name]), name


# -- CLI errors -------------------------------------------------------------------------------------
def _last_line(err: str) -> str:
    """The error line (progress bars on stderr end with carriage returns, never newlines)."""
    assert "Traceback" not in err
    return err.strip().splitlines()[-1].split("\r")[-1]


def _plan_args(ds_root, ws, out, *extra):
    return ["plan", str(ds_root), "--workspace", str(ws), "--budget", "3", "--out", str(out), *extra]


@pytest.mark.parametrize("extra, needle", [
    (["--target", "wal=0.02"], "valid names"),
    (["--target", "wall=0.7,fence=0.6"], "more than 1"),
    (["--target", "train=0.02"], "nothing to paste"),
    (["--preset", "bogus"], "unknown preset"),
    (["--target", "wall=abc"], "not a number"),
    (["--target", "wall=0.02", "--strategy", "magic"], "strategy"),
])
def test_plan_bad_input_is_one_line_exit_2(synth, tmp_path, capsys, extra, needle):
    ds, ws, *_ = synth
    assert main(_plan_args(ds.root, ws.path, tmp_path / "p.json", *extra)) == 2
    err = _last_line(capsys.readouterr().err)
    assert needle in err and err.startswith("segbalance plan: error:")


def test_budget_zero_refused(synth, tmp_path, capsys):
    ds, ws, *_ = synth
    args = _plan_args(ds.root, ws.path, tmp_path / "p.json", "--target", "wall=0.02")
    args[args.index("3")] = "0"
    assert main(args) == 2
    assert "budget" in capsys.readouterr().err


def test_recombine_refuses_foreign_and_edited_plans(synth, tmp_path, capsys):
    ds, ws, *_ = synth
    plan_file = tmp_path / "p.json"
    assert main(_plan_args(ds.root, ws.path, plan_file, "--target", "wall=0.03")) == 0
    other = make_dataset(tmp_path / "other", n=3, seed=9)
    capsys.readouterr()
    assert main(["recombine", str(plan_file), "--workspace", str(ws.path), "--out", str(tmp_path / "o"),
                 "--dataset", str(other)]) == 2
    assert "another dataset" in capsys.readouterr().err
    data = json.loads(plan_file.read_text())
    for edit, needle in [(lambda d: d["recipes"][0].update(strategy="paint"), "strategy"),
                         (lambda d: d["recipes"][0]["layers"][0].update(w=-3), "layer 0"),
                         (lambda d: d["recipes"][0]["layers"][0].update(key=9999), "no layer"),
                         (lambda d: d["recipes"][0].update(base="nowhere_000000_000000"), "does not have"),
                         (lambda d: d.pop("recipes"), "not a segbalance plan")]:
        d = json.loads(json.dumps(data))
        edit(d)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(d))
        assert main(["recombine", str(bad), "--workspace", str(ws.path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        err = _last_line(err)
        assert needle in err and err.startswith("segbalance recombine: error:"), err


def test_missing_source_fails_only_that_recipe(tmp_path):
    from segbalance.core.recombine.write import recombine_recipes

    root = make_dataset(tmp_path / "ds", n=6)
    ds = open_dataset(root)
    with Workspace(tmp_path / "ws") as ws:
        bank = build_layer_bank(ds, ws, workers=1)
        stats = dataset_stats(ds, "train", workspace=ws, workers=1)
        plan = plan_balance(stats, bank, "wall=0.05", 4, seed=0)
        assert len(plan.recipes) >= 2
        # a source vanishes after the dataset was scanned (e.g. a network share during a long run)
        victim = ds.sample(plan.recipes[0].base).label_path
        victim.unlink()
        hit = [i for i, r in enumerate(plan.recipes) if plan.recipes[0].base in r.sources()]
        res = recombine_recipes(plan.recipes, ds, bank, tmp_path / "o")
    assert [i for i, _ in res.failed] == hit
    assert all(str(victim) in msg and "missing" in msg for _, msg in res.failed)
    assert res.written == [i for i in range(len(plan.recipes)) if i not in hit]
    assert len(list((tmp_path / "o").glob("*_labelIds.png"))) == len(res.written)


def test_plan_json_output_form(synth, tmp_path, capsys):
    ds, ws, *_ = synth
    capsys.readouterr()
    assert main(_plan_args(ds.root, ws.path, tmp_path / "p.json", "--preset", "raise-rare:0.02", "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"n_recipes", "before", "after", "target"}
    assert set(out["before"]) == {c.name for c in LS.train_classes} == set(out["after"])
    assert 0 < out["n_recipes"] <= 3 and set(out["target"]) <= set(out["before"])
    assert sum(out["after"].values()) == pytest.approx(1.0)


def test_planner_progress_and_cancel(synth):
    from segbalance.core.errors import Cancelled

    _, _, bank, stats, _ = synth
    seen = []
    plan_balance(stats, bank, "wall=0.05", 4, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (4, 4)
    with pytest.raises(Cancelled):
        plan_balance(stats, bank, "wall=0.05", 4, cancel=lambda: True)


# -- the real Cityscapes frames ---------------------------------------------------------------------
def test_cityscapes_sample_plan_and_recombine(cityscapes_sample, tmp_path):
    ds = open_dataset(cityscapes_sample)
    with Workspace(tmp_path / "ws") as ws:
        bank = build_layer_bank(ds, ws)
        assert bank.factor == 4 and len(bank.samples) == 8
        cars = bank.rows_of_class(CAR)
        assert (bank.cols["instance_id"][cars] >= CAR * 1000).sum() >= 20  # one layer per car instance
        stats = dataset_stats(ds, "train", workspace=ws)
        plan = plan_balance(stats, bank, "wall=0.02,fence=0.02", 8, seed=0)
        assert 0 < len(plan.recipes) <= 8
        counts = stats.pixels.astype(np.float64)
        rules = rules_for(LS)
        for r in plan.recipes:
            lab, inst = apply_recipe(r, ds, bank)
            assert lab.shape == (1024, 2048) and set(np.unique(lab).tolist()) <= VALID
            base = ds.load_label(ds.sample(r.base))
            assert (lab[rules.protected[base]] == base[rules.protected[base]]).all()
            things = inst >= 1000
            assert (inst[things] // 1000 == lab[things]).all()
            counts += pixel_counts(lab)
        lut = LS.id_to_train_lut
        train = np.bincount(lut[lut != 255], weights=counts[lut != 255], minlength=19)
        for name in plan.target:
            realised = train[LS.class_named(name).train_id] / train.sum()
            assert realised == pytest.approx(plan.after[name], rel=0.10)
            assert plan.after[name] > plan.before[name]


def test_bank_build_cancel_leaves_nothing(synth, tmp_path):
    from segbalance.core.errors import Cancelled

    ds = open_dataset(make_dataset(tmp_path / "ds", n=3))
    with Workspace(tmp_path / "ws") as ws:
        with pytest.raises(Cancelled):
            build_layer_bank(ds, ws, cancel=lambda: True, workers=1)
        assert not list((tmp_path / "ws").rglob("*.bin")) and not list((tmp_path / "ws").rglob("*.tmp"))
        bank = build_layer_bank(ds, ws, workers=1)
        assert len(bank) > 0
    shutil.rmtree(tmp_path / "ws")


_ = (BUILDING, SKY, Path)


@st.composite
def recipes(draw):
    n = draw(st.integers(0, 5))
    layers = [Placement(draw(st.text("abc_0123456789", min_size=1, max_size=12)), draw(st.integers(0, 500)),
                        draw(st.sampled_from(sorted(VALID))),
                        (draw(st.integers(0, 2000)), draw(st.integers(0, 1000)), draw(st.integers(1, 500)),
                         draw(st.integers(1, 500))),
                        draw(st.integers(-500, 2000)), draw(st.integers(-500, 1000)), draw(st.integers(1, 900)),
                        draw(st.integers(1, 900)), draw(st.booleans())) for _ in range(n)]
    order = draw(st.none() | st.just({"human": 9, "vehicle": 8}))
    return Recipe(draw(st.sampled_from(["single", "multi", "recon"])), draw(st.text("xyz_09", min_size=1)),
                  (draw(st.integers(1, 2048)), draw(st.integers(1, 2048))), layers, draw(st.integers(0, 2**40)),
                  order)


@settings(max_examples=60, deadline=None)
@given(recipes())
def test_recipe_json_roundtrip(r):
    again = Recipe.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r


# -- planning toward what a model gets wrong ---------------------------------------------------------
def test_iou_weights_follow_the_misses_with_a_floor_and_mean_one():
    from segbalance.core.planning.balance import IOU_WEIGHT_FLOOR, iou_weights

    w = iou_weights({"wall": 0.0, "fence": 0.5, "road": 0.99, "train": None}, ["wall", "fence", "road", "train"])
    assert np.mean(list(w.values())) == pytest.approx(1.0)
    # raw: wall 1.0, fence 0.5, road floored to 0.1, train unknown -> mean of the known
    raw = {"wall": 1.0, "fence": 0.5, "road": IOU_WEIGHT_FLOOR}
    raw["train"] = np.mean(list(raw.values()))
    m = np.mean(list(raw.values()))
    assert w == pytest.approx({k: v / m for k, v in raw.items()})


def test_iou_weighted_plan_puts_more_recipes_on_the_weak_class(synth):
    from segbalance.core.planning.balance import iou_weights

    ds, _, bank, stats, _ = synth
    wall, fence = ds.label_set.class_named("wall").id, ds.label_set.class_named("fence").id

    def layers(plan):
        n = {wall: 0, fence: 0}
        for r in plan.recipes:
            for p in r.layers:
                if p.class_id in n:
                    n[p.class_id] += 1
        return n

    names = ["wall", "fence"]
    weak_wall = plan_balance(stats, bank, "wall=0.05,fence=0.05", 6, "single", seed=2,
                             class_weights=iou_weights({"wall": 0.02, "fence": 0.95}, names))
    weak_fence = plan_balance(stats, bank, "wall=0.05,fence=0.05", 6, "single", seed=2,
                              class_weights=iou_weights({"wall": 0.95, "fence": 0.02}, names))
    a, b = layers(weak_wall), layers(weak_fence)
    assert a[wall] > a[fence] and b[fence] > b[wall], (a, b)
    assert weak_wall.class_weights["wall"] > weak_wall.class_weights["fence"]
    assert Plan.from_json(weak_wall.to_json()).class_weights == weak_wall.class_weights
    with pytest.raises(DataError, match="finite"):
        plan_balance(stats, bank, "wall=0.05", 2, "single", class_weights={"wall": float("nan")})


def test_plan_command_weights_by_a_runs_iou(synth, tmp_path, capsys):
    ds, ws, *_ = synth
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"status": "done", "per_class": {"wall": 0.01, "fence": 0.9}}))
    capsys.readouterr()
    rc = main(_plan_args(ds.root, ws.path, tmp_path / "p.json", "--target", "wall=0.05,fence=0.05",
                         "--weight-by-iou", str(run)))
    out = capsys.readouterr().out
    assert rc == 0 and "class weights (1 - IoU of" in out
    assert Plan.load(tmp_path / "p.json").class_weights["wall"] > 1.0
    (run / "result.json").write_text("{}")
    rc = main(_plan_args(ds.root, ws.path, tmp_path / "q.json", "--target", "wall=0.05", "--weight-by-iou", str(run)))
    assert rc == 2 and "no per_class IoU" in capsys.readouterr().err
