"""pix2pixHD networks, inputs, losses and the renderer (tiny nets, tiny images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segbalance.core.cli import main
from segbalance.core.errors import SegbalanceError
from segbalance.core.render.gan_losses import (
    VGG19Features,
    VGGLoss,
    class_balance_weights,
    feature_matching_loss,
    load_vgg19,
    lsgan_loss,
)
from segbalance.core.render.pix2pixhd import edge_map, kmeans, load_renderer, one_hot, sample_features
from segbalance.core.render.pix2pixhd_nets import (
    Encoder,
    Pix2PixHDConfig,
    build_discriminator,
    build_generator,
    instance_mean,
    param_count,
)

torch.set_num_threads(2)
TINY = dict(label_nc=35, ngf=8, n_downsample_global=2, n_blocks_global=1, ndf=8, num_D=2)


def test_default_global_generator_has_the_official_parameter_count():
    with torch.device("meta"):
        g = build_generator(Pix2PixHDConfig(label_nc=35))
    assert param_count(g) == 182_546_755


def test_global_generator_keys_follow_the_official_sequential_layout():
    g = build_generator(Pix2PixHDConfig(**{**TINY, "n_blocks_global": 3}))
    keys = list(g.state_dict())
    # 0 pad, 1 conv, 2 norm, 3 relu, then 2 downsamplings x 3 layers -> residual blocks start at index 10
    assert keys[:4] == ["model.1.weight", "model.1.bias", "model.4.weight", "model.4.bias"]
    assert "model.10.conv_block.1.weight" in keys and "model.10.conv_block.5.weight" in keys
    assert "model.12.conv_block.5.bias" in keys
    assert keys[-2:] == ["model.20.weight", "model.20.bias"]  # the 7x7 conv to RGB, before Tanh
    # instance norm without affine parameters: no norm weights in the state dict
    assert all(k.endswith(("weight", "bias")) and "running" not in k for k in keys)
    with torch.device("meta"):
        full = build_generator(Pix2PixHDConfig(label_nc=35))
    assert full.state_dict()["model.1.weight"].shape == (64, 36, 7, 7)
    # 4 downsamplings: blocks at 16..24, upsampling 25..36, last conv 38 (37 pad, 39 tanh)
    assert "model.16.conv_block.1.weight" in full.state_dict() and "model.24.conv_block.5.weight" in full.state_dict()
    assert list(full.state_dict())[-1] == "model.38.bias"


def test_local_enhancer_and_discriminator_keys_and_shapes():
    cfg = Pix2PixHDConfig(**{**TINY, "netG": "local"})
    g = build_generator(cfg)
    sd = g.state_dict()
    assert sd["model.1.weight"].shape[0] == 16  # the global part runs at 2 * ngf
    assert {"model1_1.1.weight", "model1_1.4.weight", "model1_2.0.conv_block.1.weight"} <= set(sd)
    assert not any(k.startswith("model.") and int(k.split(".")[1]) > 16 for k in sd)  # output layers dropped
    x = torch.randn(2, cfg.input_nc, 32, 64)
    assert g(x).shape == (2, 3, 32, 64)
    d = build_discriminator(cfg)
    assert "scale0_layer0.0.weight" in d.state_dict() and "scale1_layer4.0.weight" in d.state_dict()
    feats = d(torch.randn(2, cfg.label_channels + 3, 32, 64))
    assert len(feats) == 2 and all(len(f) == 5 for f in feats)
    assert feats[0][-1].shape[:2] == (2, 1) and feats[1][-1].shape[-1] < feats[0][-1].shape[-1]


def test_global_generator_output_shape_and_range():
    cfg = Pix2PixHDConfig(**TINY)
    y = build_generator(cfg)(torch.randn(1, cfg.input_nc, 32, 64))
    assert y.shape == (1, 3, 32, 64) and y.abs().max() <= 1


def test_edge_map_marks_both_sides_of_4_neighbour_boundaries():
    inst = torch.tensor([[1, 1, 2, 2],
                         [1, 1, 2, 2],
                         [3, 3, 3, 3],
                         [3, 3, 3, 3]])
    expected = torch.tensor([[0, 1, 1, 0],
                             [1, 1, 1, 1],
                             [1, 1, 1, 1],
                             [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(edge_map(inst), expected)
    # a single differing pixel: it and its 4 neighbours, not the diagonals
    one = torch.zeros(5, 5, dtype=torch.int32)
    one[2, 2] = 26001
    e = edge_map(one)
    assert e.sum() == 5 and e[2, 2] == 1 and e[1, 2] == 1 and e[2, 1] == 1 and e[1, 1] == 0
    # same class, different instances still gets a boundary; batches work
    cars = torch.tensor([[[26000, 26000, 26001]]])
    assert edge_map(cars).tolist() == [[[0.0, 1.0, 1.0]]]


def test_one_hot_ignores_ids_outside_label_nc():
    lab = torch.tensor([[[0, 34, 255]]])
    oh = one_hot(lab, 35)
    assert oh.shape == (1, 35, 1, 3)
    assert oh[0, 0, 0, 0] == 1 and oh[0, 34, 0, 1] == 1 and oh[0, :, 0, 2].sum() == 0


def test_encoder_features_are_constant_within_each_instance():
    torch.manual_seed(0)
    e = Encoder(3, 3, ngf=4, n_downsampling=2)
    inst = torch.zeros(1, 16, 16, dtype=torch.int64)
    inst[:, 4:10, 4:12] = 26001
    f = e(torch.randn(1, 3, 16, 16), inst)
    assert f.shape == (1, 3, 16, 16)
    inside = f[0][:, inst[0] == 26001]
    assert torch.allclose(inside, inside[:, :1].expand_as(inside))
    assert not torch.allclose(inside[:, 0], f[0][:, 0, 0])
    # gradients flow through the instance mean
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    instance_mean(x, torch.zeros(1, 4, 4, dtype=torch.int64)).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_lsgan_and_feature_matching_losses():
    real = [[torch.ones(1, 4, 3, 3), torch.ones(1, 1, 2, 2)]]
    assert lsgan_loss(real, True) == 0 and lsgan_loss(real, False) == 1
    fake = [[torch.zeros(1, 4, 3, 3), torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 4, 3, 3), torch.zeros(1, 1, 2, 2)]]
    realf = [[torch.ones(1, 4, 3, 3), torch.full((1, 1, 2, 2), 5.0)]] * 2
    # only intermediate features count (not the output): 2 scales x 1 layer x (1/2) x 4/(3+1) x 10 x |0-1|
    assert feature_matching_loss(fake, realf, n_layers=3) == pytest.approx(10.0)


def test_class_balance_weights_favour_rare_classes_and_average_one():
    lab = torch.full((1, 10, 10), 7)
    lab[0, 0, :2] = 24  # 2 pixels of person
    w = class_balance_weights(lab, 35)
    assert w.shape == (1, 1, 10, 10)
    assert w.mean().item() == pytest.approx(1.0)
    assert w[0, 0, 0, 0] / w[0, 0, 5, 5] == pytest.approx(98 / 2)


def _random_vgg_file(tmp_path):
    torch.manual_seed(0)
    sd = {k: v * 0.1 for k, v in VGG19Features().state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # the rest of a torchvision vgg19 file is ignored
    p = tmp_path / "vgg19.pth"
    torch.save(sd, p)
    return p


def test_vgg19_loads_torchvision_layout_and_gives_a_perceptual_loss(tmp_path):
    vgg = load_vgg19(_random_vgg_file(tmp_path))
    assert all(not p.requires_grad for p in vgg.parameters())
    assert len(vgg.features) == 30  # conv1_1 .. relu5_1
    loss = VGGLoss(vgg)
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(a, a) == 0 and loss(a, b) > 0
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(SegbalanceError, match="not torchvision vgg19 weights"):
        load_vgg19(bad)


def test_kmeans_finds_separated_clusters_and_features_are_sampled_per_class():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.01, (20, 3)), rng.normal(5, 0.01, (20, 3))])
    c = kmeans(x, 2)
    assert sorted(np.round(c[:, 0]).tolist()) == [0.0, 5.0]
    inst = np.array([[26000, 26000, 7]])
    f = sample_features(inst, {"26": np.array([[1.0, 2.0, 3.0]])}, 3, rng)
    assert f[:, 0, 0].tolist() == [1, 2, 3] and f[:, 0, 2].tolist() == [0, 0, 0]


@pytest.fixture()
def tiny_state_dict(tmp_path):
    torch.manual_seed(0)
    g = build_generator(Pix2PixHDConfig(**TINY))
    p = tmp_path / "latest_net_G.pth"
    torch.save(g.state_dict(), p)
    return p, g


def test_bare_official_style_state_dict_renders_without_conversion(tiny_state_dict):
    path, g = tiny_state_dict
    r = load_renderer(path, "cpu", size=(64, 32), amp="off")
    assert (r.label_nc, r.arch.ngf, r.arch.n_blocks_global, r.arch.netG) == (35, 8, 1, "global")
    assert r.size == (64, 32) and len(r.checkpoint_sha256) == 64 and r.device.type == "cpu"
    lab = np.full((32, 64), 7, np.uint8)
    lab[20:, 10:30] = 26
    inst = lab.astype(np.int32)
    inst[20:, 10:20] = 26000
    inst[20:, 20:30] = 26001
    out = r.render_batch([lab, lab], [inst, None])
    assert len(out) == 2 and out[0].shape == (32, 64, 3) and out[0].dtype == np.uint8
    assert not np.array_equal(out[0], out[1])  # the instance boundary between the two cars matters
    # same result as running the network by hand
    from segbalance.core.render.pix2pixhd import label_input

    x = label_input(torch.from_numpy(lab)[None].long(), torch.from_numpy(inst)[None], r.arch)
    with torch.no_grad():
        ref = ((g(x)[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(ref.astype(int) - out[0].astype(int)).max() <= 1
    # a label map of another size is rendered at the model size and returned at its own size
    big = r.render(np.full((64, 128), 7, np.uint8))
    assert big.shape == (64, 128, 3)
    # bf16 autocast stays close to fp32
    r16 = load_renderer(path, "cpu", size=(64, 32), amp="bf16")
    diff = np.abs(r16.render(lab, inst).astype(float) - out[0].astype(float)).mean() / 127.5
    assert diff < 0.02


def test_mismatched_checkpoint_is_a_one_line_error_naming_keys(tiny_state_dict, tmp_path, capsys):
    path, _ = tiny_state_dict
    with pytest.raises(SegbalanceError, match=r"model\.1\.weight \[8, 36, 7, 7\] vs \[16, 36, 7, 7\]"):
        load_renderer(path, "cpu", ngf=16)
    with pytest.raises(SegbalanceError, match="missing keys: model.11.conv_block.1.weight.*unexpected keys: model.11"):
        load_renderer(path, "cpu", n_blocks_global=2)
    labels = tmp_path / "labels"
    labels.mkdir()
    from segbalance.core.io import write_png

    write_png(labels / "a_labelIds.png", np.zeros((32, 64), np.uint8))
    rc = main(["render", str(labels), "--checkpoint", str(path), "--out", str(tmp_path / "o"), "--label-nc", "19"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "model.1.weight [8, 36, 7, 7] vs [8, 20, 7, 7]" in err[0]
    assert "Traceback" not in err[0]
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    rc = main(["render", str(labels), "--checkpoint", str(junk), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "junk.pth: not a readable PyTorch checkpoint" in err[0]
    # a pickle with arbitrary objects is refused by weights_only loading, not executed
    evil = tmp_path / "evil.pth"
    torch.save({"x": np.zeros(2)}, evil)
    rc = main(["render", str(labels), "--checkpoint", str(evil), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "refusing to unpickle" in err[0]
    # the good case through the CLI
    rc = main(["render", str(labels), "--checkpoint", str(path), "--out", str(tmp_path / "o"), "--size", "64x32"])
    assert rc == 0 and (tmp_path / "o" / "a.png").exists()


def test_bare_local_enhancer_state_dict_is_recognised(tmp_path):
    cfg = Pix2PixHDConfig(**{**TINY, "netG": "local", "n_blocks_local": 2})
    torch.manual_seed(0)
    p = tmp_path / "latest_net_G.pth"
    torch.save(build_generator(cfg).state_dict(), p)
    r = load_renderer(p, "cpu", size=(64, 32), amp="off")
    assert (r.arch.netG, r.arch.ngf, r.arch.n_local_enhancers, r.arch.n_blocks_local) == ("local", 8, 1, 2)
    assert (r.arch.n_downsample_global, r.arch.n_blocks_global, r.label_nc) == (2, 1, 35)
    assert r.render(np.zeros((32, 64), np.uint8)).shape == (32, 64, 3)


def test_legacy_non_zip_state_dict_loads(tmp_path):
    """The official checkpoints predate PyTorch's zip format."""
    torch.manual_seed(0)
    g = build_generator(Pix2PixHDConfig(**TINY))
    p = tmp_path / "latest_net_G.pth"
    torch.save(g.state_dict(), p, _use_new_zipfile_serialization=False)
    assert p.read_bytes()[:1] == b"\x80"
    r = load_renderer(p, "cpu", size=(64, 32), amp="off")
    assert torch.equal(r.generator.state_dict()["model.1.weight"], g.state_dict()["model.1.weight"])


