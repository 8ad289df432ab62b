"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class SegbalanceError(Exception):
    """A problem with the user's input, shown as one line (no traceback)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class DataError(SegbalanceError):
    """A bad file in a dataset (corrupt PNG, missing partner, size mismatch, bad ids)."""


class WorkspaceError(SegbalanceError):
    """A workspace that cannot be opened or written."""


class Cancelled(Exception):
    """Raised inside engine loops when the caller asked to stop."""


# json.loads raises RecursionError (not ValueError) on input nested deeper than the recursion limit
NESTED = "nested too deeply to read (more levels than Python's recursion limit)"
