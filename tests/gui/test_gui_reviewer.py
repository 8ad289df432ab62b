"""A reviewer judges pairs (issue 18): a large zoomable view with image/label/overlay, A/R/U from it and from
the Viewer, source samples that open on click, a thumbnail-size slider, and failed pairs refused with the
CLI's own words."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import update

from segbalance.core.cli import main
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from segbalance.desktop_app.widgets.review_gallery import PairIdRole
from tests.gui.test_gui_review import add_pairs, statuses


def _review_tab(qtbot, make_window, workspace_path, dataset=None):
    ids = add_pairs(workspace_path)
    w = make_window(workspace_path)
    if dataset is not None:
        w.add_dataset(dataset)
        qtbot.waitUntil(lambda: w.state.dataset is not None, timeout=10_000)
    w.tabs.setCurrentWidget(w.gallery)
    g = w.gallery
    qtbot.waitUntil(lambda: not g.pair_view.shown_pixmap().isNull(), timeout=5000)
    return w, g, ids


def test_a_reviewer_zooms_into_a_pair_switches_views_and_decides_from_the_large_view(qtbot, make_window,
                                                                                      workspace_path):
    w, g, ids = _review_tab(qtbot, make_window, workspace_path)
    pv = g.pair_view
    assert pv.canvas.zoom() > 2  # a 64x32 pair fills the large view (fit), not a 145x72 thumbnail
    before = pv.canvas.zoom()
    pv.canvas.setFocus()
    qtbot.keyClick(pv.canvas, Qt.Key.Key_Plus)
    qtbot.keyClick(pv.canvas, Qt.Key.Key_Plus)
    assert pv.canvas.zoom() > before * 1.5
    qtbot.keyClick(pv.canvas, Qt.Key.Key_2)  # the label map alone
    assert pv.mode == "label" and pv.canvas.overlay_item.pixmap().isNull()
    qtbot.mouseClick(pv.mode_buttons["overlay"], Qt.MouseButton.LeftButton)
    assert pv.mode == "overlay" and not pv.canvas.overlay_item.pixmap().isNull()
    qtbot.keyClick(pv.canvas, Qt.Key.Key_A)  # accept from the large view
    assert statuses(workspace_path)[ids[0]] == "accepted" and g.current_id() == ids[1]
    qtbot.waitUntil(lambda: pv.item is not None and pv.item.id == ids[1], timeout=3000)
    qtbot.keyClick(pv.canvas, Qt.Key.Key_R)
    assert statuses(workspace_path)[ids[1]] == "rejected"


def test_accepting_a_failed_pair_is_refused_with_the_cli_message(qtbot, make_window, workspace_path, capsys):
    ids = add_pairs(workspace_path)
    with Workspace(workspace_path, create=False) as ws, ws.session() as s, s.begin():
        s.execute(update(m.GeneratedPair).where(m.GeneratedPair.id == ids[2]).values(status="failed"))
    assert main(["review", "--workspace", str(workspace_path), "--accept", str(ids[2])]) == 2
    cli_message = capsys.readouterr().err.strip().removeprefix("segbalance review: error: ")
    w = make_window(workspace_path)
    g = w.gallery
    g.select(ids[2])
    g.view.setFocus()
    qtbot.keyClick(g.view, Qt.Key.Key_A)
    assert statuses(workspace_path)[ids[2]] == "failed"  # nothing written
    assert g.last_refusal == cli_message and "failed" in cli_message
    assert ("Review", cli_message) in w.errors  # said to the user, not swallowed


def test_a_pair_opened_in_the_viewer_is_accepted_there_with_a(qtbot, make_window, workspace_path):
    w, g, ids = _review_tab(qtbot, make_window, workspace_path)
    w.show_pair(g.model.item(ids[3]))
    qtbot.waitUntil(lambda: w.viewer.label is not None, timeout=5000)
    assert w.viewer.review_buttons["accepted"].isVisibleTo(w.viewer)
    w.viewer.setFocus()
    qtbot.keyClick(w.viewer, Qt.Key.Key_A)
    assert statuses(workspace_path)[ids[3]] == "accepted"
    assert "accepted" in w.viewer.title.text()
    qtbot.mouseClick(w.viewer.review_buttons["pending"], Qt.MouseButton.LeftButton)
    assert statuses(workspace_path)[ids[3]] == "pending"


def test_clicking_a_source_sample_opens_it_in_the_viewer(qtbot, make_window, workspace_path, tiny_dataset):
    w, g, ids = _review_tab(qtbot, make_window, workspace_path, tiny_dataset)
    assert 'href="sample:tiny_000000_000019"' in g.pair_view.sources.text()
    g.pair_view.sources.linkActivated.emit("sample:tiny_000000_000019")
    assert w.tabs.currentWidget() is w.viewer
    qtbot.waitUntil(lambda: w.viewer.ref is not None and w.viewer.ref.id == "tiny_000000_000019", timeout=5000)
    assert w.viewer.pair_id is None and not w.viewer.review_buttons["accepted"].isVisibleTo(w.viewer)


def test_the_thumbnail_slider_makes_thumbnails_bigger(qtbot, make_window, workspace_path):
    w, g, ids = _review_tab(qtbot, make_window, workspace_path)
    small = g.view.iconSize().width()
    w.resize(1600, 900)
    g.view.parentWidget().setSizes([600, 1000])
    qtbot.waitUntil(lambda: g.view.viewport().width() > 344, timeout=3000)  # the column fits 320 px
    g.thumb_size.setValue(320)
    assert g.view.iconSize().width() == 320 > small
    qtbot.waitUntil(lambda: g.model.items[0].key is not None and g.loader.get(g.model.items[0].key) is not None,
                    timeout=10_000)
    assert g.loader.get(g.model.items[0].key).width() == 320


def test_large_thumbnails_fit_a_narrow_column_and_keep_the_current_pair(qtbot, make_window, workspace_path):
    """#41 item 6: the largest size in a narrow list column is drawn as wide as the column, not past its edge;
    re-fitting keeps the pair the reviewer is on."""
    w, g, ids = _review_tab(qtbot, make_window, workspace_path)
    g.view.setCurrentIndex(g.proxy.index(1, 0))
    current = g.view.currentIndex().data(PairIdRole)
    split = g.view.parentWidget()
    split.setSizes([260, max(200, split.width() - 260)])
    g.thumb_size.setValue(480)
    qtbot.waitUntil(lambda: g.view.iconSize().width() <= g.view.viewport().width(), timeout=3000)
    assert g.view.iconSize().width() < 480
    assert g.view.currentIndex().data(PairIdRole) == current
    split.setSizes([split.width() - 200, 200])  # a wide column takes the size asked for
    qtbot.waitUntil(lambda: g.view.iconSize().width() == 480 or g.view.viewport().width() < 504, timeout=3000)
