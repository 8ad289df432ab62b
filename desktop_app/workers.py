"""Run engine functions off the UI thread: one adapter from progress/cancel callbacks to Qt signals.

Engine functions take `progress(done, total)` and `cancel() -> bool` and know nothing of Qt. A `Worker`
calls one on a QThreadPool and reports through signals (napari/superqt style):
started, progress(done, total), returned(result), errored(exception), cancelled, finished.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from segbalance.core.errors import Cancelled

# Workers alive until they finish: the pool does not keep Python wrappers alive on its own.
_ALIVE: set[Worker] = set()
_ALIVE_LOCK = threading.Lock()
PROGRESS_INTERVAL_S = 0.05  # engines may report thousands of steps/s; the UI needs ~20 updates/s


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(int, int)
    returned = Signal(object)
    errored = Signal(object)
    cancelled = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Calls `fn(*args, **kwargs)` on a thread pool, adding progress=/cancel= when fn accepts them."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = WorkerSignals()
        # expose the signals on the worker itself: worker.finished.connect(...)
        for name in ("started", "progress", "returned", "errored", "cancelled", "finished"):
            setattr(self, name, getattr(self.signals, name))
        self._cancel = threading.Event()
        self._last_emit = 0.0
        self.running = False
        self.done = threading.Event()
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if "progress" in params or has_var_kw:
            self.kwargs.setdefault("progress", self._report)
        if "cancel" in params or has_var_kw:
            self.kwargs.setdefault("cancel", self.is_cancelled)

    # -- called from the worker thread -------------------------------------------------
    def _report(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_emit >= PROGRESS_INTERVAL_S:
            self._last_emit = now
            self._emit("progress", int(done), int(total))

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _emit(self, name: str, *args: Any) -> None:
        try:
            getattr(self.signals, name).emit(*args)
        except RuntimeError:
            pass  # the app is shutting down and took the receivers with it

    def run(self) -> None:
        self.running = True
        lower_thread_priority()
        try:
            self._emit("started")
            try:
                result = self.fn(*self.args, **self.kwargs)
            except Cancelled:
                self._emit("cancelled")
            except Exception as exc:  # noqa: BLE001 - every error goes to one place: errored
                exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
                self._emit("errored", exc)
            else:
                self._emit("cancelled") if self._cancel.is_set() else self._emit("returned", result)
        finally:
            self.running = False
            self.done.set()
            self._emit("finished")
            with _ALIVE_LOCK:
                _ALIVE.discard(self)

    # -- called from the UI thread -----------------------------------------------------
    def cancel(self) -> None:
        """Ask the engine to stop at its next cancel check."""
        self._cancel.set()

    def start(self, pool: QThreadPool | None = None) -> Worker:
        with _ALIVE_LOCK:
            _ALIVE.add(self)
        (pool or QThreadPool.globalInstance()).start(self)
        return self


def lower_thread_priority(niceness: int | None = None) -> None:
    """Renice the calling worker thread (Linux schedules threads separately) so the UI thread wins the CPU."""
    if niceness is None:
        niceness = int(os.environ.get("SEGBALANCE_WORKER_NICE", "10"))
    if niceness and hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
        except OSError:
            pass


def create_worker(fn: Callable[..., Any], *args: Any, _start: bool = False, **kwargs: Any) -> Worker:
    """A Worker for fn; `_start=True` starts it on the global pool right away."""
    w = Worker(fn, *args, **kwargs)
    if _start:
        w.start()
    return w


def error_text(exc: BaseException) -> str:
    """The one line a user sees for an engine error (SegbalanceError messages already name the file)."""
    from segbalance.core.errors import SegbalanceError

    if isinstance(exc, SegbalanceError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return f"{where}{exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def start_worker(fn: Callable[..., Any], *args: Any, on_result: Callable[[Any], None] | None = None,
                 on_error: Callable[[str], None] | None = None, **kwargs: Any) -> Worker:
    """Start a Worker for fn with its result and its one-line error (`error_text`) handed to callbacks on the
    UI thread: the short form for panels that only need the answer."""
    w = Worker(fn, *args, **kwargs)
    if on_result is not None:
        w.returned.connect(lambda res: _alive(on_result) and on_result(res))
    if on_error is not None:
        w.errored.connect(lambda exc: _alive(on_error) and on_error(error_text(exc)))
    return w.start()


def _alive(callback: Callable[..., Any]) -> bool:
    """Whether a callback's widget still exists (a panel closed while its worker ran must not be called)."""
    from shiboken6 import isValid

    owner = getattr(getattr(callback, "func", callback), "__self__", None)  # a bound method, or a partial of one
    return not isinstance(owner, QObject) or isValid(owner)
