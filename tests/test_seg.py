"""PSPNet: metrics, model facts, data pipeline, training (quality, resume, NaN, SIGTERM, DDP), CLI errors."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from segbalance.core.cli import main as cli_main
from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.errors import DataError
from segbalance.core.io import write_png
from segbalance.core.seg import data as sd
from segbalance.core.seg.metrics import (
    confusion_matrix,
    mean_accuracy,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
    present_miou,
    summarize,
)
from segbalance.core.seg.model import PSPNet, PSPNetConfig, ResNet, count_parameters, load_backbone_weights
from segbalance.db import models as m

torch.set_num_threads(1)  # the machine is shared: one thread beats two oversubscribed ones
ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CROP = (48, 96)
CROP_ARG = "48x96"


def tiny_cfg(ds: Path, out: Path, ws: Path, **kw):
    from segbalance.core.seg.train import SegTrainConfig

    base = dict(dataset=str(ds), out_dir=str(out), workspace=str(ws), backbone="resnet18", crop=CROP, batch=4,
                iters=4, workers=0, log_interval=2, amp="off", device="cpu", stdout_json=False, threads=1)
    return SegTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def seg_ds(tmp_path_factory) -> Path:
    """The built-in procedural sample dataset, at 96x48 so that a CPU run learns it in seconds."""
    from segbalance.core.datasets.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "ds", n_train=16, n_val=4, size=(96, 48), seed=0)


@pytest.fixture(scope="module")
def trained(seg_ds, tmp_path_factory):
    """One short resnet18 run (workers in subprocesses, periodic eval) shared by several tests."""
    import cv2

    from segbalance.core.seg.train import train_seg

    # regression: OpenCV's thread pool used in this process before the loader starts (as a GUI or a
    # full-size image load does) used to deadlock forked workers
    big = np.zeros((1024, 2048, 3), np.uint8)
    for _ in range(2):
        cv2.resize(cv2.cvtColor(big, cv2.COLOR_RGB2BGR), (1000, 500))
    base = tmp_path_factory.mktemp("run")
    cfg = tiny_cfg(seg_ds, base / "run", base / "ws", iters=30, workers=1, log_interval=10, eval_interval=15,
                   max_val_images=2, stdout_json=True, lr=0.02, scale=(0.75, 1.5))
    return cfg, train_seg(cfg)


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = cli_main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


# -- metrics ------------------------------------------------------------------------------------------
def test_confusion_matrix_skips_ignore_and_counts_gt_by_prediction():
    target = np.array([[0, 0, 1, 255], [2, 2, 1, 255]])
    pred = np.array([[0, 1, 1, 0], [2, 0, 1, 2]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert conf.sum() == 6  # the two ignore pixels count nowhere


def test_iou_of_absent_class_is_nan_and_left_out_of_the_mean():
    # class 2 neither in gt nor prediction; class 3 predicted but absent from gt -> IoU 0
    conf = np.array([[3, 0, 0, 1], [1, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    iou = per_class_iou(conf)
    assert iou[0] == pytest.approx(3 / 5) and iou[1] == pytest.approx(4 / 5)
    assert math.isnan(iou[2]) and iou[3] == 0.0
    assert mean_iou(conf) == pytest.approx((3 / 5 + 4 / 5 + 0) / 3)
    assert pixel_accuracy(conf) == pytest.approx(7 / 9)
    assert mean_accuracy(conf) == pytest.approx((3 / 4 + 4 / 5) / 2)  # classes without gt pixels excluded
    res = summarize(conf, ["a", "b", "c", "d"])
    assert res["per_class"]["c"] is None and res["per_class"]["d"] == 0.0
    json.dumps(res, allow_nan=False)  # JSON-safe: NaN became null


def test_present_miou_scores_only_classes_in_the_label_map():
    target = np.array([0, 0, 1, 1, 255])
    pred = np.array([0, 0, 1, 2, 2])  # one class-2 hallucination
    assert present_miou(pred, target, 3) == pytest.approx((1.0 + 0.5) / 2)
    assert math.isnan(present_miou(pred, np.full(5, 255), 3))


# -- model ---------------------------------------------------------------------------------------------
def test_pspnet50_parameter_counts_match_the_reference():
    assert count_parameters(PSPNet(PSPNetConfig(19, "resnet50", aux=True))) == 49_080_038
    assert count_parameters(PSPNet(PSPNetConfig(19, "resnet50", aux=False))) == 46_715_347


def test_resnet18_pspnet_output_stride_8_and_full_resolution_logits():
    model = PSPNet(PSPNetConfig(5, "resnet18"))
    x = torch.randn(2, 3, 64, 96)
    c3, c4 = model.backbone(x)
    assert c3.shape[-2:] == c4.shape[-2:] == (8, 12)
    main, aux = model.train()(x)
    assert main.shape == aux.shape == (2, 5, 64, 96)
    assert model.eval()(x).shape == (2, 5, 64, 96)


def test_output_stride_16_halves_the_feature_maps_and_keeps_the_state_dict_layout():
    os8 = PSPNet(PSPNetConfig(5, "resnet18"))
    os16 = PSPNet(PSPNetConfig(5, "resnet18", output_stride=16))
    x = torch.randn(2, 3, 64, 96)
    c3, c4 = os16.backbone(x)
    assert c3.shape[-2:] == c4.shape[-2:] == (4, 6)
    main, aux = os16.train()(x)
    assert main.shape == aux.shape == (2, 5, 64, 96)
    # one ImageNet file fits both: same keys and shapes, only strides and dilations differ
    a, b = os8.state_dict(), os16.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert os16.backbone.layer3[0].conv1.stride == (2, 2) and os16.backbone.layer4[0].conv1.dilation == (2, 2)
    assert os8.backbone.layer3[0].conv1.stride == (1, 1) and os8.backbone.layer4[0].conv1.dilation == (4, 4)
    # a checkpoint written before the field existed rebuilds at 8
    old = {k: v for k, v in PSPNetConfig(5, "resnet18").to_dict().items() if k != "output_stride"}
    assert PSPNetConfig(**old).output_stride == 8
    with pytest.raises(DataError, match="output stride must be 8 or 16"):
        PSPNetConfig(5, "resnet18", output_stride=32)


def test_train_seg_output_stride_16_is_stored_and_rebuilt_by_evaluation(seg_ds, tmp_path, capsys):
    from segbalance.core.seg.evaluate import load_model

    out = tmp_path / "run"
    rc, _, err = cli(["train-seg", str(seg_ds), "--workspace", str(tmp_path / "ws"), "--backbone", "resnet18",
                      "--crop", CROP_ARG, "--iters", "2", "--batch", "2", "--workers", "0", "--device", "cpu",
                      "--no-json", "--amp", "off", "--threads", "1", "--out", str(out), "--output-stride", "16"],
                     capsys)
    assert rc == 0, err
    model, _, ck = load_model(out, "cpu")
    assert ck["model_config"]["output_stride"] == 16 and model.config.output_stride == 16
    assert model.backbone(torch.zeros(1, 3, 64, 96))[1].shape[-2:] == (4, 6)
    with pytest.raises(SystemExit) as exc:  # argparse's choices: one line, exit 2
        cli_main(["train-seg", str(seg_ds), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "x"),
                  "--output-stride", "12"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--output-stride" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_head_lr_mult_sets_the_head_group_and_leaves_the_backbone_at_the_base_lr():
    from segbalance.core.seg.train import SegTrainConfig, _optimizer

    model = PSPNet(PSPNetConfig(5, "resnet18"))
    for mult in (10.0, 1.0):
        opt = _optimizer(model, SegTrainConfig(dataset="d", out_dir="o", lr=0.05, head_lr_mult=mult))
        backbone, head = opt.param_groups
        assert backbone["lr"] == 0.05 and head["lr"] == pytest.approx(0.05 * mult)
        assert {id(p) for p in head["params"]} == {id(p) for p in model.head_parameters()}
        assert len(backbone["params"]) + len(head["params"]) == len(list(model.parameters()))


def test_backbone_weights_load_from_both_layouts_and_refuse_the_wrong_one(tmp_path):
    plain = ResNet("resnet18", deep_stem=False).state_dict()
    plain_file = tmp_path / "resnet18_torchvision.pth"
    torch.save({**plain, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, plain_file)
    model = PSPNet(PSPNetConfig(3, "resnet18"))
    info = load_backbone_weights(model, plain_file)
    assert info["loaded"] == len(plain) and torch.equal(model.backbone.conv1.weight, plain["conv1.weight"])

    deep = ResNet("resnet18", deep_stem=True).state_dict()
    deep_file = tmp_path / "deep.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in deep.items()}}, deep_file)
    dmodel = PSPNet(PSPNetConfig(3, "resnet18", deep_stem=True))
    load_backbone_weights(dmodel, deep_file)
    assert torch.equal(dmodel.backbone.conv3.weight, deep["conv3.weight"])

    with pytest.raises(DataError, match="deep-stem weights do not fit"):
        load_backbone_weights(model, deep_file)
    with pytest.raises(DataError, match="not found"):
        load_backbone_weights(model, tmp_path / "missing.pth")


# -- data ----------------------------------------------------------------------------------------------
def test_crop_larger_than_image_is_padded_with_ignore(seg_ds):
    from segbalance.core.datasets import open_dataset

    ds = open_dataset(seg_ds)
    ref = ds.samples("train")[0]
    h, w = ds.load_label(ref).shape
    tset = sd.SegTrainSet([(ds, ref)], ds.label_set, crop=(h + 16, w + 32), scale=(1.0, 1.0), augment="none")
    img, lab, real = tset[(0, 123, -1, 0)]
    assert bool(real)  # n_real defaults to every item
    assert img.shape == (3, h + 16, w + 32) and lab.shape == (h + 16, w + 32)
    assert (lab[h:] == 255).all() and (lab[:, w:] == 255).all()
    assert (lab[:h, :w] != 255).any()
    # same (index, seed) -> same crop: augmentation depends on the stream position only
    assert torch.equal(tset[(0, 5, -1, 0)][1], tset[(0, 5, -1, 0)][1])


@pytest.mark.parametrize("augment", ["standard", "strong", "style"])
def test_augmentations_keep_labels_aligned_and_replay_from_the_seed(seg_ds, augment):
    from segbalance.core.datasets import open_dataset

    ds = open_dataset(seg_ds)
    tset = sd.SegTrainSet([(ds, r) for r in ds.samples("train")[:4]], ds.label_set, crop=CROP, augment=augment)
    labels_in = set(np.unique(ds.load_train_ids(ds.samples("train")[0])).tolist())
    for seed in range(6):
        img, lab, _ = tset[(0, seed, -1, 0)]
        assert img.shape == (3, *CROP) and img.dtype == torch.uint8 and lab.shape == CROP
        assert set(np.unique(lab.numpy()).tolist()) <= labels_in | {255}
        again = tset[(0, seed, -1, 0)]
        assert torch.equal(img, again[0]) and torch.equal(lab, again[1])


def test_colour_transfer_takes_the_style_image_statistics():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
    style = np.clip(rng.normal((200, 60, 60), 10, (32, 32, 3)), 0, 255).astype(np.uint8)
    out = sd.color_transfer(src, style)
    assert np.abs(out.reshape(-1, 3).mean(0) - style.reshape(-1, 3).mean(0)).max() < 12


def test_stream_is_the_same_split_over_ranks_and_resumes_mid_way():
    one = list(sd.StreamSampler(10, 4, 6, seed=3))
    r0 = list(sd.StreamSampler(10, 2, 6, seed=3, rank=0, world=2))
    r1 = list(sd.StreamSampler(10, 2, 6, seed=3, rank=1, world=2))
    assert [a + b for a, b in zip(r0, r1, strict=True)] == one
    assert list(sd.StreamSampler(10, 4, 6, seed=3, start_step=4)) == one[4:]
    epoch = [i for b in one[:5] for i, *_ in b][:10]
    assert sorted(epoch) == list(range(10))  # uniform: each image once per epoch


def test_rare_class_sampling_favours_rare_classes():
    p = sd.rcs_probabilities(np.array([1000.0, 10.0, 0.0]))
    assert p[1] > 0.99 * 0 + p[0] and p[2] == 0 and p.sum() == pytest.approx(1)
    counts = np.array([[5000, 0], [5000, 0], [5000, 4000], [5000, 0]])
    s = sd.StreamSampler(4, 8, 10, seed=0, mode="rare-class", class_counts=counts,
                         areas=np.full(4, 1024 * 512.0))
    picks = [i for b in s for i, *_ in b]
    assert picks.count(2) > 0.6 * len(picks)  # the only image holding the rare class


# -- training ------------------------------------------------------------------------------------------
def test_resnet18_run_learns_and_streams_metrics(trained, seg_ds):
    from segbalance.core.datasets import open_dataset

    cfg, res = trained
    assert res["status"] == "done" and res["iteration"] == 30
    # chance level: predicting the most frequent training class everywhere
    ds = open_dataset(seg_ds)
    train = np.concatenate([ds.load_train_ids(r).ravel() for r in ds.samples("train")])
    major = np.bincount(train[train != 255], minlength=19).argmax()
    conf = sum(confusion_matrix(np.full(t.shape, major), t, 19)
               for t in (ds.load_train_ids(r) for r in ds.samples("val")))
    assert res["miou"] > 3 * mean_iou(conf), (res["miou"], mean_iou(conf))
    assert res["pixel_acc"] > pixel_accuracy(conf) + 0.15
    from segbalance.core.workspace import Workspace

    with Workspace(cfg.workspace) as ws, ws.session() as s:
        run = s.scalar(select(m.TrainingRun))
        assert (run.kind, run.status, run.pid) == ("seg", "done", os.getpid())
        assert run.result["miou"] == pytest.approx(res["miou"])
        pts = s.scalars(select(m.MetricPoint).where(m.MetricPoint.run_id == run.id)).all()
    names = [p.name for p in pts]
    assert names.count("loss") == 3 and names.count("lr") == 3 and names.count("val_miou") == 2
    losses = [p.value for p in pts if p.name == "loss"]
    assert losses[-1] < losses[0]
    val = [p for p in pts if p.name == "val_miou"][-1]
    assert set(val.extra["per_class"]) == {c.name for c in CITYSCAPES.train_classes}
    assert json.loads((Path(cfg.out_dir) / "result.json").read_text())["miou"] == pytest.approx(res["miou"])
    # the final evaluation's per-image counts sit beside the run, so a bootstrap needs no second pass
    counts = np.load(Path(cfg.out_dir) / "val_counts.npy", allow_pickle=False)
    assert counts.shape == (len(ds.samples("val")), 19, 3)
    inter, pred, true = counts.sum(0).T.astype(float)
    union = pred + true - inter
    assert np.mean(inter[union > 0] / union[union > 0]) == pytest.approx(res["miou"])


def test_evaluate_cli_json_and_label_id_predictions(trained, seg_ds, tmp_path, capsys):
    cfg, res = trained
    pred_dir = tmp_path / "pred"
    # --amp off: the run trained and validated in fp32; evaluate's default (auto) may pick bf16 here
    rc, out, _ = cli(["evaluate", cfg.out_dir, "--dataset", str(seg_ds), "--json", "--device", "cpu",
                      "--amp", "off", "--save-predictions", str(pred_dir)], capsys)
    assert rc == 0
    data = json.loads(out)
    assert set(data) == {"miou", "pixel_acc", "per_class", "split", "n_images"}
    assert data["split"] == "val" and data["n_images"] == res["n_images"]
    assert data["miou"] == pytest.approx(res["miou"]) and 0 <= data["pixel_acc"] <= 1
    pngs = sorted(pred_dir.glob("*.png"))
    assert len(pngs) == res["n_images"]
    from segbalance.core.io import read_label_png

    ids = np.unique(read_label_png(pngs[0]))
    assert set(ids.tolist()) <= {c.id for c in CITYSCAPES.train_classes}  # label ids, not train ids
    # one window covering the image is the whole-image prediction; smaller windows still cover every pixel
    rc, out, _ = cli(["evaluate", cfg.out_dir, "--dataset", str(seg_ds), "--json", "--mode", "slide",
                      "--device", "cpu", "--amp", "off"], capsys)
    assert rc == 0 and json.loads(out)["miou"] == pytest.approx(res["miou"])
    rc, out, _ = cli(["evaluate", cfg.out_dir, "--dataset", str(seg_ds), "--json", "--mode", "slide",
                      "--crop", "32x64", "--device", "cpu"], capsys)
    assert rc == 0 and json.loads(out)["pixel_acc"] > 0.3


def test_quality_scorer_prefers_the_real_image(trained, seg_ds):
    from segbalance.core.datasets import open_dataset
    from segbalance.core.seg.quality import load_scorer

    cfg, _ = trained
    ds = open_dataset(seg_ds)
    refs = ds.samples("val")
    scorer = load_scorer(cfg.out_dir, device="cpu")
    ims, labs = [ds.load_image(r) for r in refs], [ds.load_label(r) for r in refs]
    real = scorer.score_batch(ims, labs)
    assert len(real) == len(refs) and all(0 <= v <= 1 for v in real)
    assert scorer.score(ims[0], labs[0]) == pytest.approx(real[0])
    # a weak 30-iteration model, but an image that does not show its label map still scores lower
    swapped = scorer.score_batch(ims[1:] + ims[:1], labs)
    noise = scorer.score_batch([np.random.default_rng(0).integers(0, 255, im.shape, np.uint8) for im in ims], labs)
    assert np.mean(real) > max(np.mean(swapped), np.mean(noise))
    assert math.isnan(scorer.score(ims[0], np.zeros_like(labs[0])))  # nothing evaluated in an all-void map


def test_compare_cli_reports_deltas_and_plots(trained, tmp_path, capsys):
    cfg, res = trained
    other = tmp_path / "other"
    other.mkdir()
    better = dict(res, per_class={k: (None if v is None else min(1.0, v + 0.1)) for k, v in res["per_class"].items()})
    better["miou"] = res["miou"] + 0.1
    (other / "result.json").write_text(json.dumps(better))
    rc, out, _ = cli(["compare", cfg.out_dir, str(other), "--json", "--plot", str(tmp_path / "d.png")], capsys)
    assert rc == 0 and (tmp_path / "d.png").stat().st_size > 1000
    cmp = json.loads(out)
    assert cmp["miou_delta"] == pytest.approx(0.1)
    assert all(r["delta"] is None for r in cmp["classes"] if r["a"] is None)


def test_resume_continues_exactly(seg_ds, tmp_path):
    from segbalance.core.seg.evaluate import read_checkpoint
    from segbalance.core.seg.train import train_seg

    straight = train_seg(tiny_cfg(seg_ds, tmp_path / "a", tmp_path / "ws", workers=1, eval_interval=0))
    assert straight["status"] == "done"
    done = []
    stopped = train_seg(tiny_cfg(seg_ds, tmp_path / "b", tmp_path / "ws"),
                        progress=lambda d, t: done.append(d), cancel=lambda: bool(done) and done[-1] >= 2)
    assert stopped["status"] == "cancelled" and read_checkpoint(tmp_path / "b")["iteration"] == 2
    resumed = train_seg(tiny_cfg(seg_ds, tmp_path / "b", tmp_path / "ws", resume=True))
    assert resumed["iteration"] == 4
    a, b = read_checkpoint(tmp_path / "a"), read_checkpoint(tmp_path / "b")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert resumed["miou"] == straight["miou"]
    from segbalance.core.workspace import Workspace

    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        runs = s.scalars(select(m.TrainingRun).order_by(m.TrainingRun.id)).all()
    assert [r.status for r in runs] == ["done", "done"]  # the resumed run reuses its row


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(seg_ds, tmp_path, monkeypatch):
    import segbalance.core.seg.train as tr
    from segbalance.core.seg.evaluate import read_checkpoint

    calls = []
    real = tr.segmentation_loss

    def flaky(*a, **k):
        calls.append(1)
        loss = real(*a, **k)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(tr, "segmentation_loss", flaky)
    with pytest.raises(tr.TrainingDiverged, match="(?i)iteration 3.*last good checkpoint kept"):
        tr.train_seg(tiny_cfg(seg_ds, tmp_path / "run", tmp_path / "ws", ckpt_interval=2))
    ck = read_checkpoint(tmp_path / "run")
    assert ck["iteration"] == 2 and all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    from segbalance.core.workspace import Workspace

    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        assert s.scalar(select(m.TrainingRun.status)) == "failed"


def test_extra_pairs_from_the_workspace_db(seg_ds, tmp_path, capsys):
    from segbalance.core.datasets import open_dataset
    from segbalance.core.workspace import Workspace

    ds = open_dataset(seg_ds)
    ws_path = tmp_path / "ws"
    with Workspace(ws_path) as ws, ws.session() as s, s.begin():
        job = m.Job(kind="generate", params={"label_set": CITYSCAPES.to_dict()})
        s.add(job)
        s.flush()
        job_id = job.id
        for i, ref in enumerate(ds.samples("train")[:3]):
            for kind, arr in (("img", ds.load_image(ref)), ("lab", ds.load_label(ref))):
                write_png(ws.subdir("pairs") / f"{i}_{kind}.png", arr, rgb=kind == "img")
            s.add(m.GeneratedPair(job_id=job.id, recipe_index=i, recipe={}, strategy="copy-paste",
                                  renderer="copy", image_path=f"pairs/{i}_img.png", label_path=f"pairs/{i}_lab.png",
                                  status="accepted" if i < 2 else "pending"))
    common = [str(seg_ds), "--workspace", str(ws_path), "--backbone", "resnet18", "--crop", CROP_ARG,
              "--iters", "2", "--batch", "2", "--workers", "0", "--device", "cpu", "--no-json", "--amp", "off",
              "--threads", "1"]
    rc, _, err = cli(["train-seg", *common, "--out", str(tmp_path / "r1"), "--extra", f"pairs:{job_id}",
                      "--extra-status", "accepted,pending", "--sampler", "rare-class"], capsys)
    assert rc == 0, err
    res = json.loads((tmp_path / "r1" / "result.json").read_text())
    n_train = len(ds.samples("train"))
    assert f"training on {n_train + 3} images (3 extra from pairs:{job_id})" in res["notes"]
    rc, _, err = cli(["train-seg", *common, "--out", str(tmp_path / "r0"), "--extra", f"pairs:{job_id + 1}"],
                     capsys)
    assert rc == 2 and "no generated pairs" in err  # another job's pairs only
    # a pair whose label map uses ids outside the label set: one-line error, exit 2
    write_png(ws_path / "pairs" / "0_lab.png", np.full((8, 8), 200, np.uint8))
    rc, _, err = cli(["train-seg", *common, "--out", str(tmp_path / "r2"), "--extra", "pairs"], capsys)
    assert rc == 2 and "0_lab.png" in err and "label ids [200]" in err and len(err.strip().splitlines()) == 1
    write_png(ws_path / "pairs" / "0_lab.png", np.full((8, 8), 7, np.uint8))
    rc, _, err = cli(["train-seg", *common, "--out", str(tmp_path / "r3"), "--extra", "pairs"], capsys)
    assert rc == 2 and "0_img.png" in err and "but its label map 0_lab.png is 8x8" in err
    assert len(err.strip().splitlines()) == 1


def test_noisy_pixel_filter_ignores_generated_pixels_and_logs_the_fraction_per_class(seg_ds, tmp_path, capsys):
    """train-seg --noisy-filter: generated pixels are judged against real ones; the run's record (DB point,
    result.json, checkpoint for resume, the app's Series) carries the ignored fraction per class."""
    from segbalance.core.datasets import open_dataset
    from segbalance.core.runs.queries import Series, read_new_points
    from segbalance.core.runs.records import NOISY_METRIC
    from segbalance.core.runs.runtime import load_checkpoint
    from segbalance.core.workspace import Workspace

    ds = open_dataset(seg_ds)
    ws_path = tmp_path / "ws"
    rng = np.random.default_rng(0)
    pair_classes: set[str] = set()
    with Workspace(ws_path) as ws, ws.session() as s, s.begin():
        job = m.Job(kind="generate", params={"label_set": CITYSCAPES.to_dict()})
        s.add(job)
        s.flush()
        for i, ref in enumerate(ds.samples("train")):  # as many pairs as real images: noise with a real map
            lab = ds.load_label(ref)
            pair_classes |= {CITYSCAPES.train_classes[t].name for t in np.unique(ds.load_train_ids(ref)) if t != 255}
            write_png(ws.subdir("pairs") / f"{i}_img.png", rng.integers(0, 256, (*lab.shape, 3), dtype=np.uint8),
                      rgb=True)
            write_png(ws.subdir("pairs") / f"{i}_lab.png", lab)
            s.add(m.GeneratedPair(job_id=job.id, recipe_index=i, recipe={}, strategy="recon", renderer="noise",
                                  image_path=f"pairs/{i}_img.png", label_path=f"pairs/{i}_lab.png",
                                  status="accepted"))
    out = tmp_path / "run"
    rc, _, err = cli(["train-seg", str(seg_ds), "--workspace", str(ws_path), "--backbone", "resnet18", "--crop",
                      CROP_ARG, "--iters", "4", "--batch", "4", "--workers", "0", "--device", "cpu", "--no-json",
                      "--amp", "off", "--threads", "1", "--log-interval", "2", "--out", str(out), "--extra", "pairs",
                      "--noisy-filter", "1.0"], capsys)
    assert rc == 0, err
    assert "noisy-pixel filter (x1): ignored" in err
    nf = json.loads((out / "result.json").read_text())["noisy_filter"]
    assert nf["factor"] == 1.0 and 0.0 < nf["ignored"] < 1.0
    assert set(nf["per_class"]) <= pair_classes and all(0.0 <= v <= 1.0 for v in nf["per_class"].values())
    with Workspace(ws_path) as ws:
        with ws.session() as s:
            run_id = s.scalar(select(m.TrainingRun.id))
            pts = s.scalars(select(m.MetricPoint).where(m.MetricPoint.name == NOISY_METRIC)
                            .order_by(m.MetricPoint.iteration)).all()
            assert [p.iteration for p in pts] == [2, 4]
            assert pts[-1].value == pytest.approx(nf["ignored"]) and pts[-1].extra["per_class"] == nf["per_class"]
        series = Series(run_id)
        read_new_points(ws, series)
    assert series.ignored_per_class == pytest.approx(nf["per_class"])
    # the running means travel with the checkpoint: a resumed run judges against the same reference
    state = load_checkpoint(out / "checkpoint.pt")["noisy_filter"]
    assert state["factor"] == 1.0 and sum(state["total_seen"]) > 0
    rc, _, err = cli(["train-seg", str(seg_ds), "--workspace", str(ws_path), "--out", str(tmp_path / "bad"),
                      "--noisy-filter", "-1", "--device", "cpu"], capsys)
    assert rc == 2 and "--noisy-filter must be a factor > 0" in err


