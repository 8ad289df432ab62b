"""Generation at scale: cheaper lossless PNG writes, and one plan split across torchrun processes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segbalance.core.jobs.pair_writer import PNG_MAP, PNG_PHOTO


def test_fast_png_settings_stay_lossless():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    label = rng.integers(0, 34, (37, 53), dtype=np.uint8)
    inst = (rng.integers(0, 34, (37, 53)) * 1000 + rng.integers(0, 3, (37, 53))).astype(np.uint16)
    for arr, opts in ((photo, PNG_PHOTO), (label, PNG_MAP), (inst, PNG_MAP)):
        ok, buf = cv2.imencode(".png", arr, opts)
        assert ok
        back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        assert back.dtype == arr.dtype and np.array_equal(back, arr)


@pytest.mark.parametrize("fast", [True, False], ids=["isal", "opencv-fallback"])
@pytest.mark.parametrize("shape,dtype,photo", [((37, 53, 3), np.uint8, True), ((1, 1, 3), np.uint8, True),
                                               ((64, 7), np.uint8, False), ((40, 31, 1), np.uint8, True),
                                               ((29, 41), np.uint16, False), ((29, 41, 3), np.uint8, False)])
def test_encode_png_is_lossless_png(monkeypatch, tmp_path, fast, shape, dtype, photo):
    from segbalance.core import io as sio

    if not fast:
        monkeypatch.setattr(sio, "_isal_zlib", None)
    elif sio._isal_zlib is None:
        pytest.skip("isal is not installed")
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 65536 if dtype == np.uint16 else 256, shape).astype(dtype)
    arr[: shape[0] // 2] = 200  # flat and noisy regions
    buf = sio.encode_png(arr, photo=photo)
    back = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3 and arr.shape[2] == 3:
        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)  # the file stores RGB; OpenCV hands back BGR
    assert back.dtype == arr.dtype and np.array_equal(back.reshape(arr.shape), arr)
    f = tmp_path / "x.png"  # the header and IEND our dataset reader checks
    f.write_bytes(buf)
    assert sio.png_size(f) == shape[:2]
    assert _chunks_ok(buf)


def _chunks_ok(buf: bytes) -> bool:
    """Every chunk's CRC is right and the chunks fill the file (decoders differ in how strictly they check)."""
    import struct
    import zlib

    if buf[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    k = 8
    while k < len(buf):
        (n,) = struct.unpack(">I", buf[k : k + 4])
        kind, data = buf[k + 4 : k + 8], buf[k + 8 : k + 8 + n]
        if struct.unpack(">I", buf[k + 8 + n : k + 12 + n])[0] != zlib.crc32(data, zlib.crc32(kind)):
            return False
        k += 12 + n
    return k == len(buf)


def test_encode_png_rejects_what_it_cannot_store():
    from segbalance.core.io import encode_png

    for bad in (np.zeros((4, 4, 3), np.uint16), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4), np.int32)):
        with pytest.raises(ValueError):
            encode_png(bad, photo=True)


# -- torchrun: one plan split across processes ---------------------------------------------------------------
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.test_jobs import _plan  # noqa: E402


def _generate_cmd(ws: Path, ds: Path, plan: Path, nproc: int) -> list[str]:
    cli = ["-m", "segbalance.core.cli", "generate", "--workspace", str(ws), "--dataset", str(ds), "--plan", str(plan),
           "--renderer", "copypaste"]
    if nproc == 1:
        return [sys.executable, *cli]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *cli]


def _env(**extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _pairs(ws: Path) -> dict[int, tuple]:
    con = sqlite3.connect(ws / "segbalance.db")
    try:
        rows = con.execute("select recipe_index, image_sha256, label_sha256, instance_sha256, seed, status, "
                           "image_path, label_path, instance_path from generated_pair").fetchall()
    finally:
        con.close()
    out = {}
    for r in rows:
        assert r[0] not in out, f"recipe {r[0]} has two rows"
        out[r[0]] = r[1:6]
        for rel, sha in zip(r[6:9], r[1:4], strict=True):  # the files are what the row says
            import hashlib

            assert hashlib.sha256((ws / rel).read_bytes()).hexdigest() == sha
    return out


@pytest.fixture()
def small_plan(tmp_path, sample_dataset):
    root = sample_dataset
    plan = _plan(root, tmp_path / "ws_ref", tmp_path / "plan.json", budget=10)
    ref = subprocess.run(_generate_cmd(tmp_path / "ws_ref", root, plan, 1), env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    return root, plan, _pairs(tmp_path / "ws_ref")


def test_two_processes_equal_one_pair_for_pair(tmp_path, small_plan):
    root, plan, ref = small_plan
    ws = tmp_path / "ws2"
    r = subprocess.run(_generate_cmd(ws, root, plan, 2), env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "10 new pair(s), 10/10 done" in r.stdout
    assert _pairs(ws) == ref and len(ref) == 10
    files = sorted(p.name for p in (ws / "pairs" / "1").iterdir())
    assert len(files) == 30, "three files per pair, no duplicate, no orphan"
    con = sqlite3.connect(ws / "segbalance.db")
    status, done, total = con.execute("select status, done, total from job").fetchone()
    ranks = [t for (t,) in con.execute("select text from job_log") if t.startswith("rank ")]
    con.close()
    assert (status, done, total) == ("done", 10, 10)
    assert sorted(ranks) == ["rank 0 of 2: 5 recipe(s) of this job", "rank 1 of 2: 5 recipe(s) of this job"]


def _rank_pid(parent: int, rank: str) -> int | None:
    """The pid of the torchrun worker with RANK=`rank` among the descendants of `parent`."""
    kids = {parent}
    for _ in range(3):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid in kids:
                    kids.add(int(d))
            except (OSError, IndexError, ValueError):
                continue
    for pid in kids - {parent}:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"segbalance.core.cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


def test_a_killed_rank_resumes_to_the_same_pairs(tmp_path, small_plan):
    root, plan, ref = small_plan
    ws = tmp_path / "ws_kill"
    proc = subprocess.Popen(_generate_cmd(ws, root, plan, 2), env=_env(SEGBALANCE_JOB_DELAY="0.4"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        victim = None
        while time.monotonic() < deadline:
            if (ws / "segbalance.db").exists():
                try:
                    con = sqlite3.connect(ws / "segbalance.db", timeout=5)
                    n = con.execute("select count(*) from generated_pair").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    n = 0
                if n >= 2:
                    victim = _rank_pid(proc.pid, "1")
                    break
            time.sleep(0.1)
        assert victim is not None, "rank 1 was not found running"
        os.kill(victim, signal.SIGKILL)
        proc.communicate(timeout=120)
        assert proc.returncode != 0, "torchrun reports the dead rank"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    partial = _pairs(ws)
    assert 2 <= len(partial) < 10
    r = subprocess.run(_generate_cmd(ws, root, plan, 2), env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed #1" in r.stdout and "10/10 done" in r.stdout
    assert _pairs(ws) == ref
    assert len(list((ws / "pairs" / "1").iterdir())) == 30
    info = json.loads(subprocess.run([sys.executable, "-m", "segbalance.core.cli", "jobs", "--workspace", str(ws),
                                      "--json"], capture_output=True, text=True, env=_env()).stdout or "[]")
    assert info and info[0]["status"] == "done" and info[0]["done"] == 10
