"""Intervals, words and resolvability on cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segbalance.core.experiments.evidence import (
    GAIN,
    LOSS,
    NOISE,
    Interval,
    bootstrap_deltas,
    bootstrap_ratio,
    decide,
    iou_from_counts,
    miou_from_counts,
    object_widths,
    resolvability,
    seed_interval,
    t_quantile,
    weighted_median,
)
from segbalance.core.seg.metrics import confusion_matrix, image_counts, per_class_iou


def test_seed_interval_by_hand():
    # deltas 1, 2, 3: mean 2, sd 1, n 3 -> half width t(2) * 1 / sqrt(3) = 4.303 / 1.732 = 2.484
    iv = seed_interval([0.01, 0.02, 0.03])
    assert iv.n == 3 and iv.method == "seeds"
    assert iv.mean == pytest.approx(0.02)
    assert iv.lo == pytest.approx(0.02 - 0.02484, abs=1e-4) and iv.hi == pytest.approx(0.02 + 0.02484, abs=1e-4)
    assert decide(iv) == NOISE  # crosses 0: a mean of +2 points is not a gain on 3 seeds this spread


def test_words_need_every_interval_on_one_side():
    up = Interval(0.02, 0.01, 0.03, 3, "seeds")
    down = Interval(-0.02, -0.03, -0.01, 3, "seeds")
    crossing = Interval(0.01, -0.005, 0.025, 500, "bootstrap")
    assert decide(up) == GAIN and decide(down) == LOSS
    assert decide(up, crossing) == NOISE  # the bootstrap over images does not exclude 0
    assert decide(up, Interval(0.02, 0.001, 0.04, 500, "bootstrap")) == GAIN
    assert decide(None, None) == NOISE and seed_interval([0.05]) is None
    assert t_quantile(1) == pytest.approx(12.706) and t_quantile(100) == 1.96


def test_counts_give_the_same_iou_as_the_confusion_matrix():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 4, (20, 30)).astype(np.uint8)
    target[0, :5] = 255
    pred = np.where(rng.random((20, 30)) < 0.7, target, rng.integers(0, 4, (20, 30))).astype(np.uint8)
    pred[target == 255] = 0
    c = image_counts(pred, target, 4)
    assert np.allclose(iou_from_counts(c), per_class_iou(confusion_matrix(pred, target, 4)))


def _seed_counts(rng, n_img, shift):
    """Counts of 2 classes over n_img images: class 1 IoU around 0.5 + shift."""
    out = np.zeros((n_img, 2, 3), np.int64)
    for i in range(n_img):
        true1 = 100
        inter = int(np.clip(rng.normal(60 + 100 * shift, 5), 0, 100))
        out[i, 1] = (inter, inter + 20, true1)
        out[i, 0] = (800, 820, 820)
    return out


def test_paired_bootstrap_sees_a_real_shift_and_not_a_null_one():
    rng = np.random.default_rng(0)
    base = [_seed_counts(rng, 200, 0.0) for _ in range(2)]
    better = [_seed_counts(rng, 200, 0.15) for _ in range(2)]
    same = [b.copy() for b in base]
    res = bootstrap_deltas(base, better, n_boot=400)
    assert res["miou"].lo > 0 and decide(res["miou"]) == GAIN
    assert res["class"][1].mean > 0.05
    null = bootstrap_deltas(base, same, n_boot=400)
    assert null["miou"].mean == 0 and null["miou"].lo == 0 and null["miou"].hi == 0
    assert decide(null["miou"]) == NOISE


def test_bootstrap_point_estimate_is_the_real_miou_delta():
    rng = np.random.default_rng(1)
    base, arm = [_seed_counts(rng, 50, 0.0)], [_seed_counts(rng, 50, 0.05)]
    res = bootstrap_deltas(base, arm, n_boot=50)
    want = miou_from_counts(arm[0].sum(0)) - miou_from_counts(base[0].sum(0))
    assert res["miou"].mean == pytest.approx(float(want))


def test_ratio_of_a_renderer_to_the_oracle_by_hand():
    # every map: class 0 IoU 1.0 for both; class 1 IoU 0.5 (num) vs 1.0 (den) -> mIoU 0.75 / 1.0 on every
    # replicate, so the interval collapses onto the hand value
    den = np.zeros((40, 2, 3), np.int64)
    den[:, 0] = (50, 50, 50)
    den[:, 1] = (20, 20, 20)
    num = den.copy()
    num[:, 1] = (10, 10, 20)  # (intersection, predicted, true): union 20
    iv = bootstrap_ratio([num], [den], n_boot=100)
    assert iv.mean == pytest.approx(0.75) and iv.lo == pytest.approx(0.75) and iv.hi == pytest.approx(0.75)
    rng = np.random.default_rng(2)
    noisy = [_seed_counts(rng, 200, 0.0), _seed_counts(rng, 200, 0.0)]
    ref = [_seed_counts(rng, 200, 0.15), _seed_counts(rng, 200, 0.15)]
    iv = bootstrap_ratio(noisy, ref, n_boot=300)
    want = np.mean([miou_from_counts(a.sum(0)) / miou_from_counts(b.sum(0)) for a, b in zip(noisy, ref, strict=True)])
    assert iv.mean == pytest.approx(float(want)) and iv.lo < iv.mean < iv.hi < 1.0
    zero = np.zeros((5, 2, 3), np.int64)
    zero[:, :, 2] = 10  # true pixels, none predicted right: the oracle scores 0, no ratio exists
    assert bootstrap_ratio([num[:5]], [zero], n_boot=10) is None
    with pytest.raises(ValueError):
        bootstrap_ratio([num], [den[:10]])


def test_a_class_absent_from_val_gets_no_interval():
    base = [np.zeros((5, 3, 3), np.int64)]
    base[0][:, 0] = (10, 10, 10)
    res = bootstrap_deltas(base, [b.copy() for b in base], n_boot=20)
    assert res["class"][2] is None and res["class"][0] is not None


def test_object_widths_of_hand_made_shapes():
    m = np.zeros((60, 80), np.uint8)
    m[5:45, 10:13] = 1  # a pole 3 px wide
    m[10:30, 40:60] = 1  # a block 20 px wide
    ws = sorted(object_widths(m, 1))
    assert ws[0] == pytest.approx(3, abs=0.5) and ws[1] >= 18
    assert object_widths(m, 2) == []


def test_unresolvable_classes_are_marked_with_their_reason():
    maps = []
    for i in range(12):
        t = np.zeros((64, 128), np.uint8)  # class 0: background everywhere
        t[10:60, 20 + i:22 + i] = 1  # class 1: 2 px poles in every image: thinner than stride 8
        if i < 3:
            t[20:50, 60:100] = 2  # class 2: big, but in 3 images only
        t[30:60, 100:120] = 3  # class 3: 20 px wide in every image
        maps.append(t)
    res = {r.name: r for r in resolvability(maps, ["bg", "pole", "bus", "car"], output_stride=8, min_images=10)}
    assert res["bg"].reason is None and res["car"].reason is None
    assert "output stride 8" in res["pole"].reason and res["pole"].val_images == 12
    assert res["bus"].reason == "in 3 val images (< 10)"
    assert not math.isnan(res["car"].median_width)


def test_the_protocol_judges_widths_against_its_own_output_stride():
    """A 12 px class is resolved at output stride 8 and marked at 16 (`experiment --seg-output-stride 16`)."""
    from dataclasses import replace
    from types import SimpleNamespace

    from segbalance.core.experiments.protocol import _resolvability, preset

    maps = []
    for i in range(10):
        t = np.zeros((64, 128), np.uint8)
        t[10:60, 30 + i:42 + i] = 1  # 12 px wide in every image
        maps.append(t)
    classes = [SimpleNamespace(name="bg"), SimpleNamespace(name="rider")]
    ds = SimpleNamespace(samples=lambda split: list(range(len(maps))), load_train_ids=lambda i: maps[i],
                         label_set=SimpleNamespace(train_classes=classes))
    for stride, resolved in ((8, True), (16, False)):
        ctx = SimpleNamespace(cfg=replace(preset("ci"), seg_output_stride=stride, min_val_images=10), ds=ds)
        rider = {r.name: r for r in _resolvability(ctx)}["rider"]
        assert (rider.reason is None) is resolved
        if not resolved:
            assert "output stride 16" in rider.reason


def test_a_big_class_with_slivers_is_judged_by_where_its_pixels_are():
    maps = []
    for _ in range(10):
        t = np.zeros((64, 128), np.uint8)
        t[0:40, 0:60] = 1  # one big building
        for x in range(70, 128, 4):  # and many 1 px slivers of it between other objects
            t[10:12, x] = 1
        maps.append(t)
    (bg, building) = resolvability(maps, ["bg", "building"], output_stride=8, min_images=10)
    assert building.reason is None and building.median_width > 30
    assert weighted_median([1, 2, 50], [1, 1, 10]) == 50 and weighted_median([1, 2, 50], [6, 4, 1]) == 1


def test_a_stored_run_on_another_schedule_is_refused_not_reused(tmp_path):
    """`experiment --seg-output-stride 16` in a workspace whose runs were trained at 8 must not report them."""
    import json
    from dataclasses import replace

    from segbalance.core.errors import SegbalanceError
    from segbalance.core.experiments.protocol import _check_run_schedule, preset

    cfg = preset("ci")
    run = tmp_path / "baseline-seed0"
    run.mkdir()
    _check_run_schedule(run, cfg)  # no run yet: nothing to check
    stored = {"backbone": cfg.backbone, "iters": cfg.seg_iters, "batch": cfg.seg_batch, "crop": list(cfg.seg_crop),
              "scale": list(cfg.seg_scale), "lr": cfg.seg_lr}  # a run from before output_stride was stored
    (run / "config.json").write_text(json.dumps(stored))
    _check_run_schedule(run, cfg)  # same schedule, JSON lists against tuples: reused
    with pytest.raises(SegbalanceError, match="output_stride 8.*asks for 16"):
        _check_run_schedule(run, replace(cfg, seg_output_stride=16))
    with pytest.raises(SegbalanceError, match="iters"):
        _check_run_schedule(run, replace(cfg, seg_iters=cfg.seg_iters + 1))


def test_a_stored_generator_on_another_schedule_is_refused_not_reused(tmp_path):
    """`experiment --gan-iters 3000` in a workspace whose generators ran 1500 must not reuse them."""
    from dataclasses import replace

    import torch

    from segbalance.core.errors import SegbalanceError
    from segbalance.core.experiments.protocol import _check_generator_schedule, preset

    cfg = preset("ci")
    ckpt = tmp_path / "ckpt.pt"
    from segbalance.core.render.gan_train import make_config

    ema = make_config(cfg.gan_preset).ema
    torch.save({"config": {"preset": cfg.gan_preset, "iters": cfg.gan_iters, "size": list(cfg.gan_size), "ema": ema}},
               ckpt)
    _check_generator_schedule(ckpt, cfg)  # same schedule: reused
    with pytest.raises(SegbalanceError, match=r"iters 4, the experiment now asks for 3000"):
        _check_generator_schedule(ckpt, replace(cfg, gan_iters=3000))
    # a generator from before crops existed trained on whole pairs: `--gan-crop` asks for another schedule
    with pytest.raises(SegbalanceError, match=r"crop None, the experiment now asks for \(64, 64\)"):
        _check_generator_schedule(ckpt, replace(cfg, gan_crop=(64, 64)))
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(SegbalanceError, match="ckpt.pt: not a PyTorch checkpoint"):
        _check_generator_schedule(ckpt, cfg)


def test_a_stored_generator_from_before_a_preset_default_changed_is_refused(tmp_path):
    """A tiny generator trained before the preset gained label skips or a weight average is another generator."""
    import torch

    from segbalance.core.errors import SegbalanceError
    from segbalance.core.experiments.protocol import _check_generator_schedule, preset
    from segbalance.core.render.gan_train import make_config

    cfg = preset("ci")
    now = make_config(cfg.gan_preset, label_nc=35, iters=cfg.gan_iters, size=tuple(cfg.gan_size)).to_dict()
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"config": now}, ckpt)
    _check_generator_schedule(ckpt, cfg)  # today's preset: reused
    for field, value in (("label_skips", not now["arch"]["label_skips"]), ("noise_nc", now["arch"]["noise_nc"] + 1)):
        torch.save({"config": {**now, "arch": {**now["arch"], field: value}}}, ckpt)
        with pytest.raises(SegbalanceError, match=f"arch {field}"):
            _check_generator_schedule(ckpt, cfg)
    torch.save({"config": {**now, "ema": 0.5 if now["ema"] is None else None}}, ckpt)
    with pytest.raises(SegbalanceError, match="ema"):
        _check_generator_schedule(ckpt, cfg)
    torch.save({"config": {**now, "d_augment": None if now["d_augment"] else "cutout"}}, ckpt)
    with pytest.raises(SegbalanceError, match="d_augment"):
        _check_generator_schedule(ckpt, cfg)
    other = "debias" if now["ema_warmup"] == "short" else "short"
    torch.save({"config": {**now, "ema_warmup": other}}, ckpt)
    with pytest.raises(SegbalanceError, match="ema_warmup"):
        _check_generator_schedule(ckpt, cfg)
    torch.save({"config": {**now, "arch": {**now["arch"], "spectral_norm_D": not now["arch"]["spectral_norm_D"]}}},
               ckpt)
    with pytest.raises(SegbalanceError, match="arch spectral_norm_D"):
        _check_generator_schedule(ckpt, cfg)


def test_gan_crop_is_checked_against_the_generator_size_and_preset():
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.experiments.protocol import preset

    assert preset("ci", gan_crop=(64, 64)).gan_crop == (64, 64)
    assert preset("ci", gan_crop=()).gan_crop is None  # `--gan-crop none`
    with pytest.raises(SegbalanceError, match="must fit the generator's 128x64 pairs and be a multiple of 8"):
        preset("ci", gan_crop=(256, 64))
    with pytest.raises(SegbalanceError, match="multiple of 8"):
        preset("ci", gan_crop=(60, 64))


def test_a_stored_plan_for_another_budget_is_refused_not_reused(tmp_path):
    """`experiment --budget 300` in a workspace planned for 100 must not train on the old plan's pairs."""
    from dataclasses import replace
    from types import SimpleNamespace

    from segbalance.core.errors import SegbalanceError
    from segbalance.core.experiments.protocol import _plan, preset
    from segbalance.core.planning.balance import Plan

    cfg = preset("ci")
    path = tmp_path / "plans" / "recon-seed0.json"
    path.parent.mkdir()
    Plan(recipes=[], before={}, after={}, target={"wall": cfg.share_target}, fingerprint="f",
         budget=cfg.budget).save(path)
    plan, _ = _plan(SimpleNamespace(out=tmp_path, cfg=cfg), "recon", 0)  # same budget: reused
    assert plan.budget == cfg.budget
    with pytest.raises(SegbalanceError, match=f"budget {cfg.budget} .*asks for budget {cfg.budget + 1}"):
        _plan(SimpleNamespace(out=tmp_path, cfg=replace(cfg, budget=cfg.budget + 1)), "recon", 0)
    with pytest.raises(SegbalanceError, match="target share 0.05"):
        _plan(SimpleNamespace(out=tmp_path, cfg=replace(cfg, share_target=0.05)), "recon", 0)


