"""Export dialog: which pair statuses go into the exported dataset, with the counts before and after.

The counts come from core.jobs.pairs.export_counts, the rule core.export.formats applies (pairs of generate jobs run on
this dataset's content); failed pairs are never exported, as on the CLI (`--include` refuses them).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
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

from segbalance.core.jobs.pairs import EXPORTABLE_STATUSES, FAILED, REVIEWED_EXPORT

DEFAULT_INCLUDE = REVIEWED_EXPORT  # what a reviewer has vouched for; pending is one tick away


class ExportDialog(QDialog):
    """Choose the folder and the statuses; `include()` and `folder()` once accepted."""

    def __init__(self, originals: int, counts: dict[str, int], start_dir: Path, parent: QWidget | None = None,
                 include: tuple[str, ...] = DEFAULT_INCLUDE) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export augmented dataset")
        self.setObjectName("export_dialog")
        self.originals, self.counts = originals, counts
        self.checks: dict[str, QCheckBox] = {}
        form = QFormLayout()
        self.out = QLineEdit(str(start_dir))
        self.out.setMinimumWidth(self.out.fontMetrics().horizontalAdvance(str(start_dir)) + 24)
        self.out.setCursorPosition(0)
        self.out.setToolTip("An empty folder, or an earlier export to replace")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        boxes = QVBoxLayout()
        for s in EXPORTABLE_STATUSES:
            c = QCheckBox(f"{s} ({counts.get(s, 0)})")
            c.setChecked(s in include)
            c.toggled.connect(self._update)
            boxes.addWidget(c)
            self.checks[s] = c
        if counts.get(FAILED):
            boxes.addWidget(QLabel(f"{counts[FAILED]} failed pairs are never exported (their files are missing)"))
        form.addRow("Generated pairs", boxes)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.out.textChanged.connect(self._update)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.summary)
        lay.addWidget(self.buttons)
        self._update()

    def include(self) -> tuple[str, ...]:
        return tuple(s for s, c in self.checks.items() if c.isChecked())

    def folder(self) -> str:
        return self.out.text().strip()

    def generated_after(self) -> int:
        return sum(self.counts.get(s, 0) for s in self.include())

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export to (an empty folder)", self.folder())
        if d:
            self.out.setText(d)

    def _update(self) -> None:
        inc = self.include()
        total = sum(self.counts.get(s, 0) for s in EXPORTABLE_STATUSES)
        self.summary.setText(
            f"Before: {self.originals} original samples; {total} generated pairs to choose from.\n"
            f"After: {self.originals} original + {self.generated_after()} generated "
            f"({', '.join(inc) if inc else 'no status chosen'}) = {self.originals + self.generated_after()} "
            "samples in the export.")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(inc) and bool(self.folder()))
