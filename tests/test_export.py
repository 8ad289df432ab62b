"""Exports: exactly what they report after a re-export, clean re-runs after interruption, mmseg and hf layouts."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from segbalance.core.cli import main
from segbalance.core.datasets import open_dataset
from segbalance.core.datasets.stats import dataset_stats, pixel_counts
from segbalance.core.errors import Cancelled, SegbalanceError
from segbalance.core.export.formats import STAGING_MARK, export_dataset, staging_paths
from segbalance.core.io import read_label_png, read_png
from segbalance.core.jobs.generate import run_generate
from segbalance.core.jobs.pairs import list_pairs
from segbalance.core.workspace import Workspace
from tests.test_jobs import _plan


@pytest.fixture()
def generated(tmp_path, sample_dataset):
    """The sample dataset, a workspace with 6 generated (pending) pairs, and their rows."""
    root, ws = sample_dataset, tmp_path / "ws"
    plan = _plan(root, ws, tmp_path / "plan.json")
    run_generate(ws, root, plan, "copypaste")
    with Workspace(ws) as w:
        pairs = sorted(list_pairs(w), key=lambda p: p["recipe_index"])  # the export's order
    assert len(pairs) == 6
    return root, ws, pairs


def _export(ws, root, out, *extra) -> int:
    return main(["export", "--workspace", str(ws), "--dataset", str(root), "--out", str(out), *extra])


def test_reexport_after_reject_leaves_exactly_what_it_reports(generated, tmp_path, capsys):
    """Issue 15 item 1: a pair rejected after an export must not survive the next export into the same folder."""
    root, ws, pairs = generated
    out = tmp_path / "E"
    assert _export(ws, root, out) == 0
    assert len([s for s in open_dataset(out).samples("train") if s.id.startswith("job")]) == 6
    assert main(["review", "--workspace", str(ws), "--reject", str(pairs[0]["id"])]) == 0
    assert _export(ws, root, out) == 0
    exp = open_dataset(out)
    gen = sorted(s.id for s in exp.samples("train") if s.id.startswith("job"))
    rejected_stem = Path(pairs[0]["label"]).name.replace("_gtFine_labelIds.png", "")
    assert rejected_stem not in gen and len(gen) == 5
    assert not list(out.rglob(f"{rejected_stem}*")), "the rejected pair's files stay out of the folder"
    # stats of the export = originals + the 5 pairs still included
    orig = dataset_stats(open_dataset(root), "train", workers=1)
    added = sum(pixel_counts(read_label_png(ws / p["label"])) for p in pairs[1:])
    assert np.array_equal(dataset_stats(exp, "train", workers=1).pixels, orig.pixels + added)
    prov = [json.loads(x) for x in (out / "provenance.jsonl").read_text().splitlines()]
    assert [p["pair_id"] for p in prov] == [p["id"] for p in pairs[1:]]
    assert not any(p.exists() for p in staging_paths(out))


def test_provenance_lines_and_generated_apart(generated, tmp_path):
    root, ws, pairs = generated
    out = tmp_path / "E"
    assert _export(ws, root, out) == 0
    prov = [json.loads(x) for x in (out / "provenance.jsonl").read_text().splitlines()]
    assert len(prov) == 6
    for line, p in zip(prov, pairs, strict=True):
        assert line["pair_id"] == p["id"] and line["source_samples"] == p["source_samples"]
        assert line["recipe"]["strategy"] == p["strategy"] and line["renderer"] == "copypaste"
        assert line["seed"] == p["seed"] and line["status"] == "pending" and "checkpoint_sha256" in line
    gen_list = (out / "train_generated_list.txt").read_text().split()
    orig_list = (out / "train_original_list.txt").read_text().split()
    assert len(gen_list) == 12 and all("/job" in x for x in gen_list)
    assert len(orig_list) == 48 and not any("/job" in x for x in orig_list)


def test_cancelled_export_keeps_the_previous_one_and_reruns(generated, tmp_path):
    """Issue 15 item 4: an interrupted export neither leaves half a folder nor blocks its own re-run."""
    root, ws, pairs = generated
    out = tmp_path / "E"
    ds = open_dataset(root)
    with Workspace(ws) as w:
        export_dataset(w, ds, out, ("accepted",))  # an earlier export: originals only
        before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        n = 0

        def cancel() -> bool:
            nonlocal n
            n += 1
            return n == 30

        with pytest.raises(Cancelled):
            export_dataset(w, ds, out, cancel=cancel)
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
        assert not any(p.exists() for p in staging_paths(out))
        man = export_dataset(w, ds, out)
    assert man["generated"] == 6


def test_killed_export_leftovers_are_recovered(generated, tmp_path):
    """kill -9 mid-export leaves a staging folder; killed mid-swap leaves only the previous export aside."""
    root, ws, _ = generated
    out = tmp_path / "E"
    assert _export(ws, root, out, "--include", "accepted") == 0
    staging, old = staging_paths(out)
    staging.mkdir()
    (staging / STAGING_MARK).write_bytes(b"")  # what a killed export leaves: its staging folder, marked
    (staging / "leftImg8bit").mkdir()
    (staging / "leftImg8bit" / "half.png").write_bytes(b"\x89PNG")
    assert _export(ws, root, out) == 0
    assert not staging.exists() and json.loads((out / "manifest.json").read_text())["generated"] == 6
    os.replace(out, old)  # as if killed between the two renames
    with Workspace(ws) as w:
        export_dataset(w, open_dataset(root), out, ("accepted",))
    assert not old.exists() and json.loads((out / "manifest.json").read_text())["generated"] == 0


def test_missing_pair_file_fails_before_touching_the_export(generated, tmp_path, capsys):
    root, ws, pairs = generated
    out = tmp_path / "E"
    assert _export(ws, root, out) == 0
    img = ws / pairs[3]["image"]
    saved = img.read_bytes()
    img.unlink()
    capsys.readouterr()
    assert _export(ws, root, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file missing" in err[0] and str(img) in err[0]
    assert json.loads((out / "manifest.json").read_text())["generated"] == 6  # still the earlier export
    img.write_bytes(saved)
    assert _export(ws, root, out) == 0, "the re-run is not blocked"


def test_full_disk_with_copy_names_the_export_and_leaves_no_tmp(generated, tmp_path, capsys, monkeypatch):
    root, ws, _ = generated
    out = tmp_path / "E"
    real = shutil.copyfile
    calls = {"n": 0}

    def full(src, dst, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(shutil, "copyfile", full)
    capsys.readouterr()
    assert _export(ws, root, out, "--copy") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar's lines
    assert f"error: {out.resolve()}: disk full" in err and "Traceback" not in err, err
    assert not out.exists() and not any(p.exists() for p in staging_paths(out))
    assert not list(tmp_path.rglob("*.tmp"))
    monkeypatch.setattr(shutil, "copyfile", real)
    assert _export(ws, root, out, "--copy") == 0


def test_export_refuses_a_foreign_folder(generated, tmp_path, capsys):
    root, ws, _ = generated
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert _export(ws, root, out) == 2
    assert "is not an earlier export" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"


def test_mmseg_layout_is_what_mmseg_lists(generated, tmp_path, capsys):
    root, ws, pairs = generated
    out = tmp_path / "M"
    capsys.readouterr()
    assert _export(ws, root, out, "--format", "mmseg") == 0
    printed = capsys.readouterr().out
    assert "dataset_type = 'BaseSegDataset'" in printed and "img_dir/generated" in printed
    ds = open_dataset(root)
    lut = ds.label_set.id_to_train_lut
    for split, n in (("train", 24), ("val", 8), ("generated", 6)):
        # mmseg's BaseSegDataset: every img_dir/<split>/X.png has ann_dir/<split>/X.png (img/seg suffix '.png')
        imgs = sorted(p.name for p in (out / "img_dir" / split).iterdir())
        anns = sorted(p.name for p in (out / "ann_dir" / split).iterdir())
        assert imgs == anns and len(imgs) == n
    ref = ds.samples("val")[0]
    ann = read_label_png(out / "ann_dir" / "val" / f"{ref.id}.png")
    assert np.array_equal(ann, lut[ds.load_label(ref)])
    assert np.array_equal(read_png(out / "img_dir" / "val" / f"{ref.id}.png", color=True), ds.load_image(ref))
    stem = Path(pairs[0]["label"]).name.replace("_gtFine_labelIds.png", "")
    assert np.array_equal(read_label_png(out / "ann_dir" / "generated" / f"{stem}.png"),
                          lut[read_label_png(ws / pairs[0]["label"])])
    assert set(np.unique(ann)) <= {c.train_id for c in ds.label_set.train_classes} | {255}
    cfg = (out / "mmseg_config.py").read_text()
    ns: dict = {"train_pipeline": [], "test_pipeline": []}
    exec(compile(cfg, "mmseg_config.py", "exec"), ns)  # the fragment is valid Python with the export's root
    assert ns["data_root"] == str(out.resolve())
    assert len(ns["metainfo"]["classes"]) == ds.label_set.num_train_classes
    sets = ns["train_dataloader"]["dataset"]["datasets"]
    assert [d["data_prefix"]["img_path"] for d in sets] == ["img_dir/train", "img_dir/generated"]
    assert len((out / "provenance.jsonl").read_text().splitlines()) == 6


def test_hf_parquet_loads_with_datasets(generated, tmp_path):
    datasets = pytest.importorskip("datasets")  # a dev dependency; pyarrow is the [hf] extra
    root, ws, pairs = generated
    out = tmp_path / "H"
    assert _export(ws, root, out, "--format", "hf") == 0
    man = json.loads((out / "manifest.json").read_text())
    files = {k: [str(out / f) for f in v] for k, v in man["data_files"].items()}
    assert set(files) == {"train", "validation", "generated"}
    d = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf_cache"))
    assert {k: len(v) for k, v in d.items()} == {"train": 24, "validation": 8, "generated": 6}
    assert type(d["train"].features["image"]).__name__ == "Image"
    ds = open_dataset(root)
    row = d["validation"][0]
    ref = ds.sample(row["id"], "val")
    assert np.array_equal(np.asarray(row["mask"]), ds.label_set.id_to_train_lut[ds.load_label(ref)])
    assert np.array_equal(np.asarray(row["image"].convert("RGB")), ds.load_image(ref))
    gen = d["generated"][0]
    assert gen["source"] == "generated" and gen["pair_id"] == pairs[0]["id"]
    assert np.array_equal(np.asarray(gen["image"].convert("RGB")), read_png(ws / pairs[0]["image"], color=True))
    id2label = json.loads((out / "id2label.json").read_text())
    assert id2label["0"] == ds.label_set.train_classes[0].name and len(id2label) == ds.label_set.num_train_classes


def test_bad_format_is_one_line(generated, tmp_path):
    root, ws, _ = generated
    with Workspace(ws) as w, pytest.raises(SegbalanceError, match="--format takes"):
        export_dataset(w, open_dataset(root), tmp_path / "X", fmt="coco")


def test_cancelled_generate_counts_agree(tmp_path, sample_dataset):
    """Issue 15 minor: after a cancel the job's done, its message and the pair rows say the same number."""
    from sqlalchemy import func, select

    from segbalance.core.jobs.job_rows import job_info
    from segbalance.db import models as m

    root, ws = sample_dataset, tmp_path / "ws"
    plan = _plan(root, ws, tmp_path / "plan.json", budget=24)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 12

    with pytest.raises(Cancelled):
        run_generate(ws, root, plan, "copypaste", cancel=cancel)
    with Workspace(ws) as w:
        with w.session() as s:
            rows = s.scalar(select(func.count()).select_from(m.GeneratedPair))
        info = job_info(w, 1)
    assert info["status"] == "cancelled" and 0 < rows < 24
    assert info["done"] == rows and info["message"] == f"cancelled at {rows}/24", (info, rows)


