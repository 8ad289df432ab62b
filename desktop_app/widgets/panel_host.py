"""Hosts a panel that needs an open workspace (and maybe a dataset) at construction, rebuilding it on change."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from segbalance.desktop_app.state import AppState
from segbalance.desktop_app.widgets.wheel_guard import guard_wheel
from segbalance.desktop_app.workers import error_text


class PanelHost(QWidget):
    """Shows `build(state)` (None = not possible yet: a hint is shown instead); rebuilt when `key(state)` changes."""

    def __init__(self, state: AppState, build: Callable[[AppState], QWidget | None],
                 key: Callable[[AppState], object], hint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.build, self.key, self.hint = state, build, key, hint
        self.inner: QWidget | None = None
        self._key: object = object()
        self.message = QLabel(hint)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.lay.addWidget(self.message)
        state.workspaceChanged.connect(lambda _w: self.rebuild())
        state.datasetChanged.connect(lambda _d: self.rebuild())
        self.rebuild()

    def rebuild(self) -> None:
        k = self.key(self.state)
        if k == self._key:
            return
        self._key = k
        if self.inner is not None:
            self.lay.removeWidget(self.inner)
            self.inner.close()
            self.inner.deleteLater()
            self.inner = None
        try:
            self.inner = self.build(self.state)
        except Exception as exc:  # noqa: BLE001 - a panel that cannot start says why; the app goes on
            self.message.setText(f"{self.hint}\n\n(cannot start: {error_text(exc)})")
            self.message.show()
            return
        if self.inner is None:
            self.message.setText(self.hint)
            self.message.show()
        else:
            self.message.hide()
            self.lay.addWidget(self.inner)
            guard_wheel(self.inner)
