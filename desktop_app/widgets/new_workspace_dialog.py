"""The New-workspace dialog: a parent folder and a name, so a workspace can be a folder that does not exist yet
(a plain folder picker answers "Directory not found" to a typed new path), starting beside the current
workspace rather than inside it (where "New Folder" would nest one workspace in another)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.workspace import DB_NAME


def start_folder(current_workspace: str | Path | None) -> Path:
    """Where a new workspace goes by default: beside the current one, else the home folder."""
    return Path(current_workspace).parent if current_workspace else Path.home()


def free_name(parent: Path, base: str = "segbalance-workspace") -> str:
    """`base`, or base-2, base-3, ... : the first name not taken in parent."""
    name, k = base, 1
    while (parent / name).exists():
        k += 1
        name = f"{base}-{k}"
    return name


class NewWorkspaceDialog(QDialog):
    """`chosen(path)` with the folder to create (or an existing empty folder to use)."""

    chosen = Signal(str)

    def __init__(self, current_workspace: str | Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("new_workspace_dialog")
        self.setWindowTitle("New workspace")
        start = start_folder(current_workspace)
        self.parent_edit = QLineEdit(str(start))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.name_edit = QLineEdit(free_name(start))
        self.target = QLabel()
        self.target.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.parent_edit, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("In folder", row)
        form.addRow("Name", self.name_edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = buttons.addButton("Create", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.target)
        lay.addWidget(buttons)
        self.parent_edit.textChanged.connect(self._update)
        self.name_edit.textChanged.connect(self._update)
        self._update()

    def path(self) -> Path:
        return Path(self.parent_edit.text().strip()).expanduser() / self.name_edit.text().strip()

    def problem(self) -> str | None:
        """Why the folder cannot become a new workspace (None when it can)."""
        if not self.name_edit.text().strip() or not self.parent_edit.text().strip():
            return "give a folder and a name"
        p = self.path()
        if (p / DB_NAME).exists():
            return f"{p} is already a workspace: open it with File > Open workspace"
        if p.exists() and not p.is_dir():
            return f"{p} exists and is not a folder"
        if p.is_dir() and any(p.iterdir()):
            return f"{p} is not empty: choose a new name or an empty folder"
        return None

    def _update(self) -> None:
        why = self.problem()
        self.create_button.setEnabled(why is None)
        p = self.path()
        self.target.setText(why or (f"Creates the workspace {p}" if not p.exists() else f"Uses the empty folder {p}"))

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder for the new workspace", self.parent_edit.text())
        if d:
            self.parent_edit.setText(d)

    def _accept(self) -> None:
        if self.problem() is None:
            self.chosen.emit(str(self.path()))
            self.accept()
