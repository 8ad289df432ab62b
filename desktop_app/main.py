"""Entry point of the desktop app (`segbalance-gui [WORKSPACE]`)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from segbalance.core.errors import WorkspaceError
from segbalance.core.workspace import DB_NAME, DatabaseUnusable, Workspace
from segbalance.desktop_app import file_dialogs
from segbalance.desktop_app.main_window import MainWindow
from segbalance.desktop_app.settings import Settings
from segbalance.desktop_app.theme import app_icon, stylesheet


def application(argv: list[str] | None = None) -> QApplication:
    """The one QApplication (created on first call) with our name, icon and stylesheet."""
    app = QApplication.instance()
    # worker threads give the GIL back to the UI thread after 1 ms instead of 5 ms
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("segbalance")
    app.setOrganizationName("segbalance")
    app.setWindowIcon(app_icon())
    file_dialogs.install(app)  # before any dialog can list (and unlock) the workspace database
    if not app.property("segbalance_styled"):
        app.setStyleSheet(app.styleSheet() + stylesheet())
        app.setProperty("segbalance_styled", True)
    return app


def preload_native_libraries() -> None:
    """Import torch now, before any window shows.

    Loading libtorch holds the GIL for about a second; done later from a worker thread it would
    freeze a visible UI, so the app pays it once at start-up instead.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        pass  # the app still browses and measures datasets; rendering/training say what is missing


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (torch, Qt wrappers, modules) out of the cyclic GC's reach.

    A full collection over torch's objects is long enough to see (docs/benchmarks.md) and, on whatever thread
    triggers it, holds the GIL: a visible UI freeze. Frozen objects are never scanned again; later garbage is
    collected as usual.
    """
    gc.collect()
    gc.freeze()


def create_main_window(settings_path: str | Path | None = None, workspace: str | Path | None = None) -> MainWindow:
    """The real main window; opens `workspace`, else the last one used (if it still exists)."""
    application()
    preload_native_libraries()
    window = MainWindow(Settings(settings_path))
    target = workspace or window.settings.last_workspace()
    if target is not None and (workspace is not None or os.path.isdir(target)):
        open_startup_workspace(window, target, create=False)
    freeze_startup_objects()
    return window


def open_startup_workspace(window: MainWindow, path: str | Path, *, create: bool) -> bool:
    """Open a workspace at start-up; a damaged or unreadable database becomes a message box, not an exit."""
    try:
        if (Path(path) / DB_NAME).is_file():
            with Workspace(path, create=False) as ws:
                ws.check_integrity()  # before the views read it: their first query would fail mid-signal
        return window.open_workspace(path, create=create)
    except WorkspaceError as exc:
        window.show_error("Open workspace", str(exc))
        return False
    except DatabaseUnusable as exc:
        window.state.close_workspace()
        window.show_error("Open workspace", str(exc))
        return False


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segbalance-gui", description="segbalance desktop app")
    parser.add_argument("workspace", nargs="?", help="workspace folder to open (default: the last one)")
    parser.add_argument("--new", action="store_true", help="create the workspace folder if needed")
    parser.add_argument("--settings", help="settings file (default: under the user config dir)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    app = application(sys.argv[:1])
    window = create_main_window(args.settings, None)
    if args.workspace:
        open_startup_workspace(window, args.workspace, create=args.new)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(run())
