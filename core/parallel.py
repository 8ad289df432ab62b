"""The one way the engine starts worker processes.

Never plain fork: OpenCV's, torch's or Qt's thread pools in the parent (invisible to `threading`)
leave locks held in a forked child, which then hangs. forkserver children start from a clean
server; its preload names our own modules instead of the default `__main__`, so a user's script
without an `if __name__ == "__main__"` guard is not re-run inside the server.
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.context import BaseContext

_PRELOAD = ["numpy", "cv2", "segbalance.core.stats", "segbalance.core.recombine.layers"]


def process_context() -> BaseContext:
    """forkserver where the OS has it (Linux, macOS), spawn elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")
