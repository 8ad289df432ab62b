"""Minimal Qt adapter running a plain function on the global thread pool (until the shared one lands).

The engine function knows nothing of Qt; the worker reports back through signals delivered on the UI thread.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class WorkerSignals(QObject):
    returned = Signal(object)
    errored = Signal(str)
    finished = Signal()


class FunctionWorker(QRunnable):
    """Runs fn(*args, **kwargs) off the UI thread; `signals.returned` carries the result,
    `signals.errored` a one-line message (user errors) or the last traceback line."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = WorkerSignals()

    def run(self) -> None:  # noqa: D401 - Qt entry point
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # reported to the UI, never raised into Qt's thread
            from segbalance.core.errors import SegbalanceError

            msg = str(exc) if isinstance(exc, SegbalanceError) else (
                traceback.format_exception_only(type(exc), exc)[-1].strip()
            )
            self.signals.errored.emit(msg)
        else:
            self.signals.returned.emit(result)
        finally:
            self.signals.finished.emit()


_active: set[FunctionWorker] = set()  # keeps workers (and their signal objects) alive until delivered


def start_worker(
    fn: Callable[..., Any],
    *args: Any,
    on_result: Callable[[Any], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    **kwargs: Any,
) -> FunctionWorker:
    """Run fn(*args, **kwargs) on the global pool; callbacks are connected before it starts and run on the UI
    thread."""
    w = FunctionWorker(fn, *args, **kwargs)
    w.setAutoDelete(False)
    if on_result is not None:
        w.signals.returned.connect(on_result)
    if on_error is not None:
        w.signals.errored.connect(on_error)
    if on_finished is not None:
        w.signals.finished.connect(on_finished)
    w.signals.finished.connect(lambda: _active.discard(w))
    _active.add(w)
    QThreadPool.globalInstance().start(w)
    return w
