"""train-gan checkpoints by time as well as by iterations (issue 41, item 3): a stop loses at most about
`save_every_s` of work, however slow an iteration is."""

from __future__ import annotations

from segbalance.core.render.gan_train import make_config, train_gan

ARCH = dict(ngf=8, n_downsample_global=2, n_blocks_global=2, ndf=8, num_D=2)


def _saved_while_training(dataset, out, **kw) -> list[bool]:
    seen: list[bool] = []

    def progress(done: int, _total: int) -> None:
        seen.append((out / "ckpt.pt").exists())  # before this step's own save, if any

    cfg = make_config("tiny", arch=dict(ARCH), size=(64, 32), iters=4, save_every=1000, device="cpu", **kw)
    train_gan(dataset, None, out, cfg, progress=progress)
    return seen


def test_a_slow_run_checkpoints_by_time_not_only_every_n_iterations(sample_dataset, tmp_path):
    assert _saved_while_training(sample_dataset, tmp_path / "timed", save_every_s=1e-6) == [False, True, True, True]
    assert _saved_while_training(sample_dataset, tmp_path / "by_iters", save_every_s=0) == [False] * 4


def test_the_default_cadence_is_a_minute():
    assert make_config("tiny").save_every_s == 60.0
