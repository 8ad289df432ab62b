"""Icon and stylesheet shipped with the app (regenerate the icon with resources/make_icon.py)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

HERE = Path(__file__).resolve().parent


def app_icon() -> QIcon:
    icon = QIcon()
    for n in (64, 256):
        p = HERE / f"segbalance-{n}.png"
        if p.exists():
            icon.addFile(str(p))
    return icon


def stylesheet() -> str:
    p = HERE / "style.qss"
    return p.read_text(encoding="utf-8") if p.exists() else ""
