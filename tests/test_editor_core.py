"""Headless label-map editing: exact pixels, undo/redo, compact history, instance consistency."""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path as MplPath

from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.editing.label_edit import LabelEdit, footprint

ROAD, CAR, SKY, PERSON = 7, 26, 23, 24


def _map(h: int = 64, w: int = 96) -> np.ndarray:
    lab = np.full((h, w), ROAD, dtype=np.uint8)
    lab[: h // 3] = SKY
    return lab


def test_brush_dab_paints_exactly_the_disk():
    ed = LabelEdit(_map(), CITYSCAPES)
    before = ed.label.copy()
    ed.brush(CAR, [(40, 30)], size=9, shape="round")
    yy, xx = np.mgrid[: before.shape[0], : before.shape[1]]
    disk = (xx - 40) ** 2 + (yy - 30) ** 2 <= 4.5**2
    expected = before.copy()
    expected[disk] = CAR
    assert np.array_equal(ed.label, expected)
    assert set(np.unique(ed.label)) <= {ROAD, SKY, CAR}  # no blended ids


def test_square_brush_line_is_swept_square_and_nothing_else():
    ed = LabelEdit(_map(), CITYSCAPES)
    before = ed.label.copy()
    ed.brush(CAR, [(10, 40), (50, 40)], size=5, shape="square")
    expected = before.copy()
    expected[38:43, 8:53] = CAR  # a horizontal drag of a 5x5 stamp
    assert np.array_equal(ed.label, expected)


def test_stroke_through_several_segments_is_one_undo_step():
    ed = LabelEdit(_map(), CITYSCAPES)
    before = ed.label.copy()
    ed.begin_stroke(CAR)
    from segbalance.core.editing.label_edit import stroke_mask

    for a, b in [((5, 5), (30, 20)), ((30, 20), (60, 50)), ((60, 50), (90, 60))]:
        ed.paint(stroke_mask([a, b], 7, "round", ed.shape))
    ed.end_stroke()
    assert len(ed.undo_stack) == 1
    ed.undo()
    assert np.array_equal(ed.label, before)


def test_stamp_near_border_is_clipped():
    ed = LabelEdit(_map(), CITYSCAPES)
    ed.brush(CAR, [(0, 0)], size=5, shape="square")
    assert (ed.label[:3, :3] == CAR).all() and ed.label[3, 0] != CAR
    assert footprint(1).sum() == 1


def test_flood_fill_changes_exactly_the_connected_region():
    lab = _map()
    lab[30:40, 20:30] = CAR  # island of car inside road
    lab[50:55, 70:80] = CAR  # another car island, not connected
    ed = LabelEdit(lab, CITYSCAPES)
    ed.flood_fill(PERSON, 25, 35)
    expected = lab.copy()
    expected[30:40, 20:30] = PERSON
    assert np.array_equal(ed.label, expected)


def test_flood_fill_is_4_connected():
    lab = np.full((10, 10), ROAD, np.uint8)
    lab[2, 2] = CAR
    lab[3, 3] = CAR  # diagonal neighbour only
    ed = LabelEdit(lab, CITYSCAPES)
    ed.flood_fill(PERSON, 2, 2)
    assert ed.label[2, 2] == PERSON and ed.label[3, 3] == CAR


def test_polygon_fills_interior_with_exact_id_only():
    ed = LabelEdit(_map(), CITYSCAPES)
    before = ed.label.copy()
    poly = [(10, 10), (70, 15), (40, 55)]
    ed.fill_polygon(CAR, poly)
    changed = ed.label != before
    assert set(np.unique(ed.label[changed])) == {CAR}
    yy, xx = np.mgrid[: before.shape[0], : before.shape[1]]
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    path = MplPath(poly)
    strictly_inside = path.contains_points(pts, radius=-1.0).reshape(before.shape)
    loosely_inside = path.contains_points(pts, radius=2.0).reshape(before.shape) | path.contains_points(
        pts, radius=-2.0
    ).reshape(before.shape)
    assert (ed.label[strictly_inside] == CAR).all()
    painted = ed.label == CAR
    assert not (painted & ~loosely_inside).any()  # nothing outside the outline (1 px boundary tolerance)


def test_rectangle_inclusive_corners():
    ed = LabelEdit(_map(), CITYSCAPES)
    before = ed.label.copy()
    ed.fill_rect(CAR, (30, 40), (20, 35))
    expected = before.copy()
    expected[35:41, 20:31] = CAR
    assert np.array_equal(ed.label, expected)


def test_only_over_constraint_and_eraser():
    ed = LabelEdit(_map(), CITYSCAPES)
    before = ed.label.copy()
    ed.only_over = ROAD
    ed.fill_rect(CAR, (0, 0), (95, 63))
    assert np.array_equal(ed.label == CAR, before == ROAD)
    ed.only_over = None
    ed.erase([(5, 5)], size=3, shape="square")
    assert (ed.label[4:7, 4:7] == CITYSCAPES.ignore_id).all()


def test_undo_redo_byte_identical():
    rng = np.random.default_rng(0)
    ed = LabelEdit(_map(), CITYSCAPES)
    snaps = [(ed.label.copy(), ed.instance.copy())]
    for i in range(30):
        pts = [tuple(int(v) for v in rng.integers(0, 60, 2)) for _ in range(3)]
        cid = [CAR, PERSON, SKY, ROAD][i % 4]
        if i % 5 == 4:
            ed.flood_fill(cid, *pts[0])
        else:
            ed.brush(cid, pts, size=int(rng.integers(1, 9)), shape="round" if i % 2 else "square")
        snaps.append((ed.label.copy(), ed.instance.copy()))
    snaps = [s for i, s in enumerate(snaps) if i == 0 or not np.array_equal(s[0], snaps[i - 1][0])]
    n = len(ed.undo_stack)
    for _ in range(n):
        ed.undo()
    assert ed.label.tobytes() == snaps[0][0].tobytes() and ed.instance.tobytes() == snaps[0][1].tobytes()
    for _ in range(n):
        ed.redo()
    assert ed.label.tobytes() == snaps[-1][0].tobytes() and ed.instance.tobytes() == snaps[-1][1].tobytes()


def test_painted_thing_gets_fresh_instance_id_and_stuff_gets_class_id():
    lab = _map()
    inst = lab.astype(np.int32)
    lab[40:50, 10:20] = CAR
    inst[40:50, 10:20] = CAR * 1000 + 3
    ed = LabelEdit(lab, CITYSCAPES, inst)
    ed.fill_rect(CAR, (50, 40), (60, 50))
    new_ids = np.unique(ed.instance[40:51, 50:61])
    assert new_ids.tolist() == [CAR * 1000 + 4]
    ed.fill_rect(CAR, (70, 40), (80, 50))
    assert np.unique(ed.instance[40:51, 70:81]).tolist() == [CAR * 1000 + 5]
    ed.fill_rect(SKY, (0, 55), (10, 60))
    assert np.unique(ed.instance[55:61, 0:11]).tolist() == [SKY]
    ed.undo()
    assert (ed.instance[55:61, 0:11] != SKY).any()


def test_paste_layer_scaled():
    ed = LabelEdit(_map(), CITYSCAPES)
    mask = np.zeros((4, 6), bool)
    mask[1:3, :] = True
    ed.paste_mask(PERSON, mask, x=10, y=40, scale=2.0)
    assert np.array_equal(np.argwhere(ed.label == PERSON).min(0), [42, 10])
    assert (ed.label == PERSON).sum() == 4 * 12
    assert np.unique(ed.instance[ed.label == PERSON]).tolist() == [PERSON * 1000]


def test_100_strokes_on_full_size_map_stay_under_50mb_of_history():
    h, w = 1024, 2048
    lab = np.full((h, w), ROAD, np.uint8)
    lab[: h // 3] = SKY
    ed = LabelEdit(lab, CITYSCAPES, max_undo=200)
    rng = np.random.default_rng(1)
    for i in range(100):  # drags of ~6 x 150 px with a 40 px brush, anywhere on the map
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h)))]
        for _ in range(5):
            dx, dy = rng.integers(-150, 151, 2)
            pts.append((int(np.clip(pts[-1][0] + dx, 0, w - 1)), int(np.clip(pts[-1][1] + dy, 0, h - 1))))
        ed.brush([CAR, PERSON, 33][i % 3], pts, size=40, shape="round")  # ids absent from the map
    assert len(ed.undo_stack) == 100
    assert ed.undo_nbytes() < 50 * 2**20
    for _ in range(100):
        ed.undo()
    assert np.array_equal(ed.label, lab)


def test_editor_engine_modules_do_not_import_qt(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, segbalance.core.editing.label_edit, segbalance.core.editing.revisions,"
        " segbalance.core.jobs.manual, segbalance.core.runs.queries;"
        "bad=[m for m in sys.modules if m.startswith(('PySide6','pyqtgraph','shiboken6'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