@pytest.mark.parametrize("use_instance", [True, False])
def test_table_front_equals_the_first_conv_on_one_hot_input(use_instance):
    """The renderer's lookup-table front must be the same function as pad + 7x7 conv over one-hot + edges."""
    from segbalance.core.render.pix2pixhd import LabelTableFront, label_input

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(35 + use_instance, 16, 7)
    rng = np.random.default_rng(0)
    lab = torch.from_numpy(rng.integers(0, 35, (2, 24, 40)))
    lab[0, :5, :7] = 255  # ignore ids: all-zero one-hot
    inst = lab.clone()
    inst[:, 10:, 20:] = 26001
    cfg = Pix2PixHDConfig(label_nc=35, use_instance=use_instance)
    x = label_input(lab, inst, cfg)
    ref = conv(torch.nn.functional.pad(x, (3, 3, 3, 3), mode="reflect"))
    got = LabelTableFront(conv, 35, use_instance)(lab, edge_map(inst) if use_instance else None)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("netG", ["global", "local"])
def test_renderer_with_table_front_matches_the_plain_network(netG, tmp_path):
    cfg = Pix2PixHDConfig(**{**TINY, "netG": netG, "n_blocks_local": 1})
    torch.manual_seed(1)
    g = build_generator(cfg)
    for m in g.modules():  # non-zero biases, so the table's bias path is exercised
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.bias, 0, 0.1)
    p = tmp_path / "latest_net_G.pth"
    torch.save(g.state_dict(), p)
    lab = np.full((32, 64), 7, np.uint8)
    lab[:8] = 23
    lab[20:, 10:30] = 26
    lab[0, :4] = 255
    inst = lab.astype(np.int32)
    inst[20:, 20:30] = 26001
    fast = load_renderer(p, "cpu", size=(64, 32), amp="off")
    plain = load_renderer(p, "cpu", size=(64, 32), amp="off", table_front=False)
    assert fast.front is not None and plain.front is None
    a, b = fast.render(lab, inst), plain.render(lab, inst)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    fast16 = load_renderer(p, "cpu", size=(64, 32), amp="bf16")
    assert np.abs(fast16.render(lab, inst).astype(float) - b).mean() / 127.5 < 0.02


