"""The About box: what is running (segbalance, Qt, PySide6, torch, device, Python)."""

from __future__ import annotations

import platform
import sys

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QMessageBox, QWidget

from segbalance.core import __version__
from segbalance.desktop_app.theme import app_icon
from segbalance.desktop_app.widgets.status_bar import torch_version


def about_text(device: str) -> str:
    return (
        f"<h3>segbalance {__version__}</h3>"
        "<p>Balance the class distribution of semantic-segmentation datasets with recombined, "
        "rendered training pairs.</p>"
        f"<p>Qt {qVersion()} · PySide6 {PYSIDE_VERSION}<br>torch {torch_version()} · device: "
        f"{device or 'detecting…'}<br>Python {platform.python_version()} on {sys.platform}</p>"
    )


def show_about(parent: QWidget, device: str) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Information, "About segbalance", about_text(device),
                      QMessageBox.StandardButton.Ok, parent)
    box.setIconPixmap(app_icon().pixmap(64, 64))
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
