"""One training subprocess (`python -m core.cli train-seg ...`) under QProcess: start, stop, last output lines.

A crash of the run is the subprocess's problem only; Stop sends SIGTERM (train-seg saves its checkpoint
and exits 130), and a run that ignores it is killed after a grace period.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

KILL_AFTER_MS = 20_000
STOPPED_EXIT_CODE = 130


class TrainProcess(QObject):
    """Runs one command; `finished(exit_code, crashed, stopped_by_user)` when it ends."""

    output = Signal(str)  # each line of stdout/stderr, as it comes
    started = Signal()
    finished = Signal(int, bool, bool)

    def __init__(self, parent: QObject | None = None, keep_lines: int = 200) -> None:
        super().__init__(parent)
        self.proc: QProcess | None = None
        self.stderr_lines: deque[str] = deque(maxlen=keep_lines)
        self.stdout_lines: deque[str] = deque(maxlen=keep_lines)
        self.stop_requested = False
        self.exit_code: int | None = None
        self._buf = {"out": "", "err": ""}

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int | None:
        return int(self.proc.processId()) if self.running else None

    def start(self, program: str, args: list[str], cwd: str | None = None) -> None:
        if self.running:
            raise RuntimeError("a run is already going")
        self.stderr_lines.clear()
        self.stdout_lines.clear()
        self.stop_requested = False
        self.exit_code = None
        p = self.proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        p.setProcessEnvironment(env)
        if cwd:
            p.setWorkingDirectory(cwd)
        p.readyReadStandardOutput.connect(lambda: self._read("out"))
        p.readyReadStandardError.connect(lambda: self._read("err"))
        p.finished.connect(self._finished)
        p.errorOccurred.connect(self._error)
        p.started.connect(self.started)
        p.start(program, args)

    def stop(self) -> None:
        """SIGTERM now; SIGKILL if it is still alive after KILL_AFTER_MS."""
        if not self.running:
            return
        self.stop_requested = True
        self.proc.terminate()
        proc = self.proc
        # proc as the timer's context: no call once the QProcess is gone (a raise in the event loop otherwise)
        QTimer.singleShot(KILL_AFTER_MS, proc, lambda: proc.kill()
                          if proc.state() != QProcess.ProcessState.NotRunning else None)

    def wait(self, ms: int) -> bool:
        return self.proc.waitForFinished(ms) if self.proc is not None else True

    def wait_or_kill(self, ms: int) -> bool:
        """Block until the process ended (its `finished` handlers run meanwhile); killed after `ms`.
        True when it ended by itself."""
        if not self.running:
            return True
        if self.proc.waitForFinished(ms):
            return True
        self.proc.kill()
        self.proc.waitForFinished(5000)
        return False

    def _read(self, which: str) -> None:
        if self.proc is None:
            return
        data = self.proc.readAllStandardOutput() if which == "out" else self.proc.readAllStandardError()
        text = self._buf[which] + bytes(data).decode(errors="replace").replace("\r", "\n")
        *lines, self._buf[which] = text.split("\n")
        store = self.stdout_lines if which == "out" else self.stderr_lines
        for line in lines:
            if line.strip():
                store.append(line)
                self.output.emit(line)

    def _flush(self) -> None:
        for which in ("out", "err"):
            self._read(which)
            rest = self._buf[which].strip()
            if rest:
                (self.stdout_lines if which == "out" else self.stderr_lines).append(rest)
                self.output.emit(rest)
            self._buf[which] = ""

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._flush()
        crashed = status == QProcess.ExitStatus.CrashExit
        self.exit_code = code if not crashed else -1
        self.finished.emit(self.exit_code, crashed, self.stop_requested)

    def _error(self, err: QProcess.ProcessError) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            self.stderr_lines.append(f"could not start the training process ({self.proc.errorString()})")
            self.exit_code = -1
            self.finished.emit(-1, True, False)
