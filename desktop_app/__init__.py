"""segbalance desktop app (PySide6 + pyqtgraph): views over core/ and db/, no engine logic of its own.

main.py (entry point) -> main_window.py (wires panels) -> widgets/ (one panel per module);
state.py holds what is open, workers.py runs engine calls off the UI thread, engine.py groups the
multi-step engine calls, settings.py remembers preferences.
"""
