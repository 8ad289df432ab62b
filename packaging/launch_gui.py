"""PyInstaller entry script: start the installed app (`pip install .` first, so `segbalance` is importable)."""

from segbalance.desktop_app.main import run

raise SystemExit(run())
