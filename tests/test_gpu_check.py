"""The GPU check script: its CPU dry run passes end to end, and it fails loudly (exit 1, exit 2) when it must."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_passes_every_step():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env,
                       timeout=240, cwd=REPO)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "GPU check passed" in r.stdout
    for step in ("train-gan bf16", "train-gan exact resume", "train-gan fp16 + GradScaler", "render eager",
                 "train-seg under AMP", "evaluate, sliding window", "torchrun DDP start", "experiment --estimate"):
        assert f"[ok] {step}:" in r.stdout, step
    assert "max |dG| = 0" in r.stdout, "resume is bit-exact on the CPU"
    assert "backend gloo" in r.stdout


def test_missing_dependency_prints_the_recipe(monkeypatch, capsys):
    mod = _load()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sqlalchemy" else real(name, *a))
    assert mod.main(["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "missing SQLAlchemy" in err and "pip download" in err and "--no-index --find-links wheels/" in err
    assert "pip install --no-deps -e ." in err


def test_a_failing_step_fails_the_check(monkeypatch, tmp_path, capsys):
    mod = _load()
    for name in ("sample_data", "gan_bf16", "gan_resume", "gan_fp16", "render_eager", "seg_train", "seg_evaluate",
                 "ddp", "estimate"):
        monkeypatch.setattr(mod.GpuCheck, name, lambda self: "fine")

    def boom(self):
        raise RuntimeError("segbalance train-seg ... exited with 2")

    monkeypatch.setattr(mod.GpuCheck, "seg_train", boom)
    assert mod.main(["--dry-run", "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "[FAIL] train-seg under AMP: FAILED: RuntimeError" in out and "GPU check FAILED: train-seg" in err
    assert "Traceback" in err


def test_no_cuda_is_a_failure_not_a_skip(monkeypatch, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        return  # this machine has a GPU: the real check is `make gpu-check`
    mod = _load()
    assert mod.main(["--device", "cuda:0", "--out", str(tmp_path)]) == 1
    assert "sees no CUDA device" in capsys.readouterr().out
