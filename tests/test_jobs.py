"""Generation jobs: pairs + rows, resume after SIGKILL, cancel, review, export, bad input and faults."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.stats import dataset_stats, pixel_counts
from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.io import read_label_png, read_png
from segbalance.core.jobs.generate import run_generate
from segbalance.core.jobs.job_rows import job_info, request_cancel
from segbalance.core.jobs.pairs import list_pairs
from segbalance.core.planning.balance import plan_balance
from segbalance.core.recombine import build_layer_bank
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from tests.recombine_helpers import make_dataset

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def _plan(ds_root: Path, ws_path: Path, out: Path, budget: int = 6, seed: int = 0) -> Path:
    ds = open_dataset(ds_root)
    with Workspace(ws_path) as ws:
        bank = build_layer_bank(ds, ws, workers=1)
        stats = dataset_stats(ds, "train", workspace=ws, workers=1)
        plan = plan_balance(stats, bank, "wall=0.06,fence=0.05", budget, seed=seed)
    plan.dataset = str(ds.root)
    plan.save(out)
    assert len(plan.recipes) == budget, "the synthetic data leaves room for the whole budget"
    return out


@pytest.fixture()
def setup(tmp_path, sample_dataset):
    """The built-in sample dataset (read only here), a fresh workspace and a 6-recipe plan."""
    root = sample_dataset
    ws = tmp_path / "ws"
    plan = _plan(root, ws, tmp_path / "plan.json")
    return root, ws, plan


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _check_rows(ws_path: Path, job_id: int, n: int) -> list[m.GeneratedPair]:
    with Workspace(ws_path) as ws, ws.session() as s:
        rows = list(s.scalars(select(m.GeneratedPair).where(m.GeneratedPair.job_id == job_id)))
        assert sorted(r.recipe_index for r in rows) == list(range(n))
        for r in rows:
            for rel, sha in ((r.image_path, r.image_sha256), (r.label_path, r.label_sha256),
                             (r.instance_path, r.instance_sha256)):
                p = ws.abs(rel)
                assert p.exists() and _sha(p) == sha
            lab = read_label_png(ws.abs(r.label_path))
            img = read_png(ws.abs(r.image_path), color=True)
            assert img.shape == (*lab.shape, 3)
            assert sum(r.pixel_counts.values()) == lab.size
            assert r.status == "pending" and r.renderer and r.recipe["strategy"] == r.strategy
            assert r.source_samples and r.source_samples[0] == r.recipe["base"]
        files = sorted(p.name for p in (ws_path / "pairs" / str(job_id)).iterdir())
        assert len(files) == 3 * n, "no orphans or temporaries"
        return rows


def test_copypaste_job_produces_one_row_per_recipe(setup):
    root, ws, plan = setup
    seen = []
    res = run_generate(ws, root, plan, "copypaste", progress=lambda d, t: seen.append((d, t)))
    assert (res.new, res.done, res.total, res.failed) == (6, 6, 6, [])
    assert seen[-1] == (6, 6)
    rows = _check_rows(ws, res.job_id, 6)
    with Workspace(ws) as w:
        info = job_info(w, res.job_id)
    assert info["status"] == "done" and info["done"] == 6 and info["total"] == 6
    assert any("generating 6 pair" in line for line in info["log"])
    # the copy-paste image keeps the base photo where nothing was pasted, and differs where layers went
    r = rows[0]
    base = open_dataset(root).sample(r.recipe["base"])
    with Workspace(ws) as w:
        img = read_png(w.abs(r.image_path), color=True)
    orig = read_png(base.image_path, color=True)
    assert (img != orig).any() and (img == orig).mean() > 0.5
    # running the same command again resumes the same job: nothing new, no duplicates
    again = run_generate(ws, root, plan, "copypaste")
    assert again.job_id == res.job_id and again.resumed and again.new == 0
    _check_rows(ws, res.job_id, 6)
    # determinism: a second workspace renders the same bytes
    other = run_generate(ws.parent / "ws2", root, plan, "copypaste")
    with Workspace(ws.parent / "ws2") as w2, w2.session() as s:
        shas = {p.recipe_index: p.image_sha256 for p in s.scalars(select(m.GeneratedPair))}
    assert shas == {r.recipe_index: r.image_sha256 for r in rows} and other.new == 6


def _fake_pix2pixhd(monkeypatch, label_nc: int = 35, calls: list | None = None):
    """A stand-in generator module with the interface segbalance.core.render.pix2pixhd exposes."""
    mod = types.ModuleType("segbalance.core.render.pix2pixhd")

    class Model:
        checkpoint_sha256 = "ab" * 32

        def __init__(self) -> None:
            self.label_nc = label_nc

        def render_batch(self, labels, instances):
            if calls is not None:
                calls.append(len(labels))
            return [np.stack([lab * 7, lab * 3, (inst % 251).astype(np.uint8)], -1).astype(np.uint8)
                    for lab, inst in zip(labels, instances, strict=True)]

    mod.load_renderer = lambda checkpoint, device="auto", **kw: Model()
    import segbalance.core.render

    monkeypatch.setitem(sys.modules, "segbalance.core.render.pix2pixhd", mod)
    monkeypatch.setattr(segbalance.core.render, "pix2pixhd", mod, raising=False)  # the real one may be imported already


def test_generator_renderer_job(setup, monkeypatch, tmp_path):
    root, ws, plan = setup
    calls: list[int] = []
    _fake_pix2pixhd(monkeypatch, calls=calls)
    ckpt = tmp_path / "g.pt"
    ckpt.write_bytes(b"x")
    res = run_generate(ws, root, plan, "pix2pixhd", checkpoint=str(ckpt), batch_size=4, seed=5)
    assert res.new == 6 and calls == [4, 2]
    rows = _check_rows(ws, res.job_id, 6)
    assert all(r.renderer == "pix2pixhd" and r.checkpoint_sha256 == "ab" * 32 and r.seed == 5 for r in rows)


def test_generator_with_too_small_label_nc_is_refused(setup, monkeypatch, tmp_path, capsys):
    root, ws, plan = setup
    _fake_pix2pixhd(monkeypatch, label_nc=20)
    ckpt = tmp_path / "g.pt"
    ckpt.write_bytes(b"x")
    rc = main(["generate", "--workspace", str(ws), "--dataset", str(root), "--plan", str(plan),
               "--renderer", "pix2pixhd", "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and "label_nc 20" in err
    with Workspace(ws) as w, w.session() as s:
        assert s.scalar(select(m.Job)) is None, "nothing started"


def test_sigkill_then_resume_gives_exactly_the_plan(setup):
    root, ws, plan = setup
    env = {**os.environ, "SEGBALANCE_JOB_DELAY": "0.3"}
    proc = subprocess.Popen([PY, "-m", "segbalance.core.cli", "generate", "--workspace", str(ws), "--dataset",
                             str(root), "--plan", str(plan), "--renderer", "copypaste"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 40
        while time.time() < deadline:
            with Workspace(ws) as w, w.session() as s:
                n = len(list(s.scalars(select(m.GeneratedPair.id))))
            if n >= 2:
                break
            time.sleep(0.1)
        assert n >= 2, "the job made progress before the kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Workspace(ws) as w, w.session() as s:
        job = s.scalar(select(m.Job))
        assert job.status == "running" and job.done < 6
    res = run_generate(ws, root, plan, "copypaste")
    assert res.resumed and res.done == 6 and 0 < res.new < 6
    _check_rows(ws, res.job_id, 6)


def test_a_finished_job_run_again_is_left_as_it_was(setup):
    """The experiment re-runs every generate on resume: a finished job keeps its finish time and log."""
    root, ws, plan = setup
    res = run_generate(ws, root, plan, "copypaste")
    with Workspace(ws) as w, w.session() as s:
        before = s.get(m.Job, res.job_id)
        finished, n_log = before.finished_at, len(job_info(w, res.job_id)["log"])
    again = run_generate(ws, root, plan, "copypaste")
    assert (again.job_id, again.resumed, again.done, again.new) == (res.job_id, True, 6, 0)
    with Workspace(ws) as w, w.session() as s:
        job = s.get(m.Job, res.job_id)
        assert (job.status, job.finished_at) == ("done", finished)
        assert len(job_info(w, res.job_id)["log"]) == n_log
    _check_rows(ws, res.job_id, 6)


def test_orphans_removed_and_lost_files_redone(setup):
    root, ws, plan = setup
    res = run_generate(ws, root, plan, "copypaste")
    d = ws / "pairs" / str(res.job_id)
    (d / "stray_leftImg8bit.png").write_bytes(b"junk")
    (d / ".job1_000001_000019_leftImg8bit.png.abc.tmp").write_bytes(b"half")
    lost = sorted(d.glob("*_000002_000019_leftImg8bit.png"))[0]
    lost.unlink()
    again = run_generate(ws, root, plan, "copypaste")
    assert again.new == 1 and again.done == 6
    _check_rows(ws, res.job_id, 6)
    with Workspace(ws) as w:
        log = job_info(w, res.job_id)["log"]
    assert any("orphan" in line for line in log) and any("marked failed" in line for line in log)


def test_cancel_stops_within_a_second_and_resumes(setup, monkeypatch):
    root, ws, plan = setup
    monkeypatch.setenv("SEGBALANCE_JOB_DELAY", "0.2")
    stop = threading.Event()
    t_stop: list[float] = []
    out: dict = {}

    def worker():
        try:
            run_generate(ws, root, plan, "copypaste", cancel=stop.is_set,
                         progress=lambda d, t: (d >= 2 and not stop.is_set() and (stop.set(),
                                                                                  t_stop.append(time.monotonic()))))
        except Cancelled:
            out["cancelled"] = time.monotonic()

    th = threading.Thread(target=worker)
    th.start()
    th.join(30)
    assert "cancelled" in out and out["cancelled"] - t_stop[0] < 1.0
    with Workspace(ws) as w:
        jobs = w.session().scalars(select(m.Job)).all()
        assert jobs[0].status == "cancelled"
        n = len(list_pairs(w))
    assert 2 <= n < 6
    monkeypatch.setenv("SEGBALANCE_JOB_DELAY", "0")
    res = run_generate(ws, root, plan, "copypaste")
    assert res.done == 6 and res.new == 6 - n
    _check_rows(ws, res.job_id, 6)


def test_cancel_requested_from_another_process(setup, monkeypatch):
    root, ws, plan = setup
    monkeypatch.setenv("SEGBALANCE_JOB_DELAY", "0.2")

    asked = []

    def progress(done, total):
        if done >= 1 and not asked:  # rows are committed in batches: the count may skip 1
            asked.append(done)
            with Workspace(ws) as w:  # what a GUI or second CLI does
                job_id = w.session().scalar(select(m.Job.id))
                request_cancel(w, job_id)

    with pytest.raises(Cancelled):
        run_generate(ws, root, plan, "copypaste", progress=progress)
    with Workspace(ws) as w:
        assert w.session().scalar(select(m.Job.status)) == "cancelled"


def test_disk_full_removes_partial_pair_and_job_resumes(setup, monkeypatch, capsys):
    root, ws, plan = setup
    import segbalance.core.io

    real = segbalance.core.io.atomic_write_bytes
    count = {"n": 0}

    def flaky(path, data, **kw):
        count["n"] += 1
        if count["n"] == 5:  # second file of the second pair
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data, **kw)

    monkeypatch.setattr(segbalance.core.io, "atomic_write_bytes", flaky)
    rc = main(["generate", "--workspace", str(ws), "--dataset", str(root), "--plan", str(plan),
               "--renderer", "copypaste"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and "disk full" in err
    with Workspace(ws) as w, w.session() as s:
        rows = list(s.scalars(select(m.GeneratedPair)))
        on_disk = sorted(str(p.relative_to(ws)) for p in (ws / "pairs").rglob("*") if p.is_file())
        recorded = sorted(p for r in rows for p in (r.image_path, r.label_path, r.instance_path))
        assert on_disk == recorded, "no partial pair, no file without its row"
        assert len(rows) < 6 and s.scalar(select(m.Job.status)) == "failed"
    monkeypatch.setattr(segbalance.core.io, "atomic_write_bytes", real)
    assert main(["generate", "--workspace", str(ws), "--dataset", str(root), "--plan", str(plan),
                 "--renderer", "copypaste"]) == 0
    _check_rows(ws, 1, 6)


def test_rows_are_committed_only_after_their_files_are_flushed(setup, monkeypatch, capsys):
    """Pair files are written without a per-file fsync; one syncfs per batch must precede the batch's rows,
    and a flush that fails leaves neither rows nor files, with a one-line error and exit code 2."""
    root, ws, plan = setup
    import segbalance.core.io
    import segbalance.core.jobs.pair_writer as gen

    real_sync, real_db_call = segbalance.core.io.sync_filesystem, gen._db_call
    flushed: set[str] = set()

    def sync(path, files=()):
        real_sync(path, files)
        flushed.update(str(p.relative_to(ws)) for p in (ws / "pairs").rglob("*.png"))

    def db_call(fn):  # after each transaction of generate's, every committed row's files were flushed before it
        out = real_db_call(fn)
        with sqlite3.connect(ws / "segbalance.db") as con:
            rows = con.execute("SELECT image_path, label_path, instance_path FROM generated_pair").fetchall()
        assert {p for r in rows for p in r} <= flushed, "a row was committed before its files were flushed"
        return out

    monkeypatch.setattr(segbalance.core.io, "sync_filesystem", sync)
    monkeypatch.setattr(gen, "_db_call", db_call)
    res = run_generate(ws, root, plan, "copypaste")
    assert res.done == 6 and flushed
    _check_rows(ws, res.job_id, 6)

    def broken(path, files=()):
        raise OSError(errno.EIO, "Input/output error", str(path))

    ws2 = ws.parent / "ws2"
    monkeypatch.setattr(segbalance.core.io, "sync_filesystem", broken)
    rc = main(["generate", "--workspace", str(ws2), "--dataset", str(root), "--plan", str(plan),
               "--renderer", "copypaste"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "cannot flush pairs to disk" in err[-1] and "Traceback" not in "\n".join(err)
    with Workspace(ws2) as w, w.session() as s:
        assert list(s.scalars(select(m.GeneratedPair))) == []
        assert [p for p in (ws2 / "pairs").rglob("*") if p.is_file()] == []


def test_sync_filesystem_falls_back_to_one_fsync_per_file_without_syncfs(tmp_path, monkeypatch):
    """Where libc has no syncfs (macOS, Windows) the batch's files are fsynced one by one, none skipped."""
    import segbalance.core.io as sio

    files = [tmp_path / f"f{k}.png" for k in range(3)]
    for f in files:
        sio.atomic_write_bytes(f, b"x" * 10, durable=False)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(sio, "_syncfs", False)
    monkeypatch.setattr(sio.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    sio.sync_filesystem(tmp_path, files)
    assert len(synced) == 3


def test_bad_inputs(setup, tmp_path, capsys):
    root, ws, plan = setup
    other = make_dataset(tmp_path / "other", n=3, seed=4)
    base = ["generate", "--workspace", str(ws), "--plan", str(plan), "--renderer", "copypaste"]
    cases = [
        (base + ["--dataset", str(other)], "another dataset"),
        (base + ["--dataset", str(root), "--min-quality", "0.5"], "no segmentation model yet"),
        (["generate", "--workspace", str(ws), "--plan", str(plan), "--dataset", str(root), "--renderer",
          "pix2pixhd"], "--checkpoint"),
        (["review", "--workspace", str(ws), "--accept", "999"], "no pair with id 999"),
        (["pairs", "--workspace", str(ws), "--status", "great"], "unknown status"),
    ]
    for argv, needle in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert needle in err.strip().splitlines()[-1], err


def test_review_pairs_and_export(setup, tmp_path, capsys):
    root, ws, plan = setup
    res = run_generate(ws, root, plan, "copypaste")
    capsys.readouterr()
    assert main(["pairs", "--workspace", str(ws), "--json"]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert len(pairs) == 6 and {p["status"] for p in pairs} == {"pending"}
    ids = [p["id"] for p in pairs]
    assert main(["review", "--workspace", str(ws), "--accept", str(ids[0]), str(ids[1])]) == 0
    assert main(["review", "--workspace", str(ws), "--reject", str(ids[2])]) == 0
    capsys.readouterr()
    assert main(["pairs", "--workspace", str(ws), "--status", "accepted", "--json"]) == 0
    assert [p["id"] for p in json.loads(capsys.readouterr().out)] == ids[:2]

    out = tmp_path / "export"
    assert main(["export", "--workspace", str(ws), "--dataset", str(root), "--out", str(out),
                 "--include", "accepted"]) == 0
    exp = open_dataset(out)
    gen = [s for s in exp.samples("train") if s.id.startswith(f"job{res.job_id}_")]
    assert len(gen) == 2 and all(s.instance_path is not None for s in gen)
    orig = dataset_stats(open_dataset(root), "train", workers=1)
    added = sum(pixel_counts(read_label_png(ws / p["label"])) for p in pairs[:2])
    st = dataset_stats(exp, "train", workers=1)
    assert np.array_equal(st.pixels, orig.pixels + added)
    lines = (out / "train_list.txt").read_text().split("\n")
    lines = [ln for ln in lines if ln]
    assert len(lines) == len(exp.samples("train"))
    for ln in lines:
        img, lab = ln.split(" ")
        assert (out / img).exists() and (out / lab).exists() and lab.endswith("_gtFine_labelTrainIds.png")
    man = json.loads((out / "manifest.json").read_text())
    assert man["generated"] == 2 and man["pairs"][0]["source_samples"] and man["dataset"]["fingerprint"]
    # default include = pending + accepted: the rejected pair stays out
    out2 = tmp_path / "export2"
    assert main(["export", "--workspace", str(ws), "--dataset", str(root), "--out", str(out2)]) == 0
    assert len([s for s in open_dataset(out2).samples("train") if s.id.startswith("job")]) == 5


def test_locked_database_gives_a_clear_error(setup, monkeypatch):
    import sqlite3

    import segbalance.db.engine

    root, ws, plan = setup
    monkeypatch.setattr(segbalance.db.engine, "BUSY_TIMEOUT_MS", 300)
    con = sqlite3.connect(ws / "segbalance.db", timeout=0.1)
    con.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SegbalanceError, match="locked"):
            run_generate(ws, root, plan, "copypaste")
    finally:
        con.rollback()
        con.close()


def test_jobs_command_follows_and_cancels(setup, capsys, monkeypatch):
    root, ws, plan = setup
    monkeypatch.setenv("SEGBALANCE_JOB_DELAY", "0.2")

    asked = []

    def progress(done, total):
        if done >= 1 and not asked:  # a second CLI asks the running job to stop (rows land in batches)
            asked.append(done)
            assert main(["jobs", "--workspace", str(ws), "1", "--cancel"]) == 0

    with pytest.raises(Cancelled):
        run_generate(ws, root, plan, "copypaste", progress=progress)
    capsys.readouterr()
    assert main(["jobs", "--workspace", str(ws), "--json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert [(j["id"], j["kind"], j["status"]) for j in jobs] == [(1, "generate", "cancelled")]
    assert main(["jobs", "--workspace", str(ws), "1"]) == 0
    out = capsys.readouterr().out
    assert "job #1 generate: cancelled" in out and "cancelled after" in out


@pytest.mark.parametrize("blend", ["poisson", "none"])
def test_copypaste_blends(setup, blend):
    root, ws, plan = setup
    res = run_generate(ws, root, plan, "copypaste", blend=blend)
    rows = _check_rows(ws, res.job_id, 6)
    with Workspace(ws) as w:
        imgs = [read_png(w.abs(r.image_path), color=True) for r in rows]
    assert all(im.dtype == np.uint8 and im.std() > 5 for im in imgs)


def test_quality_gate_marks_low_scores_rejected(setup, monkeypatch, tmp_path):
    """The gate with a stand-in scorer (same interface as core.seg.quality) and a finished seg run in the DB."""
    root, ws, plan = setup
    seen: dict = {}

    class Scorer:
        def score_batch(self, images, labels):
            # a deterministic stand-in: alternate high and low by the label's first pixel rows
            return [0.9 if int(lab[:4].sum()) % 2 == 0 else 0.1 for lab in labels]

    quality = types.ModuleType("segbalance.core.seg.quality")

    def load_scorer(ckpt, device="auto", **kw):
        seen["ckpt"] = ckpt
        return Scorer()

    quality.load_scorer = load_scorer
    seg = types.ModuleType("segbalance.core.seg")
    seg.quality = quality
    monkeypatch.setitem(sys.modules, "segbalance.core.seg", seg)
    monkeypatch.setitem(sys.modules, "segbalance.core.seg.quality", quality)
    with pytest.raises(SegbalanceError, match="no segmentation model yet"):
        run_generate(ws, root, plan, "copypaste", min_quality=0.5)
    with Workspace(ws) as w, w.session() as s, s.begin():
        s.add(m.TrainingRun(kind="seg", name="r", out_dir=str(tmp_path / "segrun"), status="done"))
    res = run_generate(ws, root, plan, "copypaste", min_quality=0.5)
    assert seen["ckpt"] == str(tmp_path / "segrun")
    with Workspace(ws) as w:
        pairs = list_pairs(w)
    assert len(pairs) == 6 and res.rejected == sum(p["status"] == "rejected" for p in pairs)
    for p in pairs:
        assert p["quality"] in (0.9, 0.1)
        assert p["status"] == ("rejected" if p["quality"] < 0.5 else "pending")


def _tiny_generator(path: Path, label_nc: int = 35) -> Path:
    import torch

    from segbalance.core.render import pix2pixhd_nets as nets

    torch.manual_seed(0)
    g = nets.build_generator(nets.Pix2PixHDConfig(label_nc=label_nc, ngf=8, n_downsample_global=2, n_blocks_global=1))
    torch.save(g.state_dict(), path)
    return path


def test_real_pix2pixhd_renderer_job(setup, tmp_path, capsys):
    """The real generator module (tiny untrained weights): rows, hashes, checkpoint SHA, label_nc check."""
    import torch

    torch.set_num_threads(2)
    root, ws, plan = setup
    ckpt = _tiny_generator(tmp_path / "latest_net_G.pth")
    argv = ["generate", "--workspace", str(ws), "--dataset", str(root), "--plan", str(plan), "--renderer",
            "pix2pixhd", "--checkpoint", str(ckpt), "--device", "cpu", "--seed", "3"]
    assert main(argv) == 0
    rows = _check_rows(ws, 1, 6)
    assert {r.checkpoint_sha256 for r in rows} == {_sha(ckpt)} and {r.renderer for r in rows} == {"pix2pixhd"}
    # same plan, checkpoint and seed in another workspace: the same images
    argv2 = [a if a != str(ws) else str(tmp_path / "ws2") for a in argv]
    assert main(argv2) == 0
    with Workspace(tmp_path / "ws2") as w2, w2.session() as s:
        assert {p.recipe_index: p.image_sha256 for p in s.scalars(select(m.GeneratedPair))} == \
            {r.recipe_index: r.image_sha256 for r in rows}
    small = _tiny_generator(tmp_path / "small_G.pth", label_nc=20)
    capsys.readouterr()
    assert main(argv[:-4] + ["--checkpoint", str(small), "--device", "cpu"]) == 2
    assert "label_nc 20" in capsys.readouterr().err


def test_procedural_renderer_job(setup):
    root, ws, plan = setup
    res = run_generate(ws, root, plan, "procedural", seed=1)
    rows = _check_rows(ws, res.job_id, 6)
    assert {r.renderer for r in rows} == {"procedural"}
    again = run_generate(ws.parent / "ws_b", root, plan, "procedural", seed=1)
    with Workspace(ws.parent / "ws_b") as w, w.session() as s:
        assert {p.recipe_index: p.image_sha256 for p in s.scalars(select(m.GeneratedPair))} == \
            {r.recipe_index: r.image_sha256 for r in rows} and again.new == 6


def test_quality_gate_with_a_real_segmentation_run(setup, tmp_path):
    """A 2-iteration PSPNet run stands in for a trained model: scores land in the rows, the threshold rejects."""
    import torch

    from segbalance.core.seg.train import SegTrainConfig, train_seg

    torch.set_num_threads(1)
    root, ws, plan = setup
    run = tmp_path / "segrun"
    train_seg(SegTrainConfig(dataset=str(root), out_dir=str(run), workspace=str(ws), backbone="resnet18",
                             crop=(64, 128), batch=2, iters=2, workers=0, amp="off", device="cpu",
                             stdout_json=False, threads=1))
    res = run_generate(ws, root, plan, "copypaste", min_quality=0.99, device="cpu")
    with Workspace(ws) as w:
        pairs = list_pairs(w, job_id=res.job_id)
    assert len(pairs) == 6
    for p in pairs:
        assert p["quality"] is None or 0.0 <= p["quality"] <= 1.0
        assert p["status"] == ("rejected" if p["quality"] is not None and p["quality"] < 0.99 else "pending")
    assert res.rejected == sum(p["status"] == "rejected" for p in pairs) > 0
