"""The one precision policy (issue #43): "auto" decided by the runtime on faked CPUs and CUDA devices, the
default of every command that trains or renders, and recorded (with why) in each training run's log and row."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from segbalance.core.cli import build_parser
from segbalance.core.errors import SegbalanceError
from segbalance.core.runs import runtime
from segbalance.core.runs.runtime import choose_precision, resolve_amp
from segbalance.core.workspace import Workspace
from segbalance.db import models as m

CPU = torch.device("cpu")
SPR = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})  # Sapphire Rapids
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16"})  # AVX512-BF16, no AMX
CASCADE_LAKE = frozenset({"avx2", "avx512f", "avx512bw", "avx512vl"})  # AVX512, bf16 only emulated
ZEN2 = frozenset({"avx2", "fma"})  # no AVX512: oneDNN has no bf16 kernels


def fake_cpu(monkeypatch, flags: frozenset[str] | None, mkldnn_bf16: bool) -> None:
    monkeypatch.setattr(runtime, "_cpu_features", lambda: (flags, mkldnn_bf16))


@pytest.mark.parametrize("flags, mkldnn, want, why", [
    (SPR, True, "bf16", "avx512_bf16, amx_bf16"),
    (ZEN4, True, "bf16", "avx512_bf16"),
    (CASCADE_LAKE, True, "off", "emulates"),
    (ZEN2, False, "off", "no AVX512"),
    (None, True, "bf16", "flags unreadable"),  # no /proc/cpuinfo: oneDNN's word, as the experiment had it
    (frozenset({"fp", "asimd", "bf16"}), True, "bf16", "Arm BF16"),
])
def test_auto_on_a_faked_cpu_is_bf16_exactly_where_it_is_native(monkeypatch, flags, mkldnn, want, why):
    fake_cpu(monkeypatch, flags, mkldnn)
    p = choose_precision("auto", CPU)
    assert p.amp == want and why in p.reason and p.reason.startswith("auto: ")
    assert resolve_amp("auto", CPU) == want
    assert p.line() == f"precision: {'fp32' if want == 'off' else 'bf16'} ({p.reason})"


@pytest.mark.parametrize("bf16, want", [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_faked_cuda_device(monkeypatch, bf16, want):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU")
    fake_cpu(monkeypatch, ZEN2, False)  # the CPU's answer must not leak into the GPU's
    p = choose_precision("auto", torch.device("cuda", 0))
    assert p.amp == want and "Fake GPU" in p.reason
    if not bf16:
        assert "loss scaling" in p.reason
        with pytest.raises(SegbalanceError, match="bf16 is not supported by this GPU"):
            choose_precision("bf16", torch.device("cuda", 0))
    assert choose_precision("fp16", torch.device("cuda", 0)).amp == "fp16"


def test_explicit_choices_are_kept_or_refused_in_one_line(monkeypatch):
    fake_cpu(monkeypatch, ZEN2, False)
    p = choose_precision("bf16", CPU)  # asked for: honoured even where it is slow
    assert (p.amp, p.requested) == ("bf16", "bf16") and "asked for" in p.reason
    assert choose_precision("off", CPU).name == "fp32"
    with pytest.raises(SegbalanceError, match="needs a CUDA device"):
        choose_precision("fp16", CPU)
    with pytest.raises(SegbalanceError, match="bad --amp 'fp8'"):
        choose_precision("fp8", CPU)


@pytest.mark.parametrize("flags, mkldnn, want", [(SPR, True, "bf16"), (CASCADE_LAKE, True, "off"),
                                                 (ZEN2, False, "off")])
def test_experiment_and_renderer_use_the_runtime_answer(monkeypatch, flags, mkldnn, want):
    from segbalance.core.experiments.protocol import fast_amp, preset
    from segbalance.core.render.pix2pixhd import Renderer
    from segbalance.core.render.pix2pixhd_nets import Pix2PixHDConfig, build_generator

    fake_cpu(monkeypatch, flags, mkldnn)
    assert fast_amp(preset("ci", device="cpu")) == want
    assert fast_amp(preset("ci", device="cpu", amp="off")) == "off"
    arch = Pix2PixHDConfig(label_nc=4, ngf=4, n_downsample_global=1, n_blocks_global=1)
    r = Renderer(build_generator(arch), arch, (16, 16), CPU, "-", amp="auto")
    assert r.precision.amp == want
    assert r.dtype == (torch.bfloat16 if want == "bf16" else None)


COMMANDS = ("train-seg", "train-gan", "evaluate", "render", "generate", "gan-score", "experiment", "demo")


def test_every_command_that_trains_or_renders_defaults_to_auto():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in COMMANDS:
        p = sub.choices[name]
        amp = next((a for a in p._actions if a.dest == "amp"), None)
        assert amp is not None, f"{name} has no --amp"
        assert amp.default == "auto", name
        assert set(amp.choices) == {"auto", "bf16", "fp16", "off"}, name


def test_a_training_run_records_its_precision_and_why(monkeypatch, tmp_path):
    """train-seg and train-gan: one log line and the run's DB row (config.precision) say what auto chose."""
    from segbalance.core.datasets.sample import make_sample_dataset
    from segbalance.core.render.gan_train import make_config, train_gan
    from segbalance.core.seg.train import SegTrainConfig, train_seg

    fake_cpu(monkeypatch, CASCADE_LAKE, True)  # fp32: cheap, and not the old meaning of auto on this CPU
    ds = make_sample_dataset(tmp_path / "ds", n_train=4, n_val=2, size=(96, 48), seed=0)
    ws = tmp_path / "ws"
    res = train_seg(SegTrainConfig(dataset=str(ds), out_dir=str(tmp_path / "seg"), workspace=str(ws),
                                   backbone="resnet18", crop=(48, 96), batch=2, iters=1, workers=0, device="cpu",
                                   stdout_json=False, threads=1, max_val_images=1))
    assert res["status"] == "done"
    assert any(n.startswith("precision: fp32 (auto: CPU emulates bf16") for n in res["notes"])
    gan = train_gan(ds, ws, tmp_path / "gan", make_config(
        "tiny", arch=dict(ngf=4, n_downsample_global=1, n_blocks_global=1, ndf=4, num_D=1), size=(32, 16),
        iters=1, device="cpu", amp="auto"))
    assert gan.precision.startswith("precision: fp32 (auto: CPU emulates bf16")
    with Workspace(ws) as w, w.session() as s:
        runs = {r.kind: r for r in s.scalars(select(m.TrainingRun))}
        assert set(runs) == {"seg", "gan"}
        for r in runs.values():
            assert r.config["amp"] == "auto"  # what was asked for ...
            assert r.config["precision"]["precision"] == "fp32"  # ... and what the runtime chose, and why
            assert "emulates bf16" in r.config["precision"]["reason"]
            lines = s.scalars(select(m.JobLog.text).where(m.JobLog.job_id == r.job_id)).all()
            assert sum(t.startswith("precision: fp32 (auto:") for t in lines) == 1, lines
    assert Path(gan.checkpoint).is_file()


def test_renderer_layout_follows_the_measured_policy(monkeypatch):
    """fp32 renders contiguous (channels-last measured slower in fp32), bf16 keeps channels-last (issue #43)."""
    from segbalance.core.render.pix2pixhd import Renderer
    from segbalance.core.render.pix2pixhd_nets import Pix2PixHDConfig, build_generator

    fake_cpu(monkeypatch, SPR, True)
    arch = Pix2PixHDConfig(label_nc=4, ngf=4, n_downsample_global=1, n_blocks_global=1)
    convs = lambda r: [m.weight for m in r.generator.modules() if isinstance(m, torch.nn.Conv2d)]  # noqa: E731
    lab = torch.randint(0, 4, (16, 16), dtype=torch.uint8).numpy()
    for amp, cl in (("off", False), ("bf16", True), ("auto", True)):
        r = Renderer(build_generator(arch), arch, (16, 16), CPU, "-", amp=amp)
        assert r.channels_last is cl
        want = torch.channels_last if cl else torch.contiguous_format
        assert all(w.is_contiguous(memory_format=want) for w in convs(r) if w.shape[-1] > 1), amp
        assert r.render(lab).shape == (16, 16, 3)
