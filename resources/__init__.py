"""Icons and stylesheet shipped with segbalance (regenerate the icon with `python -m segbalance.resources.make_icon`).

Found through the installed package, so they load the same from a wheel, an editable install or a frozen app.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

ICON_SIZES = (64, 256)


def resource_path(name: str) -> Path:
    """A file shipped in this package, as a path on disk (package data is installed as plain files)."""
    with as_file(files(__name__) / name) as p:
        return Path(p)


def read_text(name: str) -> str:
    """A text file shipped in this package ('' when it is missing, so a stripped build still starts)."""
    p = files(__name__) / name
    return p.read_text(encoding="utf-8") if p.is_file() else ""
