"""Dataset readers, label sets and every bad input of the foundation issue (one line, exit 2)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segbalance.core.cli import main
from segbalance.core.datasets import CityscapesDataset, FolderDataset, open_dataset
from segbalance.core.datasets.labels import CITYSCAPES, LabelSet
from segbalance.core.errors import DataError, WorkspaceError
from segbalance.core.workspace import Workspace
from tests.helpers import make_cityscapes, make_folder

REPO = Path(__file__).resolve().parents[1]


def test_cityscapes_label_set_facts() -> None:
    assert len([c for c in CITYSCAPES.classes if c.id >= 0]) == 34
    assert CITYSCAPES.num_train_classes == 19
    assert [c.name for c in CITYSCAPES.train_classes][:3] == ["road", "sidewalk", "building"]
    assert CITYSCAPES.by_name["wall"].color == (102, 102, 156)
    assert CITYSCAPES.id_to_train_lut[33] == 18 and CITYSCAPES.id_to_train_lut[0] == 255
    assert CITYSCAPES.by_name["car"].has_instances and CITYSCAPES.by_name["car"].category == "vehicle"
    assert CITYSCAPES.by_name["license plate"].id == -1
    with pytest.raises(DataError, match="valid names: road, sidewalk"):
        CITYSCAPES.class_named("walll")


def test_custom_label_set_from_json(tmp_path: Path) -> None:
    p = tmp_path / "classes.json"
    p.write_text(json.dumps([{"id": 0, "name": "bg", "color": [0, 0, 0], "train_id": 255},
                             {"id": 5, "name": "leaf", "color": [0, 200, 0]}]))
    ls = LabelSet.from_json(p)
    assert ls.num_train_classes == 1 and ls.by_name["leaf"].train_id == 0
    assert ls.id_to_train_lut[5] == 0 and ls.id_to_train_lut[0] == 255
    p.write_text("{not json")
    with pytest.raises(DataError, match="classes.json: not valid JSON"):
        LabelSet.from_json(p)


def test_cityscapes_reader_real_sample(cityscapes_sample: Path) -> None:
    ds = open_dataset(cityscapes_sample)
    assert isinstance(ds, CityscapesDataset)
    refs = ds.samples("train")
    assert len(refs) == 8 and refs[0].id == "aachen_000000_000019"
    lab = ds.load_label(refs[0])
    inst = ds.load_instance(refs[0])
    img = ds.load_image(refs[0])
    assert lab.shape == (1024, 2048) and img.shape == (1024, 2048, 3) and inst is not None
    things = inst >= 1000
    assert np.array_equal(inst[things] // 1000, lab[things])


def test_train_ids_files_are_accepted(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "ds", n=2)
    for f in root.glob("gtFine/train/*/*_labelIds.png"):
        lab = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(f).replace("_labelIds", "_labelTrainIds"), CITYSCAPES.id_to_train_lut[lab])
        f.unlink()
    ds = open_dataset(root)
    ref = ds.samples("train")[0]
    assert ref.label_kind == "trainIds"
    lab = ds.load_label(ref)
    assert set(np.unique(lab).tolist()) <= {7, 11, 23, 26}


def test_folder_dataset_index_and_color_masks(tmp_path: Path) -> None:
    for color in (False, True):
        root = make_folder(tmp_path / f"f{color}", color=color)
        ds = open_dataset(root)
        assert isinstance(ds, FolderDataset) and ds.splits() == ["train"]
        lab = ds.load_label(ds.samples("train")[0])
        assert lab[0, 0] == 1 and lab[0, -1] == 2 and lab[-1, -1] == 0


def test_unknown_layout_lists_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="expected either Cityscapes"):
        open_dataset(tmp_path / "x")


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segbalance.core.cli", *args], capture_output=True, text=True,
                          cwd=REPO)


def _assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "%|" not in ln and "scanning" not in ln]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "damage, needles",
    [
        ("truncate_label", ["_gtFine_labelIds.png", "truncated"]),
        ("corrupt_label", ["_gtFine_labelIds.png", "not a PNG"]),
        ("truncate_image", ["_leftImg8bit.png", "truncated"]),
        ("drop_image", ["label has no image"]),
        ("drop_label", ["_leftImg8bit.png", "image has no label"]),
        ("size_mismatch", ["_leftImg8bit.png", "but its label"]),
        ("bad_ids", ["_gtFine_labelIds.png", "label ids [200]"]),
    ],
)
def test_bad_input_gives_one_line_error_exit_2(tmp_path: Path, damage: str, needles: list[str]) -> None:
    root = make_cityscapes(tmp_path / "ds", n=3)
    lab = sorted(root.glob("gtFine/train/*/*_labelIds.png"))[1]
    img = sorted(root.glob("leftImg8bit/train/*/*.png"))[1]
    if damage == "truncate_label":
        lab.write_bytes(lab.read_bytes()[:60])
    elif damage == "corrupt_label":
        lab.write_bytes(b"garbage" * 20)
    elif damage == "truncate_image":
        img.write_bytes(img.read_bytes()[:-20])
    elif damage == "drop_image":
        img.unlink()
    elif damage == "drop_label":
        lab.unlink()
        for f in lab.parent.glob(lab.name.replace("_labelIds", "_instanceIds")):
            f.unlink()
    elif damage == "size_mismatch":
        cv2.imwrite(str(img), np.zeros((10, 10, 3), np.uint8))
    elif damage == "bad_ids":
        a = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
        a[0, 0] = 200
        cv2.imwrite(str(lab), a)
    ws = tmp_path / "ws"
    r = _cli(["stats", str(root), "--workspace", str(ws), "--workers", "1"])
    _assert_one_line_error(r, *needles)
    # --debug shows the traceback instead
    r2 = _cli(["--debug", "stats", str(root), "--workers", "1"])
    assert r2.returncode != 0 and "Traceback" in r2.stderr


def test_skip_bad_reports_and_continues(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "ds", n=3)
    lab = sorted(root.glob("gtFine/train/*/*_labelIds.png"))[0]
    lab.write_bytes(lab.read_bytes()[:60])
    r = _cli(["stats", str(root), "--skip-bad", "--json", "--workers", "1"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_images"] == 2
    assert "skipped:" in r.stderr and lab.name in r.stderr


def test_unreadable_folder_and_missing_dataset(tmp_path: Path, monkeypatch, capsys) -> None:
    _assert_one_line_error(_cli(["stats", str(tmp_path / "nope")]), "nope", "not found")
    root = make_cityscapes(tmp_path / "ds", n=2)
    # CI runs as root, which ignores chmod; simulate the permission error the OS would give
    import segbalance.core.datasets.cityscapes as cs

    real = cs.os.listdir

    def deny(path):
        if str(path).endswith("testcity"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(cs.os, "listdir", deny)
    assert main(["stats", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "testcity" in err[0] and "Permission denied" in err[0]


def test_newer_schema_database_is_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.close()
    con = sqlite3.connect(tmp_path / "ws" / "segbalance.db")
    con.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(WorkspaceError, match="schema version 999, newer"):
        Workspace(tmp_path / "ws")
    root = make_cityscapes(tmp_path / "ds", n=2)
    _assert_one_line_error(_cli(["stats", str(root), "--workspace", str(tmp_path / "ws")]), "segbalance.db",
                           "newer")


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "segbalance.db").write_bytes(b"hello, not sqlite" * 100)
    with pytest.raises(WorkspaceError, match="not a segbalance database"):
        Workspace(tmp_path / "ws")


def test_workspace_database_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    ws.close()


def test_main_returns_2_without_command(capsys) -> None:
    assert main([]) == 2