def _other_label_set_dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps({"name": "two", "classes": [{"id": 0, "name": "bg"},
                                                                               {"id": 1, "name": "thing"}]}))
    write_png(root / "images" / "a.png", np.zeros((64, 128, 3), np.uint8), rgb=True)
    write_png(root / "masks" / "a.png", np.ones((64, 128), np.uint8))
    return root


def test_cli_bad_inputs_exit_2_with_one_line(trained, seg_ds, tmp_path, capsys):
    cfg, _ = trained
    other = _other_label_set_dataset(tmp_path / "other")
    base = ["--workspace", str(tmp_path / "ws"), "--backbone", "resnet18", "--iters", "1", "--batch", "2",
            "--workers", "0", "--device", "cpu", "--no-json", "--threads", "1"]
    cases = [
        (["train-seg", str(tmp_path / "nope"), "--out", str(tmp_path / "o1"), *base], "dataset folder not found"),
        (["train-seg", str(seg_ds), "--out", str(tmp_path / "o2"), "--crop", "64by128", *base], "bad --crop"),
        (["train-seg", str(seg_ds), "--out", str(tmp_path / "o3"), "--pretrained", str(tmp_path / "w.pth"), *base],
         "backbone weights file not found"),
        (["train-seg", str(seg_ds), "--out", str(tmp_path / "o4"), "--extra", str(other), *base],
         "does not match"),
        (["train-seg", str(seg_ds), "--out", str(tmp_path / "o5"), "--resume", *base], "nothing to resume"),
        (["train-seg", str(seg_ds), "--out", str(tmp_path / "o6"), "--extra", "pairs", *base],
         "no generated pairs"),
        (["train-seg", str(seg_ds), "--out", str(tmp_path / "o7"), *base, "--batch", "1"], "at least 2"),
        (["evaluate", cfg.out_dir, "--dataset", str(other), "--split", "train"], "does not match"),
        (["evaluate", str(tmp_path), "--dataset", str(seg_ds)], "checkpoint not found"),
        (["compare", str(tmp_path), cfg.out_dir], "no result.json"),
    ]
    for args, msg in cases:
        rc, _, err = cli(args, capsys)
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert rc == 2 and len(lines) == 1 and msg in lines[0], (args, err)


