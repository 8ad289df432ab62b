"""State that follows the user (issue 41, items 9-11): preset targets kept across relaunch, a workspace switch
that leaves nothing of the last one on screen, a New-workspace dialog that takes a new folder, and the app's
own finished job never called "running elsewhere"."""

from __future__ import annotations

import os

from segbalance.desktop_app.widgets.new_workspace_dialog import NewWorkspaceDialog
from tests.gui.conftest import wait_for_stats


def test_targets_set_only_through_apply_preset_are_kept_across_relaunch(qtbot, make_window, workspace_path,
                                                                       tiny_dataset):
    w = make_window(workspace_path)
    w.add_dataset(tiny_dataset)
    wait_for_stats(qtbot, w)
    w.balance.preset_box.setCurrentText("raise-rare")
    w.balance.apply_selected_preset()
    targets = w.balance.targets()
    assert targets
    w.close()
    w2 = make_window(workspace_path)
    wait_for_stats(qtbot, w2)
    qtbot.waitUntil(lambda: w2.balance.targets() != {}, timeout=5000)
    assert w2.balance.targets() == targets
    assert w2.state.target == targets  # Plan has its targets: it will not ask to "Set a target share"


def test_switching_workspaces_leaves_nothing_of_the_last_one_on_screen(qtbot, make_window, workspace_path,
                                                                      tmp_path):
    w = make_window(workspace_path)
    w.balance.summary.setText("12 recipes: recon 12")
    w.generation.progress.setRange(0, 50)
    w.generation.progress.setValue(50)
    w.generation.progress.setFormat("%v / %m pairs (%p%)")
    w.generation.rate_label.setText("done")
    w.state.planChanged.emit(None)
    assert w.open_workspace(tmp_path / "other", create=True)
    assert w.balance.summary.text() == "No plan yet"
    assert w.generation.progress.value() == 0 and w.generation.progress.text() == "no job running"
    assert w.generation.rate_label.text().strip() == ""


def test_the_new_workspace_dialog_takes_a_new_folder_beside_the_current_workspace(qtbot, make_window,
                                                                                 workspace_path):
    w = make_window(workspace_path)
    dlg = w.new_workspace_dialog()
    assert isinstance(dlg, NewWorkspaceDialog) and dlg.isVisible()
    assert dlg.parent_edit.text() == str(workspace_path.parent)  # beside the current one, not inside it
    dlg.name_edit.setText("fresh")
    assert dlg.create_button.isEnabled() and "Creates the workspace" in dlg.target.text()
    dlg.create_button.click()
    assert w.state.workspace is not None and w.state.workspace.path == workspace_path.parent / "fresh"
    dlg2 = w.new_workspace_dialog()
    dlg2.name_edit.setText("fresh")  # taken: refused before anything happens
    assert not dlg2.create_button.isEnabled() and "already a workspace" in dlg2.target.text()
    dlg2.reject()


def test_the_apps_own_finished_job_is_not_running_elsewhere(qtbot, make_window, workspace_path):
    w = make_window(workspace_path)
    e = w.state.start_job("Train GAN (tiny)", lambda: None, 424242)
    w.state.end_job(e, "finished")
    # a poll taken a moment before the job ended still says running: it is ours, not another process's
    w._db_jobs_polled([{"id": 1, "kind": "generate", "pid": os.getpid(), "done": 5, "total": 5},
                       {"id": 2, "kind": "train-gan", "pid": 424242, "done": 9, "total": 9},
                       {"id": 3, "kind": "generate", "pid": 1, "done": 1, "total": 9}])
    assert w.job_list.elsewhere.text() == "Other process: job #3 generate 1/9"


def test_a_narrow_status_line_drops_whole_fields_never_cuts_one(qtbot):
    from segbalance.desktop_app.widgets.elided_label import ElidedLabel

    lab = ElidedLabel("")
    qtbot.addWidget(lab)
    lab.field_separator = "  |  "
    lab.setText("aachen_000001 (dataset)  |  tool brush  |  paint road  |  round 12px  |  zoom 100%")
    width = lab.fontMetrics().horizontalAdvance("aachen_000001 (dataset)  |  tool brush  |  pai")
    shown = lab.shown_text(width)
    assert shown == "aachen_000001 (dataset)  |  tool brush  |  …"


def test_the_render_pane_body_agrees_with_its_header_once_a_renderer_is_loaded(qtbot):
    import numpy as np

    from segbalance.core.datasets.labels import CITYSCAPES
    from segbalance.desktop_app.editor.render_pane import RenderPane

    class Fake:
        label_nc = 35

        def render(self, label, instance=None):
            return np.zeros((*label.shape, 3), np.uint8)

    pane = RenderPane(CITYSCAPES)
    qtbot.addWidget(pane)
    assert "Load a pix2pixHD checkpoint" in pane.view.text()
    assert pane.set_renderer(Fake(), "fake")
    assert pane.title.text().startswith("Renderer: fake") and "Load a pix2pixHD checkpoint" not in pane.view.text()