# -- issue 40: an export never removes what it did not write; one export at a time; copies by default ----------
def _snapshot(folder: Path, skip: Path | None = None) -> dict[str, bytes]:
    """Every file under `folder` (except under `skip`) and its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and not (skip is not None and (p == skip or skip in p.parents))}


def test_foreign_manifest_folder_is_refused_and_kept(generated, tmp_path, capsys):
    """Issue 40 item 1: any manifest.json made the folder an earlier export: it and its dataset were deleted."""
    root, ws, _ = generated
    out = tmp_path / "mine"
    shutil.copytree(root, out / "my_dataset")
    (out / "manifest.json").write_text('{"name": "my project", "files": ["notes.txt"]}')
    (out / "notes.txt").write_text("keep me")
    before = _snapshot(out)
    capsys.readouterr()
    assert _export(ws, root, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "manifest.json was not written by segbalance" in err[-1] and "nothing was changed" in err[-1]
    assert _snapshot(out) == before


def test_reexport_refuses_a_folder_the_user_added_to(generated, tmp_path, capsys):
    """An earlier export with a file the user put in: refused (named), and the file stays; removed: it proceeds."""
    root, ws, _ = generated
    out = tmp_path / "E"
    assert _export(ws, root, out) == 0
    (out / "gtFine" / "my_notes.txt").write_text("mine")
    capsys.readouterr()
    assert _export(ws, root, out) == 2
    assert "holds files the earlier export did not write (gtFine/my_notes.txt)" in capsys.readouterr().err
    assert (out / "gtFine" / "my_notes.txt").read_text() == "mine"
    (out / "gtFine" / "my_notes.txt").unlink()
    assert _export(ws, root, out) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["tool"] == "segbalance export" and man["files"] == sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")


def test_dataset_inside_out_is_refused(generated, tmp_path, capsys):
    root, ws, _ = generated
    ds = shutil.copytree(root, tmp_path / "holder" / "ds")
    before = _snapshot(tmp_path / "holder")
    capsys.readouterr()
    assert _export(ws, ds, tmp_path / "holder") == 2
    assert "export folder must not hold the dataset" in capsys.readouterr().err
    assert _snapshot(tmp_path / "holder") == before


def test_an_export_never_removes_a_file_it_did_not_write(generated, tmp_path):
    """The promise itself: user files around, inside and beside an export survive every export and re-export."""
    root, ws, pairs = generated
    home = tmp_path / "home"
    out = home / "E"
    staging, old = staging_paths(out)
    mine = {home / "beside.txt": b"a", home / "E.txt": b"b", home / "E2" / "manifest.json": b"{}",
            home / "E2" / "x.png": b"c", staging / "not_ours.txt": b"d"}
    for p, data in mine.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    ds = open_dataset(root)
    attempts = [lambda w: export_dataset(w, ds, out),                     # refused: the staging name is taken
                lambda w: export_dataset(w, ds, home / "E2"),             # refused: foreign manifest
                lambda w: export_dataset(w, ds, home),                    # refused: not an export
                lambda w: export_dataset(w, ds, home / "E.txt")]          # refused: a file
    with Workspace(ws) as w:
        for attempt in attempts:
            with pytest.raises(SegbalanceError):
                attempt(w)
        (staging / "not_ours.txt").unlink()
        staging.rmdir()
        del mine[staging / "not_ours.txt"]
        export_dataset(w, ds, out)
        (out / "gtFine" / "added_later.txt").write_bytes(b"e")  # the user adds to an export ...
        mine[out / "gtFine" / "added_later.txt"] = b"e"
        with pytest.raises(SegbalanceError, match="did not write"):
            export_dataset(w, ds, out, ("accepted",))             # ... so the re-export is refused
        old.mkdir()
        (old / "also_mine.txt").write_bytes(b"f")  # not an export of ours in the swap folder's place
        mine[old / "also_mine.txt"] = b"f"
        with pytest.raises(SegbalanceError, match="not an export of segbalance"):
            export_dataset(w, ds, out, ("accepted",))
    for p, data in mine.items():
        assert p.read_bytes() == data, f"{p} was changed or removed"


def test_export_copies_by_default_and_links_only_when_asked(generated, tmp_path, capsys):
    """Issue 40 item 4: editing an exported file in place must not edit the user's dataset."""
    root, ws, pairs = generated
    out = tmp_path / "E"
    assert _export(ws, root, out) == 0
    ref = open_dataset(root).samples("train")[0]
    exported = out / "leftImg8bit" / "train" / ref.image_path.parent.name / ref.image_path.name
    original = ref.image_path.read_bytes()
    assert not os.path.samefile(exported, ref.image_path)
    exported.write_bytes(b"edited in place")  # a script resizing the export's images
    assert ref.image_path.read_bytes() == original
    assert not json.loads((out / "manifest.json").read_text())["linked"]
    assert _export(ws, root, tmp_path / "C", "--copy") == 0  # the old flag is still accepted
    assert not os.path.samefile(tmp_path / "C" / exported.relative_to(out), ref.image_path)
    assert _export(ws, root, tmp_path / "L", "--link") == 0
    assert os.path.samefile(tmp_path / "L" / exported.relative_to(out), ref.image_path)
    with pytest.raises(SystemExit):
        _export(ws, root, tmp_path / "X", "--link", "--copy")
    assert "--link" in capsys.readouterr().err


