"""Main window user stories: workspaces, datasets, bad input, persistence, status bar, About."""

from __future__ import annotations

import shutil
import sqlite3

from PySide6.QtWidgets import QMessageBox

from segbalance.desktop_app.settings import Settings
from tests.gui.conftest import make_tiny_cityscapes, wait_for_stats


def test_open_workspace_and_add_dataset_shows_samples(qtbot, window, tiny_dataset):
    assert window.state.workspace is not None
    assert str(window.state.workspace.path) in window.windowTitle()
    window.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, window)
    assert window.browser.visible_count() == 8
    assert window.dataset_box.count() == 1 and "tiny_cityscapes" in window.dataset_box.currentText()
    assert any("dataset" in line for line in window.log_view.toPlainText().splitlines())


def test_bad_dataset_folder_shows_dialog_not_traceback(qtbot, window, tmp_path):
    bad = tmp_path / "not_a_dataset"
    bad.mkdir()
    (bad / "readme.txt").write_text("hello")
    window.add_dataset(bad)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    title, msg = window.errors[-1]
    assert title == "Add dataset" and "unrecognised dataset layout" in msg and str(bad) in msg
    assert window.findChild(QMessageBox, "error_box") is not None
    assert window.state.dataset is None and window.isVisible()


def test_a_plain_folder_is_offered_to_become_a_workspace_and_nothing_is_made_unasked(qtbot, make_window, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    w = make_window()
    assert not w.open_workspace(plain)
    box = w.create_box
    assert box.isVisible() and "is not a segbalance workspace yet" in box.text() and "left as they are" in box.text()
    assert w.state.workspace is None and w.isVisible()
    assert not (plain / "segbalance.db").exists()  # nothing created behind the user's back
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert not (plain / "segbalance.db").exists() and w.state.workspace is None
    w.open_workspace(plain)
    create = next(b for b in w.create_box.buttons() if w.create_box.buttonRole(b) == QMessageBox.ButtonRole.AcceptRole)
    create.click()
    assert w.state.workspace is not None and w.state.workspace.path == plain
    assert (plain / "notes.txt").read_text() == "mine"


def test_newer_schema_workspace_is_refused_with_clear_message(qtbot, make_window, workspace_path):
    con = sqlite3.connect(workspace_path / "segbalance.db")
    con.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    con.commit()
    con.close()
    w = make_window()
    assert not w.open_workspace(workspace_path)
    assert "newer than this segbalance supports" in w.errors[-1][1]
    con = sqlite3.connect(workspace_path / "segbalance.db")
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "999"
    con.close()


def test_vanished_dataset_path_is_reported_and_db_kept(qtbot, make_window, workspace_path, tmp_path):
    data = tmp_path / "moving"
    make_tiny_cityscapes(data, {"train": 2})
    w = make_window(workspace_path)
    w.add_dataset(data)
    wait_for_stats(qtbot, w)
    w.close()
    shutil.rmtree(data)
    w2 = make_window(workspace_path)
    qtbot.waitUntil(lambda: bool(w2.errors), timeout=5000)
    assert "dataset folder not found" in w2.errors[-1][1] and str(data) in w2.errors[-1][1]
    assert w2.dataset_box.count() == 1  # the dataset row is still there
    assert w2.browser.visible_count() == 0 and w2.isVisible()


def test_last_workspace_and_layout_are_restored(qtbot, make_window, workspace_path, isolated_settings):
    w = make_window(workspace_path)
    w.docks.log.hide()
    w.resize(1250, 800)
    size = w.size()  # (the docks' minimum sizes may have enlarged it)
    w.close()
    s = Settings(isolated_settings)
    assert s.last_workspace() == str(workspace_path)
    assert s.recent_workspaces() == [str(workspace_path)]
    w2 = make_window()  # no workspace given: reopens the last one
    assert w2.state.workspace is not None and w2.state.workspace.path == workspace_path
    assert not w2.docks.log.isVisible()
    # the offscreen platform clamps restored geometry unpredictably, so check what was saved, not the pixels
    geometry, state = Settings(isolated_settings).window_state()
    assert geometry is not None and state is not None and len(bytes(geometry)) > 0
    assert size.width() <= 1400


def test_status_bar_shows_device_and_about_shows_versions(qtbot, window):
    qtbot.waitUntil(lambda: window.status.device != "", timeout=30_000)
    assert window.status.device.startswith(("CPU", "CUDA"))
    assert window.status.device in window.status.device_label.text()
    qtbot.waitUntil(lambda: window.generation.device.count() >= 2, timeout=5000)
    assert [window.generation.device.itemText(i) for i in range(2)] == ["auto", "cpu"]
    text = window.about_text()
    import torch
    from PySide6.QtCore import qVersion

    assert f"Qt {qVersion()}" in text and f"torch {torch.__version__}" in text and window.status.device in text


def test_shortcuts_exist_for_main_actions(window):
    a = window.actions
    for action in (a.open_workspace, a.new_workspace, a.add_dataset, a.next_sample, a.prev_sample, a.quit):
        assert not action.shortcut().isEmpty(), action.text()


def test_extra_panels_register_through_factories(qtbot, make_window, workspace_path, tiny_dataset, monkeypatch):
    """Issue 8's editor/training panels plug in this way: a factory gets the AppState and returns a PanelSpec."""
    from PySide6.QtWidgets import QLabel

    from segbalance.desktop_app import main_window
    from segbalance.desktop_app.widgets.panel_host import PanelHost

    built = []

    class FakeEditor(QLabel):
        opened = []

        def open_sample(self, ds, ref):
            self.opened.append(ref.id)

    def build(st):
        if st.workspace is None or st.dataset is None:
            return None
        built.append(st.dataset.root)
        return FakeEditor(f"editing {st.dataset.root.name}")

    def factory(state):
        host = PanelHost(state, build, lambda st: (st.workspace, st.dataset), "open a dataset first")
        return main_window.PanelSpec("Fake editor", host, "tab")

    def broken(state):
        raise RuntimeError("boom")

    monkeypatch.setattr(main_window, "PANEL_FACTORIES", [factory, broken])
    monkeypatch.setattr(main_window, "_default_panel_factories", lambda: [])  # only the fake editor
    w = make_window(workspace_path)
    tab = next(i for i in range(w.tabs.count()) if w.tabs.tabText(i) == "Fake editor")
    host = w.tabs.widget(tab)
    assert host.inner is None and host.message.text() == "open a dataset first"
    assert "panel broken not added: RuntimeError: boom" in w.log_view.toPlainText()
    w.add_dataset(tiny_dataset)
    qtbot.waitUntil(lambda: host.inner is not None, timeout=10_000)
    assert host.inner.text() == f"editing {tiny_dataset.name}" and not host.message.isVisible()
    assert built == [tiny_dataset.resolve()]
    qtbot.waitUntil(lambda: w.browser.current_ref() is not None, timeout=5000)
    w.browser.step(1)
    w.actions.edit_sample.trigger()  # Ctrl+L: the current sample goes to the editor tab
    assert host.inner.opened == ["tiny_000001_000019"] and w.tabs.currentWidget() is host


def test_preferences_persist_between_runs(qtbot, make_window, workspace_path):
    w = make_window(workspace_path)
    w.viewer.opacity.setValue(80)
    w.histogram.mode.setCurrentText("Image frequency")
    w.histogram.log.setChecked(True)
    w.balance.budget.setValue(123)
    w.close()
    w2 = make_window()
    assert w2.viewer.opacity.value() == 80 and abs(w2.viewer.canvas.overlay_item.opacity() - 0.8) < 1e-6
    assert w2.histogram.mode.currentText() == "Image frequency" and w2.histogram.log.isChecked()
    assert w2.balance.budget.value() == 123


def test_open_recent_menu_reopens_a_workspace(qtbot, make_window, workspace_path, tmp_path):
    from segbalance.core.workspace import Workspace

    other = tmp_path / "other_ws"
    Workspace(other).close()
    w = make_window(workspace_path)
    w.open_workspace(other)
    w.menus.recent.aboutToShow.emit()
    entries = [a.text() for a in w.menus.recent.actions()]
    assert entries == [str(other.resolve()), str(workspace_path)]
    w.menus.recent.actions()[1].trigger()
    assert w.state.workspace.path == workspace_path


def test_a_corrupt_label_is_reported_and_the_rest_measured(qtbot, window, tmp_path):
    data = tmp_path / "one_bad"
    make_tiny_cityscapes(data, {"train": 4})
    bad = next((data / "gtFine" / "train" / "tiny").glob("*000002*_labelIds.png"))
    bad.write_bytes(bad.read_bytes()[:60])  # truncated file
    window.add_dataset(data)
    wait_for_stats(qtbot, window)
    assert window.state.stats.n_images == 3
    title, msg = window.errors[-1]
    assert title == "Class statistics" and str(bad) in msg and "1 bad sample left out" in msg


def test_label_editor_and_training_tabs_and_ctrl_l(qtbot, make_window, workspace_path, tiny_dataset):
    """Issue 8's panels are tabs of the main window; Ctrl+L opens the browser's sample in the editor."""
    w = make_window(workspace_path)
    titles = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert titles == ["Viewer", "Review", "Label editor", "Training"]
    editor_host = w.tabs.widget(2)
    assert editor_host.inner is None  # needs a dataset first
    assert type(w.tabs.widget(3).inner).__name__ == "TrainingPanel"
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    qtbot.waitUntil(lambda: editor_host.inner is not None and w.browser.current_ref() is not None, timeout=10_000)
    w.browser.step(2)
    assert w.edit_current_sample()
    assert w.tabs.currentIndex() == 2
    assert editor_host.inner.source is not None and editor_host.inner.source.stem == "tiny_000002_000019"
