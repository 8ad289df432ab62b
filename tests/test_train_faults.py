"""Training that fails cleanly, and one runtime for both trainers (issues #14 item 4, #15 training items).

Each test is a case from the issues: the input, then the one-line error / exit code / state it must leave.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from segbalance.core.cli import main as cli_main
from segbalance.db import models as m

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CROP = "48x96"


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> Path:
    """8 train / 2 val procedural street scenes at 96x48 (Cityscapes layout)."""
    from segbalance.core.datasets.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("faults") / "ds", n_train=8, n_val=2, size=(96, 48), seed=0)


def _copy(ds: Path, dst: Path) -> Path:
    shutil.copytree(ds, dst)
    return dst


def _train_files(ds: Path, kind: str) -> list[Path]:
    pattern = "*_leftImg8bit.png" if kind == "image" else "*_gtFine_labelIds.png"
    return sorted((ds / ("leftImg8bit" if kind == "image" else "gtFine") / "train").rglob(pattern))


def _seg_args(ds: Path, tmp: Path, *extra: str, out: str = "run", workers: str = "0") -> list[str]:
    return ["train-seg", str(ds), "--workspace", str(tmp / "ws"), "--out", str(tmp / out), "--backbone", "resnet18",
            "--crop", CROP, "--iters", "2", "--batch", "2", "--workers", workers, "--device", "cpu", "--no-json",
            "--threads", "1", *extra]


def _one_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(err) == 1, err
    return err[0]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _dead_pid() -> int:
    p = subprocess.Popen([PY, "-c", "pass"])
    p.wait()
    return p.pid


# -- one runtime: status words, job rows, cancellation ---------------------------------------------------
def test_status_vocabulary_is_single_sourced():
    from segbalance.core.jobs import job_rows as jobs
    from segbalance.core.runs import records as runs

    assert not hasattr(jobs, "STATUSES")  # one definition: core.runs.records
    assert set(runs.FINISHED) | set(runs.ACTIVE) == set(runs.STATUSES) and "interrupted" in runs.STATUSES
    rec = runs.RunRecord(None, "seg", "x", name="x", config={}, total=1)
    rec.ws, rec.run_id = object(), 1  # a word outside the vocabulary is refused before any DB write
    with pytest.raises(ValueError, match="not a final status"):
        rec.finish("stopped")
    # the trainers' own words: both end in the same vocabulary
    import inspect

    from segbalance.core.render import gan_train
    from segbalance.core.seg import train

    for mod in (gan_train, train):
        src = inspect.getsource(mod)
        assert '"finished"' not in src and '"stopped"' not in src


def test_one_way_to_end_a_run_lifetime_records_each_ending_once(tmp_path, capsys):
    """#42 item 3: train-seg and train-gan open and end their rows through RunRecord.lifetime: as the body set
    them, "cancelled" on Cancelled or Ctrl+C, "failed" with the error's line; a DB error while ending never hides
    the run's own error."""
    from segbalance.core.errors import Cancelled, SegbalanceError
    from segbalance.core.runs.records import RunEnd, RunRecord

    ended: list[tuple] = []

    class Rec(RunRecord):
        def open(self):
            return self

        def finish(self, status, result=None, message=None):
            ended.append((status, result, message))

    def rec():
        r = Rec(None, "seg", tmp_path, name="x", config={}, total=1)
        r.ws, r.run_id = object(), 1
        return r

    with rec().lifetime() as end:
        end.status, end.result = "done", {"miou": 0.5}
    with pytest.raises(Cancelled), rec().lifetime() as end:
        end.message = "cancelled at iteration 3 of 9; checkpoint kept"
        raise Cancelled()
    with pytest.raises(KeyboardInterrupt), rec().lifetime():
        raise KeyboardInterrupt()
    with pytest.raises(SegbalanceError), rec().lifetime():
        raise SegbalanceError("loss became nan at iteration 4")
    with pytest.raises(ZeroDivisionError), rec().lifetime():
        raise ZeroDivisionError("division by zero")
    assert ended == [("done", {"miou": 0.5}, None),
                     ("cancelled", None, "cancelled at iteration 3 of 9; checkpoint kept"),
                     ("cancelled", None, "interrupted"),
                     ("failed", None, "loss became nan at iteration 4"),
                     ("failed", None, "ZeroDivisionError: division by zero")]

    class Broken(Rec):
        def finish(self, status, result=None, message=None):
            raise OSError("database is locked")

    broken = Broken(None, "seg", tmp_path, name="x", config={}, total=1)
    with pytest.raises(SegbalanceError, match="the run's own error"), broken.lifetime(RunEnd()):
        raise SegbalanceError("the run's own error")
    assert "could not record the run's end: database is locked" in capsys.readouterr().err


