"""Edits are saved as workspace revisions: originals untouched, Cityscapes names, exportable, autosaved."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from segbalance.core.datasets import open_dataset
from segbalance.core.editing.label_edit import LabelEdit
from segbalance.core.editing.revisions import (
    EditSource,
    export_revisions,
    load_for_edit,
    load_working,
    revisions_of,
    save_revision,
    save_working,
)
from segbalance.core.io import read_label_png, write_png
from segbalance.core.workspace import Workspace
from segbalance.db import models as m

CAR, ROAD, SKY = 26, 7, 23


def make_cityscapes(root: Path, n: int = 2, size: tuple[int, int] = (48, 32)) -> Path:
    """A tiny dataset in the official layout (labelIds + instanceIds + images)."""
    w, h = size
    for i in range(n):
        stem = f"testcity_000000_{i:06d}"
        lab = np.full((h, w), ROAD, np.uint8)
        lab[: h // 3] = SKY
        inst = lab.astype(np.uint16)
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 1] = 40 * i
        write_png(root / "gtFine" / "train" / "testcity" / f"{stem}_gtFine_labelIds.png", lab)
        write_png(root / "gtFine" / "train" / "testcity" / f"{stem}_gtFine_instanceIds.png", inst)
        write_png(root / "leftImg8bit" / "train" / "testcity" / f"{stem}_leftImg8bit.png", img, rgb=True)
    return root


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _make_readonly(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            os.chmod(Path(dirpath) / f, stat.S_IREAD)
        os.chmod(dirpath, stat.S_IREAD | stat.S_IEXEC)


def _make_writable(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, stat.S_IRWXU)
        for f in files:
            os.chmod(Path(dirpath) / f, stat.S_IRUSR | stat.S_IWUSR)


@pytest.fixture
def readonly_dataset(tmp_path):
    root = make_cityscapes(tmp_path / "ds")
    _make_readonly(root)
    yield root
    _make_writable(root)


def test_save_creates_revision_readable_by_dataset_reader_and_keeps_original(tmp_path, readonly_dataset):
    ds = open_dataset(readonly_dataset)
    ref = ds.samples("train")[0]
    before = _digest(ref.label_path)
    ws = Workspace(tmp_path / "ws")
    src = EditSource.from_sample(ws, ds, ref)
    label, inst, origin = load_for_edit(ws, src)
    assert origin == "original"
    ed = LabelEdit(label, ds.label_set, inst)
    ed.fill_rect(CAR, (5, 20), (15, 28))
    rev = save_revision(ws, src, ed.label, ed.instance, note="added a car")

    assert _digest(ref.label_path) == before  # original untouched (and the dataset is read-only)
    path = ws.abs(rev.label_path)
    assert path.name.endswith("_gtFine_labelIds.png") and path.is_relative_to(ws.path)
    assert np.array_equal(read_label_png(path), ed.label)
    with ws.session() as s:
        row = s.get(m.Revision, rev.id)
        assert row.changed_pixels == 11 * 9 and row.sample_id == src.sample_id
        assert row.pixel_counts[str(CAR)] == 99

    out = export_revisions(ws, tmp_path / "export")
    exported = open_dataset(out)
    eref = exported.sample(ref.id, "train")
    assert np.array_equal(exported.load_label(eref), ed.label)
    inst_back = exported.load_instance(eref)
    assert np.unique(inst_back[20:29, 5:16]).tolist() == [CAR * 1000]

    # reopening starts from the latest revision; a second save numbers 2
    label2, _inst2, origin2 = load_for_edit(ws, src)
    assert origin2 == "revision 1" and np.array_equal(label2, ed.label)
    save_revision(ws, src, label2, None)
    assert [r.number for r in revisions_of(ws, src.key)] == [1, 2]
    ws.close()


def test_autosave_restores_the_last_stroke(tmp_path):
    root = make_cityscapes(tmp_path / "ds", n=1)
    ds = open_dataset(root)
    ws = Workspace(tmp_path / "ws")
    src = EditSource.from_sample(ws, ds, ds.samples()[0])
    label, inst, _ = load_for_edit(ws, src)
    ed = LabelEdit(label, ds.label_set, inst)
    for i in range(3):
        ed.brush(CAR, [(5 + 10 * i, 25)], size=3)
        save_working(ws, src, ed.label, ed.instance)
    # "crash": a new session loads the autosave
    lab2, inst2, origin = load_for_edit(ws, src)
    assert origin == "autosave"
    assert np.array_equal(lab2, ed.label) and np.array_equal(inst2, ed.instance)
    save_revision(ws, src, lab2, inst2)
    assert load_working(ws, src) is None  # the autosave is consumed by the save
    ws.close()


def test_file_source_names_and_export(tmp_path):
    p = tmp_path / "frankfurt_000000_000294_gtFine_labelIds.png"
    write_png(p, np.full((8, 8), ROAD, np.uint8))
    src = EditSource.from_file(p)
    assert src.stem == "frankfurt_000000_000294" and src.key.startswith("file:")