# -- resize-convolution upsampling (non-official presets) ---------------------------------------------
def test_official_presets_keep_the_official_layout_and_tiny_uses_resize_convolutions():
    from segbalance.core.render.gan_train import PRESETS, make_config

    for name in ("512p", "1024p"):
        assert make_config(name).arch.upsample == "transpose"
        with torch.device("meta"):
            g = build_generator(make_config(name).arch)
        assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    with torch.device("meta"):
        assert param_count(build_generator(make_config("512p").arch)) == 182_546_755
    assert PRESETS["tiny"]["upsample"] == "resize"
    tiny = build_generator(make_config("tiny").arch)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in tiny.modules())
    # a checkpoint config written before the option existed still builds the transposed layout it was trained with
    old = Pix2PixHDConfig.from_dict({k: v for k, v in make_config("tiny").arch.to_dict().items() if k != "upsample"})
    assert old.upsample == "transpose"


@pytest.mark.parametrize("net", ["global", "local"])
def test_resize_generators_keep_the_input_size(net):
    cfg = Pix2PixHDConfig(**{**TINY, "netG": net, "upsample": "resize"})
    g = build_generator(cfg)
    x = torch.randn(2, cfg.input_nc, 32, 64)
    assert g(x).shape == (2, 3, 32, 64)
    assert sum(isinstance(m, torch.nn.Upsample) for m in g.modules()) == cfg.n_downsample_global + (
        cfg.n_local_enhancers if net == "local" else 0)