def test_tampered_pair_file_is_refused_not_exported_with_a_stale_hash(generated, tmp_path, capsys):
    root, ws, pairs = generated
    img = ws / pairs[2]["image"]
    img.write_bytes(img.read_bytes() + b"x")
    capsys.readouterr()
    assert _export(ws, root, tmp_path / "E") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{img}: pair {pairs[2]['id']}: file changed since it was generated" in err
    assert not (tmp_path / "E").exists()


def _hold_lock_script(out: Path) -> str:
    return ("import sys\nfrom pathlib import Path\nfrom segbalance.core.export.formats import export_lock\n"
            f"with export_lock(Path({str(out)!r})):\n    print('locked', flush=True)\n    sys.stdin.read()\n")


def test_two_exports_into_one_folder_never_mix(generated, tmp_path):
    """Issue 40 item 3: the second export refuses with one line while the first holds the folder; exports started
    together end with a folder that holds exactly what its manifest lists."""
    import subprocess
    import sys

    root, ws, _ = generated
    out = tmp_path / "E"
    holder = subprocess.Popen([sys.executable, "-c", _hold_lock_script(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cmd = [sys.executable, "-m", "segbalance.core.cli", "export", "--workspace", str(ws), "--dataset",
               str(root), "--out", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"another export into this folder is running (pid {holder.pid})" in lines[0]
        assert not out.exists()
    finally:
        holder.communicate("", timeout=30)
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        assert rc == 0 or (rc == 2 and "another export into this folder is running" in err), err
    man = json.loads((out / "manifest.json").read_text())
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert on_disk == man["files"] and man["generated"] == 6
    assert not any(p.exists() for p in (*staging_paths(out), out.parent / f".{out.name}.export-lock"))


# -- issue 40 item 5: inputs that pass the checks must export pairs that agree ---------------------------------
def _jpeg_with_orientation(arr: np.ndarray, orientation: int) -> bytes:
    """A JPEG of `arr` (RGB) carrying an EXIF orientation tag (6: shown rotated 90 degrees clockwise)."""
    import struct

    import cv2

    ok, buf = cv2.imencode(".jpg", arr[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + \
        struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    data = buf.tobytes()
    return data[:2] + app1 + data[2:]


def _workspace(tmp_path: Path) -> Path:
    Workspace(tmp_path / "ws").close()
    return tmp_path / "ws"


def test_jpeg_with_exif_orientation_exports_beside_a_label_of_its_size(tmp_path):
    """A 32x16 JPEG tagged 'rotate 90' passed the header size check, then cv2 decoded it as 16x32."""
    from tests.helpers import make_folder

    root = make_folder(tmp_path / "ds", n=2, size=(32, 16))
    img = np.zeros((16, 32, 3), np.uint8)
    img[:, :8] = (250, 10, 10)  # a red band on the left, where masks/ has class 1
    (root / "images" / "img0.png").unlink()
    (root / "images" / "img0.jpg").write_bytes(_jpeg_with_orientation(img, 6))
    ds = open_dataset(root)
    ref = ds.sample("img0")
    assert ds.load_image(ref).shape[:2] == ds.load_label(ref).shape == (16, 32)
    from segbalance.core.io import jpeg_orientation

    assert jpeg_orientation(root / "images" / "img0.jpg") == 6
    ws = _workspace(tmp_path)
    for fmt in ("cityscapes", "mmseg", "hf"):
        if fmt == "hf":
            pytest.importorskip("pyarrow")
        out = tmp_path / fmt
        assert _export(ws, root, out, "--format", fmt) == 0
        if fmt == "hf":
            import io

            import pyarrow.parquet as pq
            from PIL import Image

            rows = pq.read_table(next((out / "data").glob("train-*.parquet"))).to_pylist()
            row = next(r for r in rows if r["id"] == "img0")
            shown = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))  # no tag left for a reader to apply
            assert shown.shape[:2] == (16, 32) and shown[:, :8, 0].mean() > 200
            continue
        exported = open_dataset(out)
        eref = exported.sample("img0")
        assert exported.load_image(eref).shape[:2] == exported.load_label(eref).shape == (16, 32)
        assert exported.load_image(eref)[:, :8, 0].mean() > 200  # the pixels as stored, not rotated


def test_relative_symlinks_in_the_dataset_export_their_content(tmp_path):
    from tests.helpers import make_cityscapes

    real = make_cityscapes(tmp_path / "real", n=2)
    root = tmp_path / "ds"
    for p in real.rglob("*.png"):  # a dataset of relative links into another folder
        dst = root / p.relative_to(real)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(os.path.relpath(p, dst.parent))
    ws = _workspace(tmp_path)
    for extra in ((), ("--link",)):
        out = tmp_path / f"E{len(extra)}"
        assert _export(ws, root, out, *extra) == 0
        files = [p for p in out.rglob("*.png")]
        assert files and not any(p.is_symlink() for p in files)
        for p in real.rglob("*.png"):
            assert (out / p.relative_to(real)).read_bytes() == p.read_bytes()


def test_names_with_spaces_stay_one_entry_per_line_and_line_breaks_are_refused(tmp_path, capsys):
    from tests.helpers import make_folder

    root = make_folder(tmp_path / "ds", n=2)
    for sub in ("images", "masks"):
        (root / sub / "img0.png").rename(root / sub / "my photo 50%.png")
    ws = _workspace(tmp_path)
    out = tmp_path / "E"
    assert _export(ws, root, out) == 0
    lines = (out / "train_list.txt").read_text().splitlines()
    assert len(lines) == 2 and all(len(ln.split()) == 2 for ln in lines)
    for ln in lines:
        image, label = ln.split()
        assert (out / image).is_file() and (out / label).is_file()
    assert any("my%20photo%2050%25" in ln for ln in lines)  # percent-encoded: reversible, never two names in one
    for sub in ("images", "masks"):
        (root / sub / "my photo 50%.png").rename(root / sub / "two\nlines.png")
    capsys.readouterr()
    assert _export(ws, root, tmp_path / "F") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a line break" in err[0] and "rename the file" in err[0]
    assert not (tmp_path / "F").exists()


def test_an_export_by_an_older_segbalance_is_refused_not_replaced(generated, tmp_path, capsys):
    """Before the file list, nothing says which files were ours: the user decides, nothing is removed."""
    root, ws, _ = generated
    out = tmp_path / "E"
    assert _export(ws, root, out) == 0
    man = json.loads((out / "manifest.json").read_text())
    for key in ("tool", "manifest_version", "files", "linked"):
        del man[key]
    (out / "manifest.json").write_text(json.dumps(man))
    n = len(list(out.rglob("*")))
    capsys.readouterr()
    assert _export(ws, root, out) == 2
    assert "an export by an older segbalance" in capsys.readouterr().err
    assert len(list(out.rglob("*"))) == n