def test_gan_and_seg_runs_are_jobs_with_the_same_status_words(small_ds, tmp_path, capsys):
    from segbalance.core.jobs.job_rows import list_jobs, request_cancel
    from segbalance.core.render.gan_train import make_config, train_gan
    from segbalance.core.workspace import Workspace

    ws_dir = tmp_path / "ws"
    cfg = make_config("tiny", arch=dict(ngf=8, n_downsample_global=2, n_blocks_global=2, ndf=8, num_D=2),
                      size=(64, 32), iters=2, save_every=1000, log_every=1, device="cpu")
    with pytest.warns(UserWarning):
        train_gan(small_ds, ws_dir, tmp_path / "gan", cfg)
    assert cli_main(_seg_args(small_ds, tmp_path, out="seg")) == 0
    capsys.readouterr()
    assert cli_main(["jobs", "--workspace", str(ws_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(j["kind"], j["status"], j["done"], j["total"]) for j in rows] == [("train-gan", "done", 2, 2),
                                                                              ("train-seg", "done", 2, 2)]
    # cancellation through the job row (what `segbalance jobs N --cancel` and the app do) stops a GAN run too
    from segbalance.core.errors import Cancelled

    cfg.iters = 50
    with Workspace(ws_dir) as ws:
        def cancel_from_outside(done: int, _losses: dict) -> None:
            job = [j for j in list_jobs(ws) if j["status"] == "running"][0]
            request_cancel(ws, job["id"])
            time.sleep(0.25)  # the job row is read at most 5 times a second

        with pytest.raises(Cancelled), pytest.warns(UserWarning):
            train_gan(small_ds, ws, tmp_path / "gan2", cfg, log=cancel_from_outside)
        last = list_jobs(ws)[-1]
        assert (last["kind"], last["status"]) == ("train-gan", "cancelled")
        with ws.session() as s:
            assert s.scalars(select(m.TrainingRun.status).order_by(m.TrainingRun.id)).all() == [
                "done", "done", "cancelled"]


# -- #15 item 2: a crop far larger than the images, a step that cannot fit ------------------------------
def test_huge_crop_is_refused_before_allocating(small_ds, tmp_path, capsys):
    rc = cli_main(_seg_args(small_ds, tmp_path, "--crop", "4096x8192", "--batch", "2"))
    line = _one_line(capsys)
    assert rc == 2 and "far larger than the images" in line and "4096x8192" in line
    assert not (tmp_path / "run").exists()  # the run never started: nothing left behind


def test_step_that_cannot_fit_in_memory_is_refused(small_ds, tmp_path, capsys, monkeypatch):
    from segbalance.core.seg import train

    monkeypatch.setattr(train, "_available_memory", lambda dev: 64 * 2**20)  # a 64 MiB machine
    # fp32 activations (auto may pick bf16 here, which halves them)
    rc = cli_main(_seg_args(small_ds, tmp_path, "--batch", "16", "--amp", "off"))
    line = _one_line(capsys)
    assert rc == 2 and "GiB of activations" in line and "smaller --crop or --batch" in line


def test_step_memory_estimate_grows_with_the_crop():
    from segbalance.core.seg.model import PSPNetConfig
    from segbalance.core.seg.train import step_memory

    cfg = PSPNetConfig(num_classes=19, backbone="resnet18")
    small, big = step_memory(cfg, (64, 128), 2, "off"), step_memory(cfg, (128, 256), 2, "off")
    assert 3.5 < big / small < 4.5  # activations scale with pixels
    assert step_memory(cfg, (4096, 8192), 2, "off") > 24 * 2**30  # the OOM case


# -- #15 item 3: a data error with --workers 2 exits 2 promptly ---------------------------------------
def _corrupt_image(ds: Path) -> str:
    p = _train_files(ds, "image")[4]
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = b"\x00" * 64  # header and IEND intact: only decoding finds it
    p.write_bytes(bytes(data))
    return p.name


def _rgb_label(ds: Path) -> str:
    import cv2

    p = _train_files(ds, "label")[4]
    lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(p), np.dstack([lab, lab, lab]))
    return p.name


def _label_300(ds: Path) -> str:
    import cv2

    p = _train_files(ds, "label")[4]
    lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.uint16)
    lab[0, 0] = 300
    cv2.imwrite(str(p), lab)
    return p.name


