"""pix2pixHD training: learning happens, resume is exact, DDP matches one big batch, curves reach the DB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.render.gan_train import make_config, train_gan
from segbalance.core.render.pix2pixhd import Renderer, load_renderer, read_checkpoint
from segbalance.core.render.pix2pixhd_nets import build_generator, init_weights
from segbalance.core.workspace import Workspace
from segbalance.db import models as m

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
SIZE = (64, 32)
ARCH = dict(ngf=8, n_downsample_global=2, n_blocks_global=2, ndf=8, num_D=2)


@pytest.fixture(scope="module")
def gan_dataset(sample_dataset) -> Path:
    """The built-in sample dataset (24 train / 8 val street scenes at 256x128), trained on at 64x32."""
    return Path(sample_dataset)


def _cfg(**kw):
    base = dict(arch=dict(ARCH), size=SIZE, iters=6, save_every=1000, log_every=1, device="cpu")
    base.update(kw)
    return make_config("tiny", **base)


def _l1_to_real(renderer: Renderer, ds, n: int = 6) -> float:
    import cv2

    refs = ds.samples("train")[:n]
    labels = [cv2.resize(ds.load_label(r), SIZE, interpolation=cv2.INTER_NEAREST) for r in refs]
    insts = [cv2.resize(ds.load_instance(r), SIZE, interpolation=cv2.INTER_NEAREST) for r in refs]
    reals = [cv2.resize(ds.load_image(r), SIZE, interpolation=cv2.INTER_CUBIC) for r in refs]
    fakes = renderer.render_batch(labels, insts)
    return float(np.mean([np.abs(f.astype(float) - r.astype(float)).mean() / 127.5
                          for f, r in zip(fakes, reals, strict=True)]))


def test_tiny_training_lowers_l1_to_real_images(gan_dataset, tmp_path):
    ds = open_dataset(gan_dataset)
    cfg = _cfg(iters=120)
    torch.manual_seed(cfg.seed)
    g0 = build_generator(cfg.arch)
    init_weights(g0)
    before = _l1_to_real(Renderer(g0, cfg.arch, SIZE, torch.device("cpu"), "-", amp="off"), ds)
    res = train_gan(ds, tmp_path / "ws", tmp_path / "ckpt", cfg)
    after = _l1_to_real(load_renderer(res.checkpoint, "cpu", amp="off"), ds)
    assert after < 0.85 * before, (before, after)  # measured: 0.40 -> 0.28
    # the plain G state dict renders the same as the full checkpoint
    plain = load_renderer(res.generator, "cpu", size=SIZE, amp="off")
    assert _l1_to_real(plain, ds) == pytest.approx(after)
    ckpt = read_checkpoint(res.checkpoint)
    assert ckpt["iteration"] == 120 and ckpt["config"]["arch"]["ngf"] == 8
    assert {"G", "D", "opt_G", "opt_D", "sched_G", "sched_D", "rng", "config"} <= set(ckpt)
    # loss curves in the workspace DB
    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        run = s.scalars(select(m.TrainingRun)).one()
        assert (run.kind, run.status, run.out_dir) == ("gan", "done", str((tmp_path / "ckpt").resolve()))
        l1 = s.scalars(select(m.MetricPoint).where(m.MetricPoint.run_id == run.id, m.MetricPoint.name == "l1")
                       .order_by(m.MetricPoint.iteration)).all()
        assert [p.iteration for p in l1] == list(range(1, 121))
        names = set(s.scalars(select(m.MetricPoint.name).distinct()))
        assert {"loss_G_GAN", "loss_G_GAN_Feat", "loss_D_real", "loss_D_fake", "lr"} <= names


def test_resume_gives_the_same_next_losses_as_an_uninterrupted_run(gan_dataset, tmp_path):
    cfg = _cfg(iters=6, class_balance=True)
    full = train_gan(gan_dataset, None, tmp_path / "a", cfg)
    stop_after = 3
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        train_gan(gan_dataset, tmp_path / "ws", tmp_path / "b", cfg, cancel=lambda: next(calls) >= stop_after)
    assert read_checkpoint(tmp_path / "b" / "ckpt.pt")["iteration"] == stop_after
    resumed = train_gan(gan_dataset, tmp_path / "ws", tmp_path / "b", _cfg(iters=None), resume=True)
    assert len(resumed.history) == 3
    for a, b in zip(full.history[stop_after:], resumed.history, strict=True):
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), k
    ga, gb = (read_checkpoint(p / "latest_net_G.pth") for p in (tmp_path / "a", tmp_path / "b"))
    assert all(torch.allclose(ga[k], gb[k], atol=1e-6) for k in ga)
    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        runs = s.scalars(select(m.TrainingRun)).all()
        assert len(runs) == 1 and runs[0].status == "done"
        its = s.scalars(select(m.MetricPoint.iteration).where(m.MetricPoint.name == "l1")).all()
        assert sorted(its) == [1, 2, 3, 4, 5, 6]


def test_instance_features_are_clustered_and_sampled_at_inference(gan_dataset, tmp_path):
    cfg = _cfg(iters=2, arch={**ARCH, "feat_num": 3, "nef": 4, "n_downsample_E": 2}, kmeans_clusters=3, ema=0.9)
    res = train_gan(gan_dataset, None, tmp_path / "c", cfg)
    ckpt = read_checkpoint(res.checkpoint)
    clusters = ckpt["feature_clusters"]
    # the encoder is averaged with G: the clusters and latest_net_E.pth come from the average
    plain_e = read_checkpoint(tmp_path / "c" / "latest_net_E.pth")
    assert all(torch.equal(plain_e[k], ckpt["E_ema"][k]) for k in plain_e)
    assert "26" in clusters and clusters["26"].shape[1] == 3 and 1 <= clusters["26"].shape[0] <= 3
    r = load_renderer(res.checkpoint, "cpu", amp="off")
    lab = np.full((32, 64), 7, np.uint8)
    lab[20:, 10:30] = 26
    assert r.render(lab).shape == (32, 64, 3)


def test_train_gan_cli_and_bad_dataset(gan_dataset, tmp_path, capsys):
    rc = main(["train-gan", str(tmp_path / "nope"), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "dataset folder not found" in err[0]
    rc = main(["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
               "--size", "60x30", "--iters", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "must be a multiple of 8" in err[-1]
    rc = main(["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
               "--size", "64x32", "--iters", "2", "--device", "cpu", "--quiet"])
    assert rc == 0 and (tmp_path / "o" / "latest_net_G.pth").exists()
    assert "VGG19 perceptual loss is off" in capsys.readouterr().err
    # a second run into the same folder must not silently overwrite it
    rc = main(["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
               "--size", "64x32", "--iters", "2", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "already holds a training checkpoint; pass --resume" in err[-1]


def test_crops_are_windows_of_the_whole_pair_drawn_from_seed_and_iteration(gan_dataset):
    from segbalance.core.render.gan_train import PairSource

    ds, cpu = open_dataset(gan_dataset), torch.device("cpu")
    whole = PairSource(ds, "train", SIZE, seed=3)
    crops = PairSource(ds, "train", SIZE, seed=3, crop=(32, 16))
    seen = set()
    for it in range(8):
        lab, inst, img = whole.get_batch(it, cpu)
        clab, cinst, cimg = crops.get_batch(it, cpu)
        assert clab.shape == (1, 16, 32) and cimg.shape == (1, 3, 16, 32)
        # label, instances and image come from one window of the same (flipped or not) pair
        hits = [(y, x) for y in range(SIZE[1] - 16 + 1) for x in range(SIZE[0] - 32 + 1)
                if torch.equal(lab[0, y:y + 16, x:x + 32], clab[0])
                and torch.equal(inst[0, y:y + 16, x:x + 32], cinst[0])
                and torch.equal(img[0, :, y:y + 16, x:x + 32], cimg[0])]
        assert hits, it
        seen.add(hits[0])
        again = crops.get_batch(it, cpu)  # a function of (seed, iteration) only: resume sees the same crops
        assert all(torch.equal(a, b) for a, b in zip(again, (clab, cinst, cimg), strict=True))
    assert len(seen) > 3  # the window moves
    # a crop the size of the pair is no crop; one larger than it is refused
    assert PairSource(ds, "train", SIZE, seed=3, crop=SIZE).crop is None
    with pytest.raises(SegbalanceError, match="--crop 128x32 is larger than --size 64x32"):
        PairSource(ds, "train", SIZE, seed=3, crop=(128, 32))


def test_train_gan_on_crops_renders_whole_maps(gan_dataset, tmp_path, capsys):
    args = ["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--size", "64x32", "--iters", "2",
            "--device", "cpu", "--quiet"]
    rc = main([*args, "--out", str(tmp_path / "bad"), "--crop", "30x32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].endswith("--crop 30x32 must be a multiple of 8 for this architecture")
    assert not (tmp_path / "bad" / "ckpt.pt").exists()
    rc = main([*args, "--out", str(tmp_path / "o"), "--crop", "32x32"])
    assert rc == 0
    ckpt = read_checkpoint(tmp_path / "o" / "ckpt.pt")
    assert ckpt["config"]["crop"] == [32, 32] and ckpt["config"]["size"] == [64, 32]
    r = load_renderer(tmp_path / "o" / "ckpt.pt", "cpu", amp="off")
    assert r.render(np.full((32, 64), 7, np.uint8)).shape == (32, 64, 3)  # G is fully convolutional


def test_ddp_two_gloo_processes_match_one_process_with_twice_the_batch(gan_dataset, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "segbalance.core.cli", "train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"),
           "--out", str(tmp_path / "ddp"), "--size", "64x32", "--iters", "1", "--device", "cpu", "--threads", "1",
           "--amp", "off", "--quiet"]  # fp32 like the one-process reference below (auto may pick bf16)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = read_checkpoint(tmp_path / "ddp" / "ckpt.pt")
    assert ddp["iteration"] == 1
    one, init = (read_checkpoint(train_gan(gan_dataset, None, tmp_path / name, make_config(
        "tiny", size=SIZE, iters=iters, batch_size=2, device="cpu", save_every=1000)).checkpoint)
        for name, iters in (("one", 1), ("init", 0)))
    for net in ("G", "D"):
        n = sum(v.numel() for v in one[net].values())
        diff = sum((ddp[net][k] - one[net][k]).abs().sum().item() for k in one[net]) / n
        update = sum((one[net][k] - init[net][k]).abs().sum().item() for k in one[net]) / n
        # the same update up to float noise; checked after one step because Adam (beta1 0.5) turns that noise
        # into lr-sized differences for near-cancelling gradients within a few steps
        assert diff < 0.01 * update, (net, diff, update)
    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        assert len(s.scalars(select(m.TrainingRun)).all()) == 1  # only rank 0 records the run


def test_vgg_loss_turns_on_with_a_weights_file_and_bf16_amp_trains(gan_dataset, tmp_path):
    from segbalance.core.render.gan_losses import VGG19Features

    torch.manual_seed(0)
    vgg = tmp_path / "vgg19.pth"
    torch.save({k: v * 0.1 for k, v in VGG19Features().state_dict().items()}, vgg)
    res = train_gan(gan_dataset, None, tmp_path / "v", _cfg(iters=2, vgg_weights=str(vgg), amp="bf16"))
    assert all(h["loss_G_VGG"] > 0 and np.isfinite(h["loss_G_GAN"]) for h in res.history)
    res = train_gan(gan_dataset, None, tmp_path / "nv", _cfg(iters=1))
    assert res.history[0]["loss_G_VGG"] == 0


def test_l1_content_loss_and_discriminator_lr_are_options_the_official_presets_leave_off(gan_dataset, tmp_path,
                                                                                         capsys):
    res = train_gan(gan_dataset, None, tmp_path / "l1", _cfg(iters=2, lambda_l1=5.0, lr_d=4e-4))
    for h in res.history:  # the logged term is the weight times the same fake's L1 distance
        assert h["loss_G_L1"] == pytest.approx(5.0 * h["l1"], rel=1e-4)
    ckpt = read_checkpoint(res.checkpoint)
    assert ckpt["opt_D"]["param_groups"][0]["initial_lr"] == pytest.approx(4e-4)
    assert ckpt["opt_G"]["param_groups"][0]["initial_lr"] == pytest.approx(2e-4)
    res = train_gan(gan_dataset, None, tmp_path / "off", _cfg(iters=1, lambda_l1=0.0))
    assert res.history[0]["loss_G_L1"] == 0
    # an option not given (None) trains as the release does, in every preset
    for preset in ("tiny", "512p", "1024p"):
        cfg = make_config(preset, lambda_l1=None, lr_d=None)
        assert (cfg.lambda_l1, cfg.lr_d) == (0.0, None)
    rc = main(["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
               "--lambda-l1", "-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--lambda-l1 must be 0 or more" in err[0]


def test_sigterm_stops_the_cli_with_a_checkpoint_and_a_cancelled_run(gan_dataset, tmp_path):
    import signal
    import sqlite3
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "segbalance.core.cli", "train-gan", str(gan_dataset), "--workspace",
                             str(tmp_path / "ws"), "--out", str(tmp_path / "o"), "--size", "64x32", "--iters", "100000",
                             "--threads", "1", "--quiet"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until the first loss points reach the database
            time.sleep(1)
            db = tmp_path / "ws" / "segbalance.db"
            if db.exists():
                with sqlite3.connect(db) as con:
                    try:
                        if con.execute("select count(*) from metric_point").fetchone()[0]:
                            break
                    except sqlite3.OperationalError:
                        pass
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "cancelled" in err
    it = read_checkpoint(tmp_path / "o" / "ckpt.pt")["iteration"]
    assert it >= 10
    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        assert s.scalars(select(m.TrainingRun.status)).one() == "cancelled"


def test_ema_decay_warms_up_then_holds_and_the_update_is_a_weighted_mean():
    from segbalance.core.render.gan_train import ema_decay, ema_update

    assert ema_decay(0, 0.999) == pytest.approx(0.1)  # step 0 keeps 90% of the first trained weights
    assert ema_decay(90, 0.999) == pytest.approx(91 / 100)
    assert ema_decay(100_000, 0.999) == 0.999
    avg, model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        avg.weight.fill_(1.0)
        model.weight.fill_(3.0)
    ema_update(avg, model, 0.75)
    assert torch.allclose(avg.weight, torch.full_like(avg.weight, 1.5))
    assert torch.allclose(model.weight, torch.full_like(model.weight, 3.0))  # the trained weights are untouched


def test_debiased_ema_is_the_normalised_exponential_average_of_every_step():
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.render.gan_train import ema_decay

    d = 0.9
    assert ema_decay(0, d, "debias") == pytest.approx(0.0)  # step 0 copies the model
    # running the recursion over weights w_0..w_n gives sum d^(n-i) w_i / sum d^(n-i)
    ws = [3.0, -1.0, 4.0, 1.0, 5.0]
    avg = 0.0
    for t, w in enumerate(ws):
        k = ema_decay(t, d, "debias")
        avg = k * avg + (1 - k) * w
    n = len(ws) - 1
    want = sum(d ** (n - i) * w for i, w in enumerate(ws)) / sum(d ** (n - i) for i in range(n + 1))
    assert avg == pytest.approx(want)
    # at 1500 steps "short" still weighs the newest step ~5x more than decay 0.999 does; "debias" holds 0.999
    assert 1 - ema_decay(1499, 0.999) > 5 * (1 - 0.999)
    assert ema_decay(100_000, 0.999, "debias") == pytest.approx(0.999)
    with pytest.raises(SegbalanceError, match="warm-up"):
        ema_decay(3, 0.9, "linear")


def test_an_unknown_ema_warmup_is_refused_before_training(gan_dataset, tmp_path):
    from segbalance.core.errors import SegbalanceError

    with pytest.raises(SegbalanceError, match="unknown EMA warm-up 'linear'"):
        train_gan(gan_dataset, None, tmp_path / "o", _cfg(ema_warmup="linear"))
    assert not (tmp_path / "o" / "ckpt.pt").exists()


def test_spectral_norm_d_trains_in_bf16_and_official_presets_keep_plain_d_keys(gan_dataset, tmp_path):
    from segbalance.core.render.pix2pixhd_nets import build_discriminator, init_weights

    for name in ("512p", "1024p", "tiny"):
        keys = set(build_discriminator(make_config(name).arch).state_dict())
        assert not any("parametrizations" in k for k in keys), name
    sn = build_discriminator(make_config("tiny", arch={"spectral_norm_D": True}).arch)
    init_weights(sn)  # the release's N(0, 0.02) reaches the stored weight behind the parametrisation
    assert abs(float(sn.scale0_layer3[0].parametrizations.weight.original.detach().std()) - 0.02) < 0.001
    cfg = _cfg(iters=4, arch={**ARCH, "spectral_norm_D": True}, amp="bf16")
    res = train_gan(gan_dataset, None, tmp_path / "sn", cfg)
    d = read_checkpoint(res.checkpoint)["D"]
    # the normalised convs (not the first and last of each scale) carry the original weight and power-iteration u
    assert {"scale0_layer1.0.parametrizations.weight.original", "scale0_layer1.0.parametrizations.weight.0._u",
            "scale0_layer0.0.weight", "scale0_layer4.0.weight"} <= set(d)
    assert all(np.isfinite(h["loss_D_real"]) for h in res.history)
    # a stopped run resumes: the parametrised D is rebuilt from the checkpoint's config and its state loads
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        train_gan(gan_dataset, None, tmp_path / "b", cfg, cancel=lambda: next(calls) >= 2)
    resumed = train_gan(gan_dataset, None, tmp_path / "b", _cfg(iters=None), resume=True)
    assert len(resumed.history) == 2


def test_ema_renders_the_average_keeps_the_trained_g_and_resumes_exactly(gan_dataset, tmp_path):
    cfg = _cfg(iters=6, ema=0.9)
    full = train_gan(gan_dataset, None, tmp_path / "a", cfg)
    ckpt = read_checkpoint(full.checkpoint)
    g, avg = ckpt["G"], ckpt["G_ema"]
    assert set(g) == set(avg) and any(not torch.equal(g[k], avg[k]) for k in g)
    # latest_net_G.pth (the official drop-in) holds the average, in the same layout as G
    plain = read_checkpoint(full.generator)
    assert all(torch.equal(plain[k], avg[k]) for k in avg)
    lab = np.full((32, 64), 7, np.uint8)
    lab[20:, 10:30] = 26
    def render(path, **kw):  # a fresh renderer each time: the same seed draws the same noise
        return load_renderer(path, "cpu", amp="off", **kw).render(lab)

    assert not np.array_equal(render(full.checkpoint), render(full.checkpoint, raw_weights=True))
    assert np.array_equal(render(full.checkpoint), render(full.generator, size=SIZE))
    # stop after 3 steps, resume: the average continues as if never interrupted
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        train_gan(gan_dataset, None, tmp_path / "b", cfg, cancel=lambda: next(calls) >= 3)
    resumed = train_gan(gan_dataset, None, tmp_path / "b", _cfg(iters=None), resume=True)
    avg_b = read_checkpoint(resumed.checkpoint)["G_ema"]
    assert all(torch.allclose(avg[k], avg_b[k], atol=1e-6) for k in avg)
    # `--ema off` (0) keeps no average and G renders, as in the release; not given (None) is the preset's default
    off = read_checkpoint(train_gan(gan_dataset, None, tmp_path / "c", _cfg(iters=1, ema=0.0)).checkpoint)
    assert off["G_ema"] is None
    assert _cfg(ema=None).ema == make_config("tiny").ema and make_config("512p").ema is None


def test_a_generator_with_skips_and_noise_trains_and_resumes_exactly(gan_dataset, tmp_path):
    arch = {**ARCH, "upsample": "resize", "label_skips": True, "noise_nc": 2}
    full = train_gan(gan_dataset, None, tmp_path / "a", _cfg(iters=4, arch=arch))
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        train_gan(gan_dataset, None, tmp_path / "b", _cfg(iters=4, arch=arch), cancel=lambda: next(calls) >= 2)
    resumed = train_gan(gan_dataset, None, tmp_path / "b", _cfg(iters=None), resume=True)
    for a, b in zip(full.history[2:], resumed.history, strict=True):
        assert b["loss_G_GAN"] == pytest.approx(a["loss_G_GAN"], rel=1e-5)
    ga, gb = (read_checkpoint(p / "ckpt.pt")["G"] for p in (tmp_path / "a", tmp_path / "b"))
    assert all(torch.allclose(ga[k], gb[k], atol=1e-6) for k in ga)
    lab = np.full((32, 64), 7, np.uint8)
    assert load_renderer(full.checkpoint, "cpu", amp="off").render(lab).shape == (32, 64, 3)


def test_train_gan_cli_ema_option(gan_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
              "--ema", "1.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "between 0 and 1" in err[0]
    rc = main(["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
               "--size", "64x32", "--iters", "1", "--device", "cpu", "--quiet", "--ema", "off"])
    assert rc == 0 and read_checkpoint(tmp_path / "o" / "ckpt.pt")["G_ema"] is None
    rc = main(["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "p"),
               "--size", "64x32", "--iters", "1", "--device", "cpu", "--quiet"])
    ckpt = read_checkpoint(tmp_path / "p" / "ckpt.pt")
    assert rc == 0 and ckpt["config"]["ema"] == 0.999 and ckpt["G_ema"] is not None  # the tiny preset's default


def test_train_gan_cli_ema_warmup_and_spectral_norm_options(gan_dataset, tmp_path, capsys):
    from segbalance.core.cli import main

    base = ["train-gan", str(gan_dataset), "--workspace", str(tmp_path / "ws"), "--size", "64x32", "--iters",
            "1", "--device", "cpu", "--quiet"]
    with pytest.raises(SystemExit) as exc:
        main([*base, "--out", str(tmp_path / "bad"), "--ema-warmup", "linear"])
    assert exc.value.code == 2 and "linear" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "o"), "--ema-warmup", "debias", "--spectral-norm-d"]) == 0
    cfg = read_checkpoint(tmp_path / "o" / "ckpt.pt")["config"]
    assert cfg["ema_warmup"] == "debias" and cfg["arch"]["spectral_norm_D"] is True
    assert main([*base, "--out", str(tmp_path / "p")]) == 0  # not given: the preset's
    cfg = read_checkpoint(tmp_path / "p" / "ckpt.pt")["config"]
    assert cfg["ema_warmup"] == make_config("tiny").ema_warmup
    assert cfg["arch"]["spectral_norm_D"] == make_config("tiny").arch.spectral_norm_D
