"""DiffAugment of pix2pixHD's discriminator input: deterministic, alike for real and fake, differentiable."""

from __future__ import annotations

import pytest
import torch

from segbalance.core.cli import main
from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.render.gan_augment import draw, parse_policy, sliced
from segbalance.core.render.gan_train import make_config, train_gan
from segbalance.core.render.pix2pixhd import read_checkpoint

ARCH = dict(ngf=8, n_downsample_global=2, n_blocks_global=2, ndf=8, num_D=2)


def test_policy_text_is_canonical_off_is_none_and_unknown_names_fail():
    assert parse_policy(" Cutout, translation ") == "translation,cutout"
    assert parse_policy("off") is None and parse_policy(None) is None and parse_policy("") is None
    with pytest.raises(SegbalanceError, match="color"):
        parse_policy("translation,color")


def test_a_draw_depends_on_its_key_only_and_moves_every_tensor_alike():
    a, b = draw("translation", 3, 16, 32, [0, 7, 2]), draw("translation", 3, 16, 32, [0, 7, 2])
    assert torch.equal(a.shift, b.shift)
    assert not torch.equal(a.shift, draw("translation", 3, 16, 32, [0, 8, 2]).shift)
    assert a.shift[:, 0].abs().max() <= 2 and a.shift[:, 1].abs().max() <= 4  # 1/8 of 16 and of 32
    # a one-pixel mark lands where the shift says, on every channel and in every tensor given the same draw
    x = torch.zeros(3, 2, 16, 32)
    x[:, :, 8, 16] = 1
    for y in (a(x), a(x.clone())):
        for i, (dy, dx) in enumerate(a.shift.tolist()):
            assert y[i, :, 8 - dy, 16 - dx].tolist() == [1.0, 1.0] and y[i].sum() == 2


def test_cutout_zeroes_one_clipped_rectangle_and_gradients_pass():
    aug = draw("cutout", 64, 16, 32, [1, 0, 3])
    assert aug.shift is None and aug.cut_size == (8, 16)
    x = torch.ones(64, 2, 16, 32, requires_grad=True)
    y = aug(x)
    for i, (y0, x0) in enumerate(aug.cut.tolist()):
        h = min(y0 + 8, 16) - max(y0, 0)
        w = min(x0 + 16, 32) - max(x0, 0)
        assert int((y[i, 0] == 0).sum()) == max(h, 0) * max(w, 0)
    assert (aug.cut[:, 0] < 0).any() or (aug.cut[:, 0] > 8).any()  # some rectangles hang over an edge
    y.sum().backward()
    assert (x.grad == (y.detach() != 0).float()).all()


def test_a_slice_of_a_global_draw_is_that_process_share():
    both = draw("translation,cutout", 4, 16, 32, [0, 1, 2])
    part = sliced(both, slice(2, 4))
    assert torch.equal(part.shift, both.shift[2:]) and torch.equal(part.cut, both.cut[2:])
    x = torch.randn(4, 1, 16, 32)
    assert torch.equal(part(x[2:]), both(x)[2:])
    assert sliced(None, slice(0, 1)) is None


def test_training_with_d_augment_resumes_exactly_and_refuses_class_balance(sample_dataset, tmp_path):
    def cfg(**kw):
        kw.setdefault("d_augment", "translation,cutout")
        return make_config("tiny", arch=dict(ARCH), size=(64, 32), save_every=1000, device="cpu", **kw)

    full = train_gan(sample_dataset, None, tmp_path / "a", cfg(iters=4))
    assert read_checkpoint(full.checkpoint)["config"]["d_augment"] == "translation,cutout"
    plain = train_gan(sample_dataset, None, tmp_path / "p", cfg(iters=4, d_augment="off"))
    assert plain.history[0]["loss_D_real"] != pytest.approx(full.history[0]["loss_D_real"], rel=1e-6)
    stop = iter(range(100))
    with pytest.raises(Cancelled):
        train_gan(sample_dataset, None, tmp_path / "b", cfg(iters=4), cancel=lambda: next(stop) >= 2)
    resumed = train_gan(sample_dataset, None, tmp_path / "b", cfg(iters=None), resume=True)
    for a, b in zip(full.history[2:], resumed.history, strict=True):
        assert b["loss_D_real"] == pytest.approx(a["loss_D_real"], rel=1e-5)
    with pytest.raises(SegbalanceError, match="class-balance"):
        train_gan(sample_dataset, None, tmp_path / "c", cfg(iters=1, class_balance=True))


def test_train_gan_cli_d_augment_option(sample_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-gan", str(sample_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
              "--d-augment", "zoom"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "zoom" in err[0]
    assert not (tmp_path / "o").exists()
    rc = main(["train-gan", str(sample_dataset), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o"),
               "--size", "64x32", "--iters", "1", "--device", "cpu", "--quiet", "--d-augment", "cutout"])
    assert rc == 0 and read_checkpoint(tmp_path / "o" / "ckpt.pt")["config"]["d_augment"] == "cutout"
