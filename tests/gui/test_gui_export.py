"""Honest export (issue 18): the dialog chooses the statuses, shows the counts before and after, and the
export holds exactly what it said; the Log says when it finished and with how much."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox
from sqlalchemy import update

from segbalance.core.datasets import open_dataset
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from tests.gui.test_gui_review import add_pairs


def _reviewed_pairs(workspace_path, dataset) -> list[int]:
    """Five pairs of a generate job on this dataset: 2 accepted, 1 rejected, 1 failed, 1 pending."""
    ids = add_pairs(workspace_path)
    fp = open_dataset(dataset).fingerprint()
    with Workspace(workspace_path, create=False) as ws, ws.session() as s, s.begin():
        s.execute(update(m.Job).values(params={"renderer": "copypaste", "fingerprint": fp}))
        for pid, status in zip(ids, ("accepted", "accepted", "rejected", "failed", "pending"), strict=True):
            s.execute(update(m.GeneratedPair).where(m.GeneratedPair.id == pid).values(status=status))
    return ids


def test_export_dialog_chooses_statuses_with_counts_and_exports_what_it_says(qtbot, make_window, workspace_path,
                                                                             tiny_dataset, tmp_path):
    ids = _reviewed_pairs(workspace_path, tiny_dataset)
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    qtbot.waitUntil(lambda: w.state.dataset is not None and not w.state.running_jobs(), timeout=20_000)
    w.actions.export.trigger()  # Ctrl+E
    dlg = w.export_window
    assert dlg.isVisible()
    assert {s: c.text() for s, c in dlg.checks.items()} == {"pending": "pending (1)", "accepted": "accepted (2)",
                                                            "rejected": "rejected (1)"}
    assert dlg.include() == ("accepted",)  # what the reviewer vouched for, nothing pending by surprise
    assert "Before: 8 original samples; 4 generated pairs" in dlg.summary.text()
    assert "After: 8 original + 2 generated (accepted) = 10" in dlg.summary.text()
    assert "1 failed pairs are never exported" in " ".join(lab.text() for lab in dlg.findChildren(type(dlg.summary)))
    dlg.checks["pending"].setChecked(True)
    assert "After: 8 original + 3 generated (pending, accepted) = 11" in dlg.summary.text()
    dlg.checks["pending"].setChecked(False)
    dlg.checks["accepted"].setChecked(False)
    ok = dlg.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled() and "no status chosen" in dlg.summary.text()
    dlg.checks["accepted"].setChecked(True)
    out = tmp_path / "export"
    dlg.out.setText(str(out))
    lines: list[str] = []
    w.state.log.connect(lines.append)
    qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: (out / "manifest.json").exists() and not w.state.running_jobs(), timeout=30_000)
    man = json.loads((out / "manifest.json").read_text())
    assert man["include"] == ["accepted"] and man["generated"] == 2 and man["originals"] == 8
    assert {p["pair_id"] for p in man["pairs"]} == set(ids[:2])
    qtbot.waitUntil(lambda: any(line.startswith("Export: finished") for line in lines), timeout=5000)
    assert "Export: finished: 8 original + 2 generated samples (accepted)" in "\n".join(lines)
    assert not w.errors, w.errors


def test_export_dialog_opens_in_the_workspace(qtbot, make_window, workspace_path, tiny_dataset):
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    qtbot.waitUntil(lambda: w.state.dataset is not None, timeout=20_000)
    dlg = w.export_dialog()
    assert dlg.folder().startswith(str(workspace_path / "exports"))
    dlg.reject()
