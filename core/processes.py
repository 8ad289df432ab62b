"""Is a process alive, and the temp files a dead writer left: the ground floor that io, parallel, runs and
jobs share.

It imports nothing of segbalance (an import-linter contract keeps it so): liveness used to live in
runs/records.py and temp-file sweeping in io.py, and each imported the other.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path


def process_start(pid: int) -> datetime | None:
    """Start time (UTC, naive) of a Linux process from /proc; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            btime = next(int(ln.split()[1]) for ln in fh if ln.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"), UTC).replace(tzinfo=None)


def process_alive(pid: int | None, written_at: datetime | None = None) -> bool:
    """True while process `pid` runs; with `written_at` (when the row's writer last wrote it: its heartbeat),
    a process that started after that under the same pid (pid reuse) cannot be the writer and counts as gone."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:  # a zombie (killed child not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except OSError:
        pass
    if written_at is not None:
        began = process_start(pid)
        # boot time has one-second resolution: allow a few seconds of slack
        if began is not None and began > written_at + timedelta(seconds=5):
            return False
    return True


# -- temp files of our writers ------------------------------------------------------------------------------
# ".NAME.PID.RANDOM.tmp" (io's atomic writes: temp_prefix + mkstemp) and "NAME.PID.tmp" (the layer bank)
_TEMP_NAME = re.compile(r"^(?:\..+\.(\d+)\.[^.]+|.+\.(\d+))\.tmp$")


def temp_prefix(path: str | Path) -> str:
    """Prefix of an atomic write's temp file beside `path`: the writer's pid in the name lets the next command
    sweep what a killed writer left (sweep_temp_files)."""
    return f".{os.path.basename(path)}.{os.getpid()}."


def sweep_temp_files(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """Remove temp files our own writers name (see _TEMP_NAME) whose writing process is gone; returns them.
    Files of a live writer, and anything not named like ours, are left alone."""
    root = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(root.rglob("*.tmp") if recursive else root.glob("*.tmp"))
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_NAME.match(p.name)
        if m is None or not p.is_file():
            continue
        pid = int(m.group(1) or m.group(2))
        if pid == os.getpid() or process_alive(pid):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass  # read-only media: nothing to sweep
    return removed


__all__ = ["process_start", "process_alive", "temp_prefix", "sweep_temp_files"]
