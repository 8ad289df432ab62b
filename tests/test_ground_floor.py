"""The ground floor (io, errors, parallel, processes, ranks) stands alone: it loads nothing of the engine above
it (the contract and its planted violations are in test_contracts.py), and its temp-file sweep removes only
what a dead writer of ours left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_floor_imports_without_the_rest_of_the_engine() -> None:
    code = ("import sys; import segbalance.core.io, segbalance.core.parallel, segbalance.core.processes, "
            "segbalance.core.ranks; up = sorted(m for m in sys.modules if m.startswith('segbalance.') and "
            "m.split('.')[2:3] not in (['io'], ['errors'], ['parallel'], ['processes'], ['ranks'], [])); "
            "print(up); assert not up and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_sweep_removes_a_dead_writers_temp_file_and_keeps_a_live_ones(tmp_path: Path) -> None:
    from segbalance.core.processes import process_alive, sweep_temp_files, temp_prefix

    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1 if Path("/proc/sys/kernel/pid_max").exists() \
        else 2**22 + 1  # above the kernel's largest pid: no process can hold it
    assert not process_alive(dead)
    mine = tmp_path / f"{temp_prefix(tmp_path / 'a.png')}x1.tmp"
    theirs = tmp_path / f".a.png.{dead}.x2.tmp"
    bank = tmp_path / f"masks.bin.{dead}.tmp"
    other = tmp_path / "notes.tmp"  # not named like ours: never ours to remove
    for p in (mine, theirs, bank, other):
        p.write_bytes(b"x")
    assert sorted(sweep_temp_files(tmp_path)) == sorted([theirs, bank])
    assert mine.exists() and other.exists()


def test_one_rank_description_serves_generation_and_training(monkeypatch) -> None:
    from segbalance.core.ranks import Rank, torchrun_rank

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    alone = torchrun_rank()
    assert alone == Rank() and alone.master and not alone.enabled
    assert alone.broadcast("x") == "x" and alone.gather(1) == [1]
    # whole batches round-robin: with batch 4 and 2 ranks, rank 1 renders recipes 4-7, 12-15, ...
    second = Rank(rank=1, world=2)
    assert [i for i in range(16) if second.owns(i, 4)] == [4, 5, 6, 7, 12, 13, 14, 15]
    assert not second.master and second.enabled
