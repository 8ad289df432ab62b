"""segbalance desktop app (PySide6 + pyqtgraph): views over core/ and db/, no engine logic of its own.

main.py (entry point) -> main_window.py (wires panels) -> widgets/ (one panel per module);
state.py holds what is open, workers.py runs engine calls off the UI thread, engine.py groups the
multi-step engine calls, settings.py remembers preferences. editor/ and training/ are the label
editor and training panels, added as tabs by main_window.py.
"""

# Must run before any widget code: this environment's PySide6 leaks references to None/True (see module).
from segbalance.desktop_app import pyside_guard as _pyside_guard  # noqa: F401