def test_resize_generator_learns_a_fixed_pair():
    torch.manual_seed(0)
    cfg = Pix2PixHDConfig(**{**TINY, "upsample": "resize"})
    g = build_generator(cfg)
    lab = torch.zeros(1, 35, 32, 64)
    lab[:, 7, 16:] = 1  # road below, sky above
    lab[:, 23, :16] = 1
    x = torch.cat([lab, torch.zeros(1, 1, 32, 64)], 1)
    target = torch.cat([torch.full((1, 3, 16, 64), 0.6), torch.full((1, 3, 16, 64), -0.4)], 2)
    opt = torch.optim.Adam(g.parameters(), lr=2e-3)
    first = None
    for _ in range(30):
        loss = torch.nn.functional.l1_loss(g(x), target)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_a_bare_resize_state_dict_is_recognised():
    from segbalance.core.render.pix2pixhd import infer_generator_config

    for mode in ("transpose", "resize"):
        sd = build_generator(Pix2PixHDConfig(**{**TINY, "upsample": mode})).state_dict()
        assert infer_generator_config(sd).get("upsample", "transpose") == mode


# -- label skips (non-official presets) ---------------------------------------------------------------
def test_label_skips_feed_the_pooled_input_to_every_upsampling_stage():
    cfg = Pix2PixHDConfig(**{**TINY, "upsample": "resize", "label_skips": True})
    g = build_generator(cfg)
    assert len(g.skips) == cfg.n_downsample_global
    x = torch.randn(2, cfg.input_nc, 32, 64)
    assert g(x).shape == (2, 3, 32, 64)
    # each upsampling conv takes its features plus the input's channels
    ups = [m for m in g.model if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1)]
    assert [m.in_channels for m in ups] == [4 * cfg.ngf + cfg.input_nc, 2 * cfg.ngf + cfg.input_nc]
    # the skips carry the layout past the bottleneck: with the bottleneck's features zeroed, the output still
    # depends on the input, which it cannot without skips
    def decoded(net, inp):
        blocks = [i for i, m in enumerate(net.model) if m.__class__.__name__ == "ResnetBlock"]
        with torch.no_grad():
            h = torch.zeros_like(net.model[: blocks[-1] + 1](inp))
            return net.decode(h, blocks[-1] + 1, inp)

    plain = build_generator(Pix2PixHDConfig(**{**TINY, "upsample": "resize"}))
    x2 = x.flip(-1)
    assert not torch.allclose(decoded(g, x), decoded(g, x2))
    assert torch.allclose(decoded(plain, x), decoded(plain, x2))
    with pytest.raises(ValueError, match="resize"):
        build_generator(Pix2PixHDConfig(**{**TINY, "label_skips": True}))
    with pytest.raises(ValueError, match="global"):
        build_generator(Pix2PixHDConfig(**{**TINY, "netG": "local", "upsample": "resize", "label_skips": True}))


