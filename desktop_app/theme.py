"""The app's icon and stylesheet, loaded from the `segbalance.resources` package data."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from segbalance.resources import ICON_SIZES, read_text, resource_path


def app_icon() -> QIcon:
    icon = QIcon()
    for n in ICON_SIZES:
        p = resource_path(f"segbalance-{n}.png")
        if p.exists():
            icon.addFile(str(p))
    return icon


def stylesheet() -> str:
    return read_text("style.qss")
