"""segbalance desktop app (PySide6 views over core/ and db/)."""

# Must run before any widget code: this environment's PySide6 leaks references to None/True (see module).
from desktop_app import pyside_guard as _pyside_guard  # noqa: F401