def test_official_presets_have_no_label_skips_and_a_bare_skip_state_dict_renders(tmp_path):
    from segbalance.core.render.gan_train import make_config
    from segbalance.core.render.pix2pixhd import infer_generator_config

    for name in ("512p", "1024p"):
        assert make_config(name).arch.label_skips is False
    cfg = Pix2PixHDConfig(**{**TINY, "upsample": "resize", "label_skips": True})
    sd = build_generator(cfg).state_dict()
    inferred = infer_generator_config(sd)
    assert (inferred["upsample"], inferred["label_skips"]) == ("resize", True)
    torch.save(sd, tmp_path / "latest_net_G.pth")
    r = load_renderer(tmp_path / "latest_net_G.pth", "cpu", size=(64, 32), amp="off")
    assert r.front is None  # the table front would drop the one-hot input the skips need
    lab = np.full((32, 64), 7, np.uint8)
    lab[:10] = 23
    assert r.render(lab).shape == (32, 64, 3)


def test_noise_channels_join_the_skips_and_the_renderer_draws_them_from_its_seed(tmp_path):
    from segbalance.core.render.pix2pixhd import infer_generator_config

    with pytest.raises(ValueError, match="label_skips"):
        build_generator(Pix2PixHDConfig(**{**TINY, "upsample": "resize", "noise_nc": 2}))
    cfg = Pix2PixHDConfig(**{**TINY, "upsample": "resize", "label_skips": True, "noise_nc": 2})
    torch.manual_seed(0)
    g = build_generator(cfg)
    assert g.model[1].in_channels == cfg.input_nc  # the front never sees the noise
    x = torch.randn(1, cfg.g_input_nc, 32, 64)
    x2 = x.clone()
    x2[:, cfg.input_nc:] = torch.randn(1, 2, 32, 64)
    with torch.no_grad():
        assert not torch.allclose(g(x), g(x2))  # other noise, another image of the same map
    torch.save(g.state_dict(), tmp_path / "g.pth")
    assert infer_generator_config(g.state_dict())["noise_nc"] == 2
    lab = np.full((32, 64), 7, np.uint8)
    lab[:10] = 23
    a, b, c = (load_renderer(tmp_path / "g.pth", "cpu", size=(64, 32), amp="off", seed=s) for s in (0, 0, 1))
    assert np.array_equal(a.render(lab), b.render(lab)) and not np.array_equal(a.render(lab), c.render(lab))