# -- processes: SIGTERM from the desktop app, DDP through torchrun -----------------------------------
def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_sigterm_stops_cleanly_and_keeps_the_checkpoint(seg_ds, tmp_path):
    from segbalance.core.seg.evaluate import read_checkpoint
    from segbalance.core.workspace import Workspace

    cmd = [PY, "-m", "segbalance.core.cli", "train-seg", str(seg_ds), "--workspace", str(tmp_path / "ws"), "--out",
           str(tmp_path / "run"), "--backbone", "resnet18", "--crop", CROP_ARG, "--iters", "500", "--batch", "2",
           "--workers", "1", "--log-interval", "2", "--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        for line in proc.stdout:
            if json.loads(line).get("event") == "train":
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped at iteration" in err
    it = read_checkpoint(tmp_path / "run")["iteration"]
    assert 2 <= it < 500
    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        run = s.scalar(select(m.TrainingRun))
        assert run.status == "cancelled" and run.result["iteration"] == it


def test_ddp_two_processes_on_cpu(seg_ds, tmp_path):
    if shutil.which("torchrun") is None and not (Path(PY).parent / "torchrun").exists():
        pytest.skip("torchrun not installed")
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "segbalance.core.cli",
           "train-seg", str(seg_ds), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "run"),
           "--backbone", "resnet18", "--crop", CROP_ARG, "--iters", "4", "--batch", "4", "--workers", "0",
           "--log-interval", "2", "--device", "cpu", "--threads", "1", "--max-val-images", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert [e["world_size"] for e in events if e["event"] == "start"] == [2]  # rank 0 alone reports
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["world_size"] == 2 and res["status"] == "done" and res["miou"] is not None


def test_pretrained_file_decides_the_stem_and_is_logged(seg_ds, tmp_path, capsys):
    from segbalance.core.seg.evaluate import read_checkpoint

    weights = tmp_path / "deep18.pth"
    torch.save(ResNet("resnet18", deep_stem=True).state_dict(), weights)
    rc, _, err = cli(["train-seg", str(seg_ds), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "r"),
                      "--backbone", "resnet18", "--pretrained", str(weights), "--crop", CROP_ARG, "--iters", "1",
                      "--batch", "2", "--workers", "0", "--device", "cpu", "--no-json", "--threads", "1"], capsys)
    assert rc == 0, err
    ck = read_checkpoint(tmp_path / "r")
    assert ck["model_config"]["deep_stem"] is True
    notes = json.loads((tmp_path / "r" / "result.json").read_text())["notes"]
    assert any("deep 3x3 stem" in n and str(weights) in n for n in notes)
