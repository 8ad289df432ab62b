"""Persistent preferences: a QSettings INI file (path given for tests, else under the platformdirs config dir)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from platformdirs import user_config_path
from PySide6.QtCore import QByteArray, QSettings

SETTINGS_ENV = "SEGBALANCE_GUI_SETTINGS"
MAX_RECENT = 10


def default_settings_path() -> Path:
    """$SEGBALANCE_GUI_SETTINGS, else <user config dir>/segbalance/gui.ini."""
    env = os.environ.get(SETTINGS_ENV)
    if env:
        return Path(env)
    return user_config_path("segbalance", appauthor=False) / "gui.ini"


class Settings:
    """Typed access to the few things the app remembers between runs."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    # -- plain values (stored as JSON so types survive the INI round trip) -------------
    def get(self, key: str, default: Any = None) -> Any:
        raw = self.qs.value(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value: Any) -> None:
        self.qs.setValue(key, json.dumps(value))

    def sync(self) -> None:
        self.qs.sync()

    # -- recent workspaces ---------------------------------------------------------------
    def recent_workspaces(self) -> list[str]:
        return [p for p in self.get("workspace/recent", []) if isinstance(p, str)]

    def add_recent_workspace(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        recent = [r for r in self.recent_workspaces() if r != p]
        self.set("workspace/recent", [p, *recent][:MAX_RECENT])
        self.set("workspace/last", p)

    def last_workspace(self) -> str | None:
        return self.get("workspace/last")

    # -- window geometry and dock layout (binary blobs) ----------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.qs.value("window/geometry"), self.qs.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qs.setValue("window/geometry", geometry)
        self.qs.setValue("window/state", state)