def test_a_rare_class_neither_arm_learns_is_said_so_not_called_within_noise():
    """0 against 0 in every run is no evidence that an arm does nothing for a class: the table says what happened."""
    from segbalance.core.experiments.report import head_to_head, head_to_head_table, markdown_table, summarize

    def run(miou, wall, car):
        return {"miou": miou, "per_class": {"road": 0.9, "wall": wall, "car": car}}

    results = {"baseline": [run(0.40, 0.0, 0.10), run(0.42, 0.0, 0.12)],
               "recon": [run(0.41, 0.0, 0.15), run(0.43, 0.0, 0.16)],
               "oracle": [run(0.44, 0.0, 0.20), run(0.45, 0.0, 0.21)]}
    rows = summarize(results, ["road", "wall", "car"])
    assert rows["recon"]["class_evidence"]["wall"]["neither_learns"] is True
    assert rows["recon"]["class_evidence"]["car"]["neither_learns"] is False
    table = markdown_table(rows, ["wall", "car"])
    wall_row = next(line for line in table.splitlines() if line.startswith("| wall"))
    car_row = next(line for line in table.splitlines() if line.startswith("| car"))
    assert "neither arm learns it" in wall_row and "within noise" not in wall_row
    assert "neither" not in car_row
    cmp = head_to_head(results, ["road", "wall", "car"], None)
    assert cmp[0]["class_evidence"]["wall"]["neither_learns"] is True
    assert "[test images]" in head_to_head_table(cmp, ["wall", "car"], "test")  # the split the table is on