@pytest.mark.parametrize("spoil", [_corrupt_image, _rgb_label, _label_300])
def test_data_error_with_two_workers_exits_2_promptly(small_ds, tmp_path, spoil):
    ds = _copy(small_ds, tmp_path / "ds")
    name = spoil(ds)
    cmd = [PY, "-m", "segbalance.core.cli", *_seg_args(ds, tmp_path, "--iters", "40", workers="2")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("train-seg hung after a data error")
    # libpng itself may print "libpng error: ..." on stderr before OpenCV gives up; ours is the one line
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("libpng ")]
    assert proc.returncode == 2 and len(lines) == 1 and name in lines[0], err


# -- #15 item 13: --workers 0 keeps the file name --------------------------------------------------------
def test_decode_error_in_process_names_the_file(small_ds, tmp_path, capsys):
    ds = _copy(small_ds, tmp_path / "ds")
    name = _corrupt_image(ds)
    rc = cli_main(_seg_args(ds, tmp_path, "--iters", "40"))
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip() and not ln.startswith("libpng ")]
    assert rc == 2 and len(err) == 1 and name in err[0] and "PNG" in err[0], err


# -- #15 item 5: one run per folder -------------------------------------------------------------------
def test_second_run_into_the_same_folder_is_refused(small_ds, tmp_path, capsys):
    cmd = [PY, "-m", "segbalance.core.cli", "train-seg", str(small_ds), "--workspace", str(tmp_path / "ws"),
           "--out", str(tmp_path / "run"), "--backbone", "resnet18", "--crop", CROP, "--iters", "500", "--batch",
           "2", "--workers", "0", "--log-interval", "1", "--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        for line in proc.stdout:
            if json.loads(line).get("event") == "train":
                break
        config_before = (tmp_path / "run" / "config.json").read_text()
        rc = cli_main(_seg_args(small_ds, tmp_path, "--lr", "0.5"))
        line = _one_line(capsys)
        assert rc == 2 and "in use by another run" in line and f"pid {proc.pid}" in line
        assert (tmp_path / "run" / "config.json").read_text() == config_before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    from segbalance.core.workspace import Workspace

    with Workspace(tmp_path / "ws") as ws, ws.session() as s:
        assert s.scalars(select(m.TrainingRun.status)).all() == ["cancelled"]


# -- #15 item 6: label ids stats rejects are rejected by train-seg -------------------------------------------
def test_label_id_200_is_refused_as_stats_refuses_it(small_ds, tmp_path, capsys):
    import cv2

    ds = _copy(small_ds, tmp_path / "ds")
    p = _train_files(ds, "label")[-1]
    lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    lab[:4, :4] = 200
    cv2.imwrite(str(p), lab)
    assert cli_main(["stats", str(ds), "--workspace", str(tmp_path / "ws0")]) == 2
    stats_line = capsys.readouterr().err.strip().splitlines()[-1]  # after its progress bar
    rc = cli_main(_seg_args(ds, tmp_path))
    line = _one_line(capsys)
    assert rc == 2 and "label ids [200]" in line and p.name in line
    assert "label ids [200]" in stats_line


# -- #15 item 10: gone processes read "interrupted"; their temp files are swept -----------------------
def test_kill_9_during_train_seg_reads_interrupted_and_temp_files_are_swept(small_ds, tmp_path, capsys):
    from segbalance.core.runs.queries import list_runs
    from segbalance.core.workspace import Workspace

    cmd = [PY, "-m", "segbalance.core.cli", *_seg_args(small_ds, tmp_path, "--iters", "500", "--log-interval", "1")]
    cmd.remove("--no-json")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        for line in proc.stdout:
            if json.loads(line).get("event") == "train":
                break
    finally:
        proc.kill()
        proc.communicate()
    capsys.readouterr()
    assert cli_main(["jobs", "--workspace", str(tmp_path / "ws"), "--json"]) == 0
    assert [j["status"] for j in json.loads(capsys.readouterr().out)] == ["interrupted"]
    with Workspace(tmp_path / "ws") as ws:
        assert [r.status for r in list_runs(ws)] == ["interrupted"]
    # what a writer killed mid-checkpoint leaves, and a live writer's file that must stay
    dead = _dead_pid()
    stale = tmp_path / "run" / f".checkpoint.pt.{dead}.k3j2h1g0.tmp"
    live = tmp_path / "run" / f".checkpoint.pt.{os.getppid()}.a1b2c3d4.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"someone else's")
    bank = tmp_path / "ws" / "layers" / "abc-train-0"  # kill -9 during plan leaves these
    bank.mkdir(parents=True)
    (bank / f"masks.bin.{dead}.tmp").write_bytes(b"x")
    (bank / "masks.bin").write_bytes(b"keep")
    assert cli_main(["jobs", "--workspace", str(tmp_path / "ws")]) == 0  # the next command on the workspace
    assert not (bank / f"masks.bin.{dead}.tmp").exists() and (bank / "masks.bin").exists()
    assert stale.exists()  # not in the workspace: the next run in that folder sweeps it
    assert cli_main(_seg_args(small_ds, tmp_path)) == 0  # killed before its first checkpoint: a fresh run
    assert not stale.exists() and live.exists()


def test_running_job_whose_process_is_gone_reads_interrupted(tmp_path, capsys):
    from segbalance.core.workspace import Workspace
    from segbalance.db.base import utcnow

    with Workspace(tmp_path / "ws") as ws, ws.session() as s, s.begin():
        s.add(m.Job(kind="generate", status="running", pid=_dead_pid(), done=14, total=40, started_at=utcnow()))
        s.add(m.Job(kind="generate", status="running", pid=os.getpid(), done=1, total=40, started_at=utcnow()))
        # a job resumed by this process long after it was first started: its heartbeat says who writes it now
        from datetime import timedelta

        s.add(m.Job(kind="generate", status="running", pid=os.getpid(), done=2, total=40,
                    started_at=utcnow() - timedelta(days=30), heartbeat_at=utcnow()))
    assert cli_main(["jobs", "--workspace", str(tmp_path / "ws"), "--json"]) == 0
    assert [j["status"] for j in json.loads(capsys.readouterr().out)] == ["interrupted", "running", "running"]


def test_reused_pid_does_not_keep_a_job_alive():
    from datetime import timedelta

    from segbalance.core.processes import process_alive
    from segbalance.db.base import utcnow

    began = _started_before_this_process()
    assert process_alive(os.getpid(), utcnow())
    # a row written a minute before this process began cannot be this process's: the pid was reused
    assert not process_alive(os.getpid(), began - timedelta(minutes=1))


def _started_before_this_process():
    from segbalance.core.processes import process_start

    began = process_start(os.getpid())
    if began is None:
        pytest.skip("no /proc on this system")
    return began


# -- #15 item 11: wrong-shape checkpoints and unsupported devices are one line --------------------------
@pytest.fixture(scope="module")
def bad_ckpt(small_ds, tmp_path_factory) -> Path:
    """A finished 1-iteration run whose checkpoint claims 5 classes but holds 19-class weights."""
    from segbalance.core.seg.evaluate import read_checkpoint
    from segbalance.core.seg.train import SegTrainConfig, train_seg

    base = tmp_path_factory.mktemp("badck")
    cfg = SegTrainConfig(dataset=str(small_ds), out_dir=str(base / "run"), workspace=str(base / "ws"),
                         backbone="resnet18", crop=(48, 96), batch=2, iters=1, workers=0, amp="off", device="cpu",
                         stdout_json=False, threads=1, ckpt_interval=1)
    train_seg(cfg)
    ck = read_checkpoint(base / "run")
    ck["model_config"]["num_classes"] = 5
    torch.save(ck, base / "run" / "checkpoint.pt")
    return base / "run"


def test_wrong_shape_checkpoint_in_evaluate_is_one_line(bad_ckpt, small_ds, capsys):
    rc = cli_main(["evaluate", str(bad_ckpt), "--dataset", str(small_ds), "--device", "cpu"])
    line = _one_line(capsys)
    assert rc == 2 and "checkpoint.pt" in line and "shape mismatch" in line and "5 classes" in line


def test_wrong_shape_checkpoint_for_the_quality_gate_is_one_line(bad_ckpt, tmp_path):
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.jobs.generate import load_quality_scorer
    from segbalance.core.workspace import Workspace

    with Workspace(tmp_path / "ws") as ws, pytest.raises(SegbalanceError) as err:
        load_quality_scorer(ws, "cpu", str(bad_ckpt))
    assert "checkpoint.pt" in str(err.value) and "shape mismatch" in str(err.value)


def test_wrong_shape_checkpoint_in_resume_is_one_line(bad_ckpt, small_ds, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(bad_ckpt, run)
    (run / "result.json").unlink()
    rc = cli_main(_seg_args(small_ds, tmp_path, "--resume", "--iters", "3"))
    line = _one_line(capsys)
    assert rc == 2 and "checkpoint.pt" in line and "shape mismatch" in line


@pytest.mark.parametrize("device", ["mps", "xpu", "meta"])
def test_unsupported_device_is_one_line_in_every_command(device, small_ds, tmp_path, capsys):
    ws, out = str(tmp_path / "ws"), str(tmp_path / "o")
    commands = [
        _seg_args(small_ds, tmp_path, "--device", device),
        ["train-gan", str(small_ds), "--workspace", ws, "--out", out, "--size", "64x32", "--iters", "1", "--quiet",
         "--device", device],
        ["evaluate", str(tmp_path), "--dataset", str(small_ds), "--device", device],
        ["generate", "--workspace", ws, "--dataset", str(small_ds), "--plan", str(tmp_path / "p.json"),
         "--renderer", "copypaste", "--device", device],
        ["render", str(small_ds), "--checkpoint", str(tmp_path / "g.pth"), "--out", out, "--device", device],
    ]
    for args in commands:
        rc = cli_main(args)
        line = _one_line(capsys)
        assert rc == 2 and f"unsupported --device {device!r}" in line, (args, line)
    assert not Path(out).exists()


# -- minor: a run that never started leaves nothing --------------------------------------------------
def test_failed_runs_leave_no_folder_behind(small_ds, tmp_path, capsys):
    rc = cli_main(["train-gan", str(small_ds), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "g"),
                   "--size", "60x30", "--iters", "1", "--quiet"])
    assert rc == 2 and "multiple of" in _one_line(capsys)
    assert not (tmp_path / "g").exists()
    rc = cli_main(_seg_args(small_ds, tmp_path, "--val-split", "nope"))
    assert rc == 2 and "nope" in _one_line(capsys)
    assert not (tmp_path / "run").exists()
    # an existing folder keeps what it had, and gets nothing new
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    rc = cli_main(_seg_args(small_ds, tmp_path, "--val-split", "nope", out="mine"))
    assert rc == 2
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_kill_9_of_train_seg_leaves_no_data_worker_behind(small_ds, tmp_path):
    """Data workers are forkserver children: they must watch the training process, not their parent."""
    import uuid

    from tests.test_faults import _tagged

    tag = uuid.uuid4().hex
    cmd = [PY, "-m", "segbalance.core.cli", *_seg_args(small_ds, tmp_path, "--iters", "500", "--log-interval", "1",
                                                         workers="2")]
    cmd.remove("--no-json")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**_env(), "SEGBALANCE_FAULT_TAG": tag})
    survivors: list[int] = []
    try:
        for line in proc.stdout:
            if json.loads(line).get("event") == "train":
                break
        assert len(_tagged(tag)) >= 3  # the trainer, the forkserver and its workers are up
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 15
        while _tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = _tagged(tag)
        assert survivors == [], f"processes left after kill -9: {survivors}"
    finally:
        proc.kill()
        proc.communicate()
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
