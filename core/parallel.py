"""The one way the engine starts worker processes.

Never plain fork: OpenCV's, torch's or Qt's thread pools in the parent (invisible to `threading`)
leave locks held in a forked child, which then hangs. forkserver children start from a clean
server; its preload names our own modules instead of the default `__main__`, so a user's script
without an `if __name__ == "__main__"` guard is not re-run inside the server.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import threading
import time
from collections.abc import Callable
from multiprocessing.context import BaseContext

from segbalance.core.processes import process_alive

_PRELOAD = ["numpy", "cv2", "segbalance.core.datasets.stats", "segbalance.core.recombine.layers"]


def _wait_for_exit(pid: int) -> None:
    """Block until process `pid` is gone: a pidfd where Linux has one, else poll every 0.5 s."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (macOS, old kernels, some sandboxes)
        while process_alive(pid):
            time.sleep(0.5)
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def exit_with(pid: int) -> None:
    """Exit this process (os._exit: a worker has nothing to save) as soon as process `pid` is gone.

    Pool workers are children of the forkserver, not of the command, so PR_SET_PDEATHSIG would fire only
    when the server dies, and the server stays up while a worker holds its "alive" pipe: after a kill -9 of
    `segbalance stats`, workers, server and resource tracker kept each other alive for good. A worker that
    watches the command itself breaks that cycle; the server and the tracker then exit on their own.
    """
    def watch() -> None:
        _wait_for_exit(pid)
        os._exit(1)

    threading.Thread(target=watch, name=f"exit-with-{pid}", daemon=True).start()


def pool_initargs(fn: Callable[..., None], *args: object) -> tuple:
    """initargs for `pool_init`, captured in the command's process: the initializer, its args, our pid."""
    return (fn, args, os.getpid())


def pool_init(fn: Callable[..., None], args: tuple, owner: int) -> None:
    """ProcessPoolExecutor initializer (pass `pool_initargs(...)`): exit with `owner`, then run `fn(*args)`."""
    exit_with(owner)
    fn(*args)


def process_context() -> BaseContext:
    """forkserver where the OS has it (Linux, macOS), spawn elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")
