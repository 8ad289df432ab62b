"""Issue 40 item 2: the app and CLI processes beside it see one workspace database at all times.

The app used to lose its SQLite locks as soon as a file dialog listed the workspace folder: Qt sniffed the type
of segbalance.db, -wal and -shm by opening and closing them, and closing any descriptor of a file drops the
process's POSIX locks on it. The next CLI command then believed it was alone and deleted the app's WAL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


def _answer_next_file_dialog(path: Path, look_ms: int = 1500) -> list[str]:
    """Choose `path` in the next file dialog, after letting it list its folder for `look_ms` like a user would."""
    seen: list[str] = []

    def poll(waited: int = 0) -> None:
        dlg = next((w for w in QApplication.topLevelWidgets() if isinstance(w, QFileDialog) and w.isVisible()),
                   None)
        if dlg is None or waited < look_ms:
            QTimer.singleShot(50, lambda: poll(waited + (50 if dlg is not None else 0)))
            return
        seen.append(dlg.directory().absolutePath())
        dlg.setDirectory(str(path))  # nothing typed: a folder dialog answers the folder it shows
        dlg.accept()

    QTimer.singleShot(0, poll)
    return seen


def _wal_fds(ws: Path) -> list[str]:
    """Where this process's descriptors of the workspace's -wal/-shm point ("... (deleted)" once unlinked)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(ws / "segbalance.db-")):
            out.append(target)
    return out


def _held_locks(db: Path) -> list[str]:
    ino = os.stat(db).st_ino
    return [ln for ln in Path("/proc/locks").read_text().splitlines()
            if f":{ino} " in ln and ln.split()[4] == str(os.getpid())]


def _cli(*argv: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "segbalance.core.cli", *argv], capture_output=True, text=True,
                       timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.mark.timeout(240)
def test_new_workspace_in_the_app_and_the_cli_share_one_database(qtbot, make_window, tmp_path, sample_dataset):
    from tests.gui.conftest import wait_for_stats

    ws = tmp_path / "new_ws"
    ws.mkdir()  # File > New workspace on an empty folder
    w = make_window(None)
    assert w.state.workspace is None
    dlg = w.new_workspace_dialog()  # a folder and a name: the empty folder made above
    dlg.parent_edit.setText(str(tmp_path))
    dlg.name_edit.setText(ws.name)
    assert "Uses the empty folder" in dlg.target.text()
    dlg.create_button.click()
    assert w.state.workspace is not None and w.state.workspace.path == ws.resolve(), w.errors
    seen = _answer_next_file_dialog(sample_dataset)
    w.add_dataset_dialog()  # this dialog opens in the workspace and lists segbalance.db, -wal and -shm
    assert seen == [str(ws.resolve())]
    wait_for_stats(qtbot, w)
    b, g = w.balance, w.generation
    b.set_target("car", min(0.5, 2 * b.current_shares()["car"]))
    b.budget.setValue(3)
    with qtbot.waitSignal(b.planned, timeout=60_000):
        b.start_plan()
    g.renderer.setCurrentText("copypaste")
    with qtbot.waitSignal(g.jobFinished, timeout=120_000) as done:
        g.start()
    assert done.args == ["done"], g.error_label.text()
    db = ws / "segbalance.db"
    assert _held_locks(db), "the app holds no lock on its database"

    # a CLI process beside the app: it must not take itself for the last user and delete the app's WAL
    r = _cli("jobs", "--workspace", str(ws))
    assert r.returncode == 0 and "generate" in r.stdout, r.stderr
    fds = _wal_fds(ws)
    assert fds and not any(t.endswith("(deleted)") for t in fds), fds
    assert (ws / "segbalance.db-wal").exists() and _held_locks(db)

    # a decision in the app is seen by the CLI at once, and the reverse
    gal = w.gallery
    gal.refresh()
    qtbot.waitUntil(lambda: gal.model.rowCount() == 3, timeout=10_000)
    w.tabs.setCurrentWidget(gal)
    gal.view.setFocus()
    gal.view.setCurrentIndex(gal.model.index(0))
    accepted = gal.model.items[0].id
    qtbot.keyClick(gal.view, Qt.Key.Key_A)
    r = _cli("pairs", "--workspace", str(ws), "--status", "accepted", "--json")
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)] == [accepted]
    rejected = gal.model.items[1].id
    r = _cli("review", "--workspace", str(ws), "--reject", str(rejected))
    assert r.returncode == 0, r.stderr
    from segbalance.desktop_app.widgets.review_gallery import load_pairs

    statuses = {p.id: p.status for p in load_pairs(w.state.workspace)}
    assert statuses[accepted] == "accepted" and statuses[rejected] == "rejected"

    # and the app keeps working: a second generation (another seed) writes through the same database
    with qtbot.waitSignal(b.planned, timeout=60_000):
        b.budget.setValue(2)
        b.start_plan()
    with qtbot.waitSignal(g.jobFinished, timeout=120_000) as done:
        g.start()
    assert done.args == ["done"], g.error_label.text()
    r = _cli("pairs", "--workspace", str(ws), "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 5, r.stdout
    assert not w.errors, w.errors
    assert not any(t.endswith("(deleted)") for t in _wal_fds(ws)) and _held_locks(db)
