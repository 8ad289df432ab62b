"""File dialogs that never open the files they list, so they cannot break the workspace database's locks.

Qt's file dialog asks QMimeDatabase for each listed file's type, and for names without a decisive extension
(segbalance.db, -wal, -shm) it opens the file to sniff its content, then closes it. SQLite's locks are POSIX
advisory locks, which belong to the process and are all dropped when the process closes *any* descriptor of
the file: after a dialog had shown the workspace folder, the app held no lock, so the next CLI command took
itself for the last user, checkpointed and deleted the app's -wal and -shm, and the app and the CLI wrote to
two different databases from then on. GTK's native dialog sniffs the same way through GIO.

`install(app)` makes every file dialog of the process (the static getters included) Qt's own, typed by file
name only.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QFileInfo, QMimeDatabase, QObject, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QFileDialog, QFileIconProvider


class NameOnlyIconProvider(QFileIconProvider):
    """Icons and type names from the file name alone; never reads a file."""

    def __init__(self) -> None:
        super().__init__()
        self._mime = QMimeDatabase()

    def icon(self, what) -> QIcon:  # noqa: ANN001 - QFileInfo or an IconType, as Qt calls it
        if isinstance(what, QFileInfo):
            kind = QFileIconProvider.IconType.Folder if what.isDir() else QFileIconProvider.IconType.File
            return super().icon(kind)
        return super().icon(what)

    def type(self, info: QFileInfo) -> str:
        if info.isDir():
            return "Folder"
        mime = self._mime.mimeTypeForFile(info.fileName(), QMimeDatabase.MatchMode.MatchExtension)
        return mime.comment() or mime.name()


class _DialogGuard(QObject):
    """Gives every QFileDialog the name-only icon provider before it is shown (and before it lists a file)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.provider = NameOnlyIconProvider()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Polish and isinstance(obj, QFileDialog) \
                and obj.iconProvider() is not self.provider:
            obj.setIconProvider(self.provider)
        return False


_GUARDS: list[_DialogGuard] = []


def install(app: QApplication) -> None:
    """Make every file dialog of `app` one that never opens a listed file (idempotent)."""
    if app.property("segbalance_dialog_guard"):
        return
    app.setAttribute(Qt.ApplicationAttribute.AA_DontUseNativeDialogs)  # GTK's would sniff through GIO
    guard = _DialogGuard(app)
    _GUARDS.append(guard)  # a Python reference too, so the override outlives this call
    app.installEventFilter(guard)
    app.setProperty("segbalance_dialog_guard", True)
