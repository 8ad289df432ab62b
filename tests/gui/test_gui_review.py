"""Review gallery user stories: pairs listed, A/R keys and buttons, bulk, filters, decisions persist."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from sqlalchemy import select

from segbalance.core.io import write_png
from segbalance.core.workspace import Workspace
from segbalance.db import models as m


def add_pairs(ws_path, n: int = 5) -> list[int]:
    """Insert a job and n pairs the way the generation engine does: files first, then rows."""
    ws = Workspace(ws_path, create=False)
    ids = []
    with ws.session() as s, s.begin():
        job = m.Job(kind="generate", params={"renderer": "copypaste"}, status="done", done=n, total=n)
        s.add(job)
        s.flush()
        for i in range(n):
            d = ws.subdir("pairs", str(job.id))
            lab = np.full((32, 64), 7, np.uint8)
            lab[10:20, 5:25] = 26 if i % 2 == 0 else 24
            img = np.full((32, 64, 3), 40 * i, np.uint8)
            write_png(d / f"gen_{i:06d}_gtFine_labelIds.png", lab)
            write_png(d / f"gen_{i:06d}_leftImg8bit.png", img, rgb=True)
            p = m.GeneratedPair(
                job_id=job.id, recipe_index=i, recipe={"strategy": "single"},
                strategy="single" if i < 3 else "multi",
                source_samples=[f"tiny_{i:06d}_000019"], classes_added=["car"] if i % 2 == 0 else ["person"],
                image_path=ws.rel(d / f"gen_{i:06d}_leftImg8bit.png"),
                label_path=ws.rel(d / f"gen_{i:06d}_gtFine_labelIds.png"),
                renderer="copypaste", quality=0.5 + i / 10, status="pending",
            )
            s.add(p)
            s.flush()
            ids.append(p.id)
    ws.close()
    return ids


def confirm_bulk(gallery, answer: str = "yes") -> str:
    """Answer the bulk confirmation the gallery opened (it is non-blocking); returns its text."""
    from PySide6.QtWidgets import QMessageBox

    box = gallery.confirm_box
    assert box is not None and box.isVisible()
    text = box.text()
    role = QMessageBox.ButtonRole.AcceptRole if answer == "yes" else QMessageBox.ButtonRole.RejectRole
    button = next(b for b in box.buttons() if box.buttonRole(b) == role)
    button.click()
    return text


def statuses(ws_path) -> dict[int, str]:
    ws = Workspace(ws_path, create=False)
    with ws.session() as s:
        out = {p.id: p.status for p in s.scalars(select(m.GeneratedPair))}
    ws.close()
    return out


def test_gallery_lists_pairs_with_details_and_thumbnails(qtbot, make_window, workspace_path):
    ids = add_pairs(workspace_path)
    w = make_window(workspace_path)
    g = w.gallery
    w.tabs.setCurrentWidget(g)
    assert g.shown_ids() == ids
    assert "5 of 5 pairs shown (5 pending)" == g.count_label.text()
    assert g.current_id() == ids[0]
    assert "Classes added: car" in g.detail.text() and "tiny_000000_000019" in g.pair_view.sources.text()
    assert "Quality: 0.500" in g.detail.text()
    qtbot.waitUntil(lambda: not g.pair_view.shown_pixmap().isNull(), timeout=5000)  # loaded off the UI thread
    assert g.pair_view.shown_pixmap().width() == 64  # the pair at full size, scaled by the view, not shrunk
    qtbot.waitUntil(lambda: g.model.items[0].key is not None and g.loader.get(g.model.items[0].key) is not None,
                    timeout=10_000)


def test_accept_reject_with_keys_and_buttons_persist_across_reopening(qtbot, make_window, workspace_path):
    ids = add_pairs(workspace_path)
    w = make_window(workspace_path)
    g = w.gallery
    w.tabs.setCurrentWidget(g)
    g.view.setFocus()
    qtbot.keyClick(g.view, Qt.Key.Key_A)  # accept the first, moves on to the second
    assert statuses(workspace_path)[ids[0]] == "accepted"  # written at once
    assert g.current_id() == ids[1]
    qtbot.keyClick(g.view, Qt.Key.Key_R)
    assert statuses(workspace_path)[ids[1]] == "rejected"
    g.select(ids[2])
    qtbot.mouseClick(g.reject_button, Qt.MouseButton.LeftButton)
    assert statuses(workspace_path)[ids[2]] == "rejected"
    w.close()
    w2 = make_window(workspace_path)
    g2 = w2.gallery
    got = {it.id: it.status for it in g2.model.items}
    assert got == {ids[0]: "accepted", ids[1]: "rejected", ids[2]: "rejected", ids[3]: "pending", ids[4]: "pending"}
    g2.status_box.setCurrentText("rejected")
    assert g2.shown_ids() == [ids[1], ids[2]]


def test_filters_and_bulk_actions(qtbot, make_window, workspace_path):
    ids = add_pairs(workspace_path)
    w = make_window(workspace_path)
    g = w.gallery
    g.class_box.setCurrentText("person")
    assert g.shown_ids() == [ids[1], ids[3]]
    g.class_box.setCurrentText("All")
    g.strategy_box.setCurrentText("multi")
    assert g.shown_ids() == [ids[3], ids[4]]
    qtbot.mouseClick(g.accept_all, Qt.MouseButton.LeftButton)
    confirm_bulk(g)
    assert [statuses(workspace_path)[i] for i in ids] == ["pending", "pending", "pending", "accepted", "accepted"]
    g.strategy_box.setCurrentText("All")
    g.view.selectAll()
    qtbot.mouseClick(g.reject_button, Qt.MouseButton.LeftButton)
    confirm_bulk(g)
    assert set(statuses(workspace_path).values()) == {"rejected"}
    assert "5 rejected" in g.count_label.text()


def test_double_click_opens_a_pair_in_the_viewer(qtbot, make_window, workspace_path):
    ids = add_pairs(workspace_path)
    w = make_window(workspace_path)
    g = w.gallery
    w.tabs.setCurrentWidget(g)
    g.select(ids[1])
    qtbot.waitUntil(lambda: g.view.visualRect(g.view.currentIndex()).isValid(), timeout=3000)
    rect = g.view.visualRect(g.view.currentIndex())
    with qtbot.waitSignal(g.pairActivated, timeout=3000):
        qtbot.mousePress(g.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # a double click
        qtbot.mouseRelease(g.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # starts with one
        qtbot.mouseDClick(g.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: w.viewer.label is not None, timeout=5000)
    assert w.tabs.currentWidget() is w.viewer
    assert w.viewer.title.text().startswith(f"pair #{ids[1]}")
    assert w.viewer.class_at(10, 15) == "person"  # pair 1 pasted a person at rows 10-19, cols 5-24
