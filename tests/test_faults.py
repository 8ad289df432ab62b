"""Fault battery: hostile or unlucky input gives one clear line on stderr and exit code 2, never a traceback.

The README promises it; this table keeps the promise checked. Each row is (id, setup, expected substring):
`setup(ctx)` builds whatever broken input the case needs under `ctx.tmp` (from the module's sample data in
`ctx.base`) and returns the command line. To add a case, add a row; `check` rows can also assert on
what was (not) left behind. The commands run in-process through `segbalance.core.cli.main`, exactly as
the console script does; a few cases that need a real process (kill -9) are plain tests below the table.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from segbalance.core.cli import main
from tests.helpers import make_folder

SAMPLE_ARGS = dict(n_train=6, n_val=2, size=(256, 128), seed=0)


# -- module data: built once ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ds/ (sample data), ws/ (workspace with stats and layer bank), plan.json, generators g4.pth / g_deep.pth."""
    import torch

    from segbalance.core.datasets.sample import make_sample_dataset
    from segbalance.core.render.pix2pixhd_nets import Pix2PixHDConfig, build_generator

    root = tmp_path_factory.mktemp("faults")
    make_sample_dataset(root / "ds", **SAMPLE_ARGS)
    rc = main(["plan", str(root / "ds"), "--workspace", str(root / "ws"), "--preset", "raise-rare", "--budget", "3",
               "--out", str(root / "plan.json")])
    assert rc == 0
    torch.manual_seed(0)
    # a generator trained on a 4-class label set, and one with 3 downsamplings (sides must be >= 16)
    small = build_generator(Pix2PixHDConfig(label_nc=4, ngf=8, n_downsample_global=2, n_blocks_global=1))
    torch.save(small.state_dict(), root / "g4.pth")
    deep = build_generator(Pix2PixHDConfig(label_nc=35, ngf=8, n_downsample_global=3, n_blocks_global=1))
    torch.save(deep.state_dict(), root / "g_deep.pth")
    return root


@dataclass
class Ctx:
    base: Path
    tmp: Path

    @property
    def ds(self) -> str:
        return str(self.base / "ds")

    @property
    def ws(self) -> str:
        return str(self.base / "ws")

    @property
    def plan(self) -> str:
        return str(self.base / "plan.json")

    def copy_ws(self) -> Path:
        """A private copy of the workspace, for cases that break its database."""
        dst = self.tmp / "ws"
        shutil.copytree(self.base / "ws", dst)
        return dst

    def copy_ds(self) -> Path:
        dst = self.tmp / "ds"
        shutil.copytree(self.base / "ds", dst)
        return dst

    def edited_plan(self, edit: Callable[[dict], None]) -> str:
        data = json.loads((self.base / "plan.json").read_text())
        edit(data)
        p = self.tmp / "plan.json"
        p.write_text(json.dumps(data))
        return str(p)


# -- setups -----------------------------------------------------------------------------------------------
def _folder_ds(ctx: Ctx, edit: Callable[[dict], None] | None = None, raw: bytes | None = None) -> list[str]:
    root = make_folder(ctx.tmp / "folder")
    if raw is not None:
        (root / "classes.json").write_bytes(raw)
    elif edit is not None:
        data = json.loads((root / "classes.json").read_text())
        edit(data)
        (root / "classes.json").write_text(json.dumps(data))
    return ["stats", str(root)]


def _set(path: list, value) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


def _sql(ctx: Ctx, statement: str) -> Path:
    ws = ctx.copy_ws()
    con = sqlite3.connect(ws / "segbalance.db")
    con.execute(statement)
    con.commit()
    con.close()
    return ws


def _damaged_ws(ctx: Ctx) -> Path:
    """The issue's case: garbage over one page (byte 12288 on) of a workspace database."""
    ws = ctx.copy_ws()
    with open(ws / "segbalance.db", "r+b") as fh:
        fh.seek(12288)
        fh.write(b"garbage!" * 512)
    return ws


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (what a decompression bomb looks like before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _bomb(side: int) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        ds = ctx.copy_ds()
        label = sorted((ds / "gtFine" / "train").rglob("*_labelIds.png"))[0]
        _png_header_only(label, side, side)
        return ["stats", str(ds)]
    return setup


def _huge_layer(cmd: str) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        def edit(d: dict) -> None:
            layer = next(r for r in d["recipes"] if r["layers"])["layers"][0]
            layer["w"] = layer["h"] = 200_000
        plan = ctx.edited_plan(edit)
        if cmd == "recombine":
            return ["recombine", plan, "--workspace", ctx.ws, "--out", str(ctx.tmp / "maps")]
        return ["generate", "--workspace", str(ctx.copy_ws()), "--dataset", ctx.ds, "--plan", plan,
                "--renderer", "copypaste"]
    return setup


def _render(ctx: Ctx, ckpt: str, *extra: str) -> list[str]:
    return ["render", str(ctx.base / "ds" / "gtFine" / "train"), "--checkpoint", str(ctx.base / ckpt),
            "--out", str(ctx.tmp / "out"), "--device", "cpu", *extra]


def _pickle_ckpt(ctx: Ctx) -> list[str]:
    import torch

    torch.save({"x": np.zeros(2)}, ctx.tmp / "evil.pth")  # numpy objects: needs full unpickling
    return ["render", str(ctx.base / "ds" / "gtFine" / "train"), "--checkpoint", str(ctx.tmp / "evil.pth"),
            "--out", str(ctx.tmp / "out")]


def _cut_ckpt(ctx: Ctx) -> Path:
    """The small generator checkpoint cut short, as an interrupted copy leaves it."""
    data = (ctx.base / "g4.pth").read_bytes()
    (ctx.tmp / "g_cut.pth").write_bytes(data[:300])
    return ctx.tmp / "g_cut.pth"


def _no_leftover(name: str) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        assert not (ctx.tmp / name).exists(), f"{name} was left behind"
    return check


def _dataset_untouched(ctx: Ctx) -> None:
    assert not (ctx.base / "ds" / "gtFine" / "recombined").exists()


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str]]
    expect: str  # a substring of the one error line
    check: Callable[[Ctx], None] | None = None
    marks: list = field(default_factory=list)


CASES = [
    # label sets (classes.json)
    Case("train_id-not-a-number", lambda c: _folder_ds(c, _set(["classes", 1, "train_id"], "abc")),
         "classes.json: class 'crack': train_id must be an integer"),
    Case("ignore_id-not-a-number", lambda c: _folder_ds(c, _set(["ignore_id"], "x")),
         "classes.json: ignore_id must be an integer"),
    Case("duplicate-class-names", lambda c: _folder_ds(c, _set(["classes", 2, "name"], "crack")),
         "classes.json: duplicate class name(s): 'crack'"),
    Case("classes-json-not-utf8", lambda c: _folder_ds(c, raw='{"name": "d\xe9fauts"}'.encode("latin-1")),
         "classes.json: not UTF-8 text"),
    Case("has_instances-not-a-bool", lambda c: _folder_ds(c, _set(["classes", 1, "has_instances"], "false")),
         "classes.json: class 'crack': has_instances must be true or false"),
    Case("classes-json-not-json", lambda c: _folder_ds(c, raw=b"{classes: ["), "classes.json: not valid JSON"),
    # plans
    Case("plan-not-utf8", lambda c: ["recombine", str(_write(c.tmp / "p.json", b"\xff\xfe{}")), "--workspace", c.ws,
                                     "--out", str(c.tmp / "maps")], "p.json: not a segbalance plan (not UTF-8"),
    Case("plan-huge-layer-recombine", _huge_layer("recombine"), "recipe 0: layer 0 is 200000x200000, more than 8x",
         check=_no_leftover("maps")),
    Case("plan-huge-layer-generate", _huge_layer("generate"), "recipe 0: layer 0 is 200000x200000, more than 8x"),
    Case("plan-path-traversal", lambda c: ["recombine", c.edited_plan(_set(["recipes", 0, "base"],
                                                                           "../../../etc/passwd")),
                                           "--workspace", c.ws, "--out", str(c.tmp / "maps")],
         "refers to sample '../../../etc/passwd'"),
    Case("plan-out-is-a-folder", lambda c: ["plan", c.ds, "--workspace", c.ws, "--preset", "raise-rare",
                                            "--budget", "2", "--out", str(_mkdir(c.tmp / "plans"))],
         "plans: --out is a folder"),
    Case("recombine-out-inside-dataset", lambda c: ["recombine", c.plan, "--workspace", c.ws,
                                                    "--out", str(c.base / "ds" / "gtFine" / "recombined")],
         "--out must not be inside the dataset", check=_dataset_untouched),
    Case("preset-uniform-capped-nan", lambda c: ["plan", c.ds, "--workspace", c.ws, "--preset", "uniform-capped:nan",
                                                 "--budget", "2", "--out", str(c.tmp / "p.json")],
         "preset parameter of uniform-capped must be a finite number", check=_no_leftover("p.json")),
    Case("preset-inverse-frequency-nan", lambda c: ["plan", c.ds, "--workspace", c.ws, "--preset",
                                                    "inverse-frequency:nan", "--budget", "2",
                                                    "--out", str(c.tmp / "p.json")],
         "must be a finite number"),
    Case("preset-unknown", lambda c: ["plan", c.ds, "--workspace", c.ws, "--preset", "flatten", "--budget", "2",
                                      "--out", str(c.tmp / "p.json")], "unknown preset 'flatten'"),
    Case("budget-zero", lambda c: ["plan", c.ds, "--workspace", c.ws, "--preset", "raise-rare", "--budget", "0",
                                   "--out", str(c.tmp / "p.json")], "--budget must be at least 1 new map"),
    Case("train-seg-head-lr-mult-zero", lambda c: ["train-seg", c.ds, "--workspace", c.ws, "--out",
                                                   str(c.tmp / "run"), "--head-lr-mult", "0"],
         "--lr and --head-lr-mult must be positive", check=_no_leftover("run")),
    Case("train-seg-lr-nan", lambda c: ["train-seg", c.ds, "--workspace", c.ws, "--out", str(c.tmp / "run"),
                                        "--lr", "nan"], "--lr and --head-lr-mult must be positive"),
    # images
    Case("png-bomb-30000", _bomb(30_000), "image is 30000x30000 (900 Mpx), over the pixel limit of 67 Mpx; "
                                          "set SEGBALANCE_MAX_PIXELS"),
    Case("png-bomb-60000", _bomb(60_000), "over the pixel limit"),
    Case("png-16000-under-the-old-limit", _bomb(16_000), "image is 16000x16000 (256 Mpx), over the pixel limit of "
                                                          "67 Mpx; set SEGBALANCE_MAX_PIXELS"),
    # render
    Case("render-size-0x0", lambda c: _render(c, "g_deep.pth", "--size", "0x0"), "width and height must be positive"),
    Case("render-size-negative", lambda c: _render(c, "g_deep.pth", "--size", "64x-32"),
         "width and height must be positive"),
    Case("render-size-too-small", lambda c: _render(c, "g_deep.pth", "--size", "8x8"),
         "render size 8x8 is too small for this generator: each side must be at least 16"),
    Case("render-other-label-set", lambda c: _render(c, "g4.pth", "--size", "64x32"),
         "g4.pth: generator has label_nc 4, but label map", check=_no_leftover("out")),
    Case("render-pickle-checkpoint", _pickle_ckpt, "refusing to unpickle"),
    Case("render-truncated-checkpoint", lambda c: _render(c, str(_cut_ckpt(c))),
         "g_cut.pth: not a readable PyTorch checkpoint (damaged or truncated file: PytorchStreamReader failed "
         "reading zip archive: failed finding central directory)"),
    # workspace database
    Case("db-damaged-stats", lambda c: ["stats", c.ds, "--workspace", str(_damaged_ws(c))],
         "segbalance.db: the workspace database is damaged (database disk image is malformed); check it with"),
    Case("db-damaged-generate", lambda c: ["generate", "--workspace", str(_damaged_ws(c)), "--dataset", c.ds,
                                           "--plan", c.plan, "--renderer", "copypaste"],
         "PRAGMA integrity_check"),
    Case("db-damaged-plan", lambda c: ["plan", c.ds, "--workspace", str(_damaged_ws(c)), "--preset", "raise-rare",
                                       "--budget", "2", "--out", str(c.tmp / "p.json")],
         "the workspace's other files (pairs, layers, runs) are untouched"),
    Case("db-schema-version-not-a-number",
         lambda c: ["pairs", "--workspace", str(_sql(c, "UPDATE meta SET value='abc' WHERE key='schema_version'"))],
         "schema_version 'abc' in table meta is not a number"),
    Case("db-schema-newer", lambda c: ["pairs", "--workspace",
                                       str(_sql(c, "UPDATE meta SET value='999' WHERE key='schema_version'"))],
         "newer than this segbalance supports"),
    Case("db-not-a-database", lambda c: ["pairs", "--workspace", str(_not_a_db(c))], "not a segbalance database"),
    Case("workspace-missing", lambda c: ["pairs", "--workspace", str(c.tmp / "nowhere")], "workspace folder not found"),
    # run results
    Case("compare-result-not-utf8", lambda c: ["compare", str(_write(c.tmp / "a.json", b"\xff\xfe{")),
                                               str(_write(c.tmp / "b.json", b"{}"))], "a.json: cannot read run result"),
    # issue 40: an export never removes what it did not write
    Case("export-over-a-foreign-manifest", lambda c: _export_into(c, _foreign_export_folder(c)),
         "manifest.json was not written by segbalance); nothing was changed", check=lambda c: _user_files_kept(c)),
    Case("export-out-holds-the-dataset", lambda c: ["export", "--workspace", c.ws, "--dataset", str(c.copy_ds()),
                                                    "--out", str(c.tmp)],
         "export folder must not hold the dataset", check=lambda c: _dataset_kept(c)),
    # issue 40: masks and images read as they are stored
    Case("mask-grey-alpha", lambda c: _folder_with(c, _grey_alpha_mask), "img0.png: mask is grey + alpha (2 channels)"),
    Case("image-png-beside-jpg", lambda c: _folder_with(c, _jpg_twin),
         "two images for one mask: img1.jpg and img1.png"),
    # issue 40: folders that must stay apart
    Case("workspace-is-the-dataset", lambda c: ["stats", str(c.copy_ds()), "--workspace", str(c.tmp / "ds")],
         "the workspace must not be the dataset folder or lie inside it",
         check=lambda c: _no_leftover("ds/segbalance.db")(c)),
    Case("workspace-inside-the-dataset", lambda c: ["plan", str(c.copy_ds()), "--workspace", str(c.tmp / "ds" / "w"),
                                                    "--preset", "raise-rare", "--budget", "2",
                                                    "--out", str(c.tmp / "p.json")],
         "the workspace must not be the dataset folder", check=_no_leftover("ds/w")),
    Case("train-seg-out-is-the-dataset", lambda c: ["train-seg", c.ds, "--workspace", c.ws, "--out", c.ds],
         "--out must not be the dataset folder or lie inside it"),
    Case("train-gan-out-is-the-workspace", lambda c: ["train-gan", c.ds, "--workspace", c.ws, "--out", c.ws],
         "--out must not be the workspace folder or hold it"),
    # issue 40: JSON nested deeper than the recursion limit (RecursionError, not ValueError)
    Case("plan-deeply-nested", lambda c: ["recombine", str(_write(c.tmp / "p.json", DEEP)), "--workspace", c.ws,
                                          "--out", str(c.tmp / "maps")], "p.json: not a segbalance plan (JSON nested "
                                                                         "too deeply", check=_no_leftover("maps")),
    Case("classes-json-deeply-nested", lambda c: _folder_ds(c, raw=DEEP), "classes.json: not a label set (JSON nested"),
    Case("result-json-deeply-nested", lambda c: ["compare", str(_write(c.tmp / "a.json", DEEP)),
                                                 str(_write(c.tmp / "b.json", b"{}"))],
         "a.json: cannot read run result (JSON nested too deeply"),
    Case("weight-by-iou-result-deeply-nested",
         lambda c: ["plan", c.ds, "--workspace", c.ws, "--preset", "raise-rare", "--budget", "2",
                    "--weight-by-iou", str(_write(c.tmp / "result.json", DEEP)), "--out", str(c.tmp / "p.json")],
         "result.json: not a train-seg result file (JSON nested too deeply", check=_no_leftover("p.json")),
    # issue 40: ids SQLite cannot hold (OverflowError before any query)
    Case("review-id-2-63", lambda c: ["review", "--workspace", c.ws, "--accept", "1", str(2**63)],
         f"{2**63} is not an id (ids run from 1 to {2**63 - 1})"),
    Case("jobs-id-2-64", lambda c: ["jobs", "--workspace", c.ws, str(2**64)], "is not an id"),
    Case("pairs-job-2-63", lambda c: ["pairs", "--workspace", c.ws, "--job", str(2**63)], "is not an id"),
    Case("gan-score-job-2-63", lambda c: ["gan-score", "--seg-checkpoint", str(c.tmp), "--dataset", c.ds,
                                          "--workspace", c.ws, "--job", str(2**63)], "is not an id"),
    # issue 40: schema damage is named like page damage, and nothing is recreated over it
    Case("db-column-dropped", lambda c: ["pairs", "--workspace", str(_sql(c, "ALTER TABLE generated_pair DROP "
                                                                             "COLUMN quality"))],
         "schema is damaged (table generated_pair has no column quality)"),
    Case("db-column-dropped-generate", lambda c: ["generate", "--workspace",
                                                  str(_sql(c, "ALTER TABLE job DROP COLUMN message")),
                                                  "--dataset", c.ds, "--plan", c.plan, "--renderer", "copypaste"],
         "schema is damaged (table job has no column message)"),
    Case("db-pair-table-dropped", lambda c: ["pairs", "--workspace", str(_dropped_pairs(c))],
         "table generated_pair is missing, yet", check=lambda c: _pairs_table_not_recreated(c)),
    Case("db-schema-version-0", lambda c: ["pairs", "--workspace",
                                           str(_sql(c, "UPDATE meta SET value='0' WHERE key='schema_version'"))],
         "schema_version '0' in table meta is not a version segbalance writes"),
    Case("db-schema-version-minus-1",
         lambda c: ["pairs", "--workspace", str(_sql(c, "UPDATE meta SET value='-1' WHERE key='schema_version'"))],
         "schema_version '-1' in table meta is not a version"),
    # command line
    Case("unknown-option", lambda c: ["pairs", "--workspace", c.ws, "--frobnicate"],
         "unrecognized arguments: --frobnicate"),
]


DEEP = b"[" * 100_000 + b"]" * 100_000  # valid JSON, deeper than any recursion limit


def _folder_with(ctx: Ctx, edit: Callable[[Path], None]) -> list[str]:
    root = make_folder(ctx.tmp / "folder")
    edit(root)
    return ["stats", str(root)]


def _grey_alpha_mask(root: Path) -> None:
    from PIL import Image

    lab = np.asarray(Image.open(root / "masks" / "img0.png"))
    Image.fromarray(np.stack([lab, np.full_like(lab, 255)], -1), "LA").save(root / "masks" / "img0.png")


def _jpg_twin(root: Path) -> None:
    import cv2

    cv2.imwrite(str(root / "images" / "img1.jpg"), np.full((16, 32, 3), 100, np.uint8))


USER_FILES = {"notes.txt": b"keep me", "manifest.json": b'{"project": "mine"}'}


def _foreign_export_folder(ctx: Ctx) -> Path:
    """A folder of the user's holding a manifest.json of their own, a note and a dataset."""
    out = ctx.tmp / "mine"
    shutil.copytree(ctx.base / "ds", out / "ds")
    for name, data in USER_FILES.items():
        (out / name).write_bytes(data)
    return out


def _export_into(ctx: Ctx, out: Path) -> list[str]:
    return ["export", "--workspace", ctx.ws, "--dataset", ctx.ds, "--out", str(out)]


def _user_files_kept(ctx: Ctx) -> None:
    out = ctx.tmp / "mine"
    assert all((out / n).read_bytes() == d for n, d in USER_FILES.items())
    assert len(list((out / "ds").rglob("*.png"))) == len(list((ctx.base / "ds").rglob("*.png")))


def _dataset_kept(ctx: Ctx) -> None:
    assert len(list((ctx.tmp / "ds").rglob("*.png"))) == len(list((ctx.base / "ds").rglob("*.png")))
    assert not (ctx.tmp / "manifest.json").exists()


def _dropped_pairs(ctx: Ctx) -> Path:
    """A workspace with pair files whose generated_pair table was dropped (recreating it would orphan them)."""
    ws = _sql(ctx, "DROP TABLE generated_pair")
    (ws / "pairs" / "job1").mkdir(parents=True)
    (ws / "pairs" / "job1" / "p0_leftImg8bit.png").write_bytes(b"png")
    return ws


def _pairs_table_not_recreated(ctx: Ctx) -> None:
    con = sqlite3.connect(ctx.tmp / "ws" / "segbalance.db")
    try:
        assert not con.execute("SELECT name FROM sqlite_master WHERE name='generated_pair'").fetchall()
    finally:
        con.close()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _not_a_db(ctx: Ctx) -> Path:
    ws = ctx.copy_ws()
    (ws / "segbalance.db").write_bytes(b"this is no database" * 300)
    return ws


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, list[str]]:
    """(exit code, stderr, its lines as a terminal shows them: progress bars redrawn with \\r collapse)."""
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = [seg.rsplit("\r", 1)[-1].strip() for seg in err.split("\n")]
    return rc, err, [ln for ln in lines if ln]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_gives_one_line_and_exit_2(case: Case, base: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("SEGBALANCE_DEBUG", raising=False)
    monkeypatch.delenv("SEGBALANCE_MAX_PIXELS", raising=False)
    ctx = Ctx(base, tmp_path)
    argv = case.setup(ctx)
    rc, err, lines = run_cli(argv, capsys)
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert case.expect in lines[0], lines[0]
    assert rc == 2
    if case.check is not None:
        case.check(ctx)


# -- cases that are not a single table row ------------------------------------------------------------------
def test_locked_database_says_so_in_one_line(base: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from segbalance.db import engine

    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 200)
    ws = Ctx(base, tmp_path).copy_ws()
    holder = sqlite3.connect(ws / "segbalance.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        rc, err, lines = run_cli(["generate", "--workspace", str(ws), "--dataset", str(base / "ds"), "--plan",
                                  str(base / "plan.json"), "--renderer", "copypaste"], capsys)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert rc == 2 and len(lines) == 1 and "locked" in lines[0] and "Traceback" not in err


def test_pixel_limit_can_be_raised(base: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """SEGBALANCE_MAX_PIXELS moves the limit both ways; a bad value is one line too."""
    monkeypatch.setenv("SEGBALANCE_MAX_PIXELS", "1000")
    rc, _err, lines = run_cli(["stats", str(base / "ds")], capsys)
    assert rc == 2 and len(lines) == 1 and "image is 256x128 (0 Mpx), over the pixel limit" in lines[0]
    monkeypatch.setenv("SEGBALANCE_MAX_PIXELS", "lots")
    rc, _err, lines = run_cli(["stats", str(base / "ds")], capsys)
    assert rc == 2 and len(lines) == 1 and "SEGBALANCE_MAX_PIXELS='lots' is not a whole number" in lines[0]
    monkeypatch.setenv("SEGBALANCE_MAX_PIXELS", str(1 << 30))
    assert run_cli(["stats", str(base / "ds")], capsys)[0] == 0


def test_recombine_stopped_midway_leaves_nothing_behind(base: Path, tmp_path: Path) -> None:
    """Cancelled (or failing) after the first map: its files and the folder it created are removed."""
    from segbalance.core.datasets import open_dataset
    from segbalance.core.errors import Cancelled
    from segbalance.core.planning.balance import Plan
    from segbalance.core.recombine import build_layer_bank
    from segbalance.core.recombine.write import recombine_recipes
    from segbalance.core.workspace import Workspace

    plan = Plan.load(base / "plan.json")
    ds = open_dataset(base / "ds")
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 1
    with Workspace(base / "ws") as ws:
        bank = build_layer_bank(ds, ws, split=plan.split)
        with pytest.raises(Cancelled):
            recombine_recipes(plan.recipes, ds, bank, tmp_path / "maps", cancel=cancel)
        assert not (tmp_path / "maps").exists()
        # a folder that existed before keeps existing, without the partial maps
        (tmp_path / "mine").mkdir()
        calls.clear()
        with pytest.raises(Cancelled):
            recombine_recipes(plan.recipes, ds, bank, tmp_path / "mine", cancel=cancel)
        assert list((tmp_path / "mine").iterdir()) == []


def test_recombine_stopped_right_after_a_rename_or_before_it_leaves_nothing(base: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """A signal can land between a map's atomic rename and the bookkeeping after it, or between the temp file's
    creation and its own clean-up: neither the map nor the temp file may outlive the stop."""
    import segbalance.core.recombine.write as write
    from segbalance.core.datasets import open_dataset
    from segbalance.core.planning.balance import Plan
    from segbalance.core.processes import temp_prefix
    from segbalance.core.recombine import build_layer_bank
    from segbalance.core.workspace import Workspace

    plan = Plan.load(base / "plan.json")
    ds = open_dataset(base / "ds")
    real = write.write_png

    def after_rename(path, arr, **kw):
        real(path, arr, **kw)
        if len(list(path.parent.glob("*.png"))) == 3:
            raise KeyboardInterrupt  # the map is in place, the writer has not returned

    def before_cleanup(path, arr, **kw):
        (path.parent / (temp_prefix(path) + "x.tmp")).write_bytes(b"half")  # a temp its writer never removed
        raise KeyboardInterrupt

    with Workspace(base / "ws") as ws:
        bank = build_layer_bank(ds, ws, split=plan.split)
        for fake, out in ((after_rename, tmp_path / "a"), (before_cleanup, tmp_path / "b")):
            monkeypatch.setattr(write, "write_png", fake)
            with pytest.raises(KeyboardInterrupt):
                write.recombine_recipes(plan.recipes, ds, bank, out)
            assert not out.exists(), sorted(p.name for p in out.iterdir())
        # an earlier run's map that this run had not yet replaced is not this run's to remove
        kept = tmp_path / "c" / (write.map_stem(0) + write.LABEL_SUFFIX)
        kept.parent.mkdir()
        kept.write_bytes(b"an earlier run's map")
        with pytest.raises(KeyboardInterrupt):
            write.recombine_recipes(plan.recipes, ds, bank, kept.parent)
        assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]


def test_debug_is_accepted_after_the_subcommand(base: Path, tmp_path: Path) -> None:
    from segbalance.core.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="workspace folder not found"):  # --debug: the traceback, not a line
        main(["pairs", "--workspace", str(tmp_path / "nowhere"), "--debug"])
    with pytest.raises(WorkspaceError):
        main(["--debug", "pairs", "--workspace", str(tmp_path / "nowhere")])


def test_damaged_database_is_a_message_box_at_app_start_up(base: Path, tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    from segbalance.desktop_app.main import create_main_window

    ws = _damaged_ws(Ctx(base, tmp_path))
    window = create_main_window(tmp_path / "settings.ini", ws)
    try:
        assert window.state.workspace is None
        assert len(window.errors) == 1
        title, message = window.errors[0]
        assert title == "Open workspace" and "damaged" in message and "PRAGMA integrity_check" in message
    finally:
        window.close()


# -- read-only and full workspaces (need a read-only mount or a non-root user) ------------------------------
def _can_write(folder: Path) -> bool:
    probe = folder / f".probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture()
def read_only_ws(base: Path, tmp_path: Path):
    """A copy of the workspace (with one generate job) that cannot be written: chmod, or a read-only bind mount."""
    ws = tmp_path / "ws"
    shutil.copytree(base / "ws", ws)
    assert main(["generate", "--workspace", str(ws), "--dataset", str(base / "ds"), "--plan",
                 str(base / "plan.json"), "--renderer", "copypaste"]) == 0
    modes = {p: p.stat().st_mode for p in [ws, *ws.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    mounted = None
    if _can_write(ws):  # root ignores permissions: mount the folder read-only over itself
        for p, mode in modes.items():
            p.chmod(mode)
        ok = subprocess.run(["mount", "--bind", str(ws), str(ws)], capture_output=True).returncode == 0 and \
            subprocess.run(["mount", "-o", "remount,bind,ro", str(ws)], capture_output=True).returncode == 0
        if ok:
            mounted = ws
        if not ok or _can_write(ws):
            if ok:
                subprocess.run(["umount", "-l", str(ws)], check=False)
            pytest.skip("cannot make a read-only folder here (root without mount rights)")
    try:
        yield ws
    finally:
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], check=False)
        else:
            for p, mode in modes.items():
                p.chmod(mode)


def test_read_only_workspace_serves_the_read_only_commands(read_only_ws: Path, base: Path, tmp_path: Path,
                                                           capsys) -> None:
    ws = str(read_only_ws)
    rc, _err, _lines = run_cli(["pairs", "--workspace", ws, "--json"], capsys)
    assert rc == 0
    rc, _err, _lines = run_cli(["jobs", "--workspace", ws], capsys)
    assert rc == 0
    rc, _err, _lines = run_cli(["stats", str(base / "ds"), "--workspace", ws], capsys)
    assert rc == 0
    other = shutil.copytree(base / "ds", tmp_path / "other")  # a dataset this workspace has never seen
    rc, _err, lines = run_cli(["stats", str(other), "--workspace", ws], capsys)
    assert rc == 0, lines
    out = tmp_path / "export"
    rc, _err, _lines = run_cli(["export", "--workspace", ws, "--dataset", str(base / "ds"), "--out", str(out)], capsys)
    assert rc == 0 and (out / "manifest.json").exists()
    # a command that must write says why it cannot, and never calls the database foreign
    rc, err, lines = run_cli(["generate", "--workspace", ws, "--dataset", str(base / "ds"), "--plan",
                              str(base / "plan.json"), "--renderer", "copypaste", "--seed", "5"], capsys)
    assert rc == 2 and len(lines) == 1 and "read-only" in lines[0] and "not a segbalance database" not in err


def test_full_disk_is_not_called_a_foreign_database(base: Path, tmp_path: Path, capsys) -> None:
    """A workspace on a full file system: the message says disk, not 'not a segbalance database'."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        db = base / "ws" / "segbalance.db"
        if db.stat().st_size > 800_000:
            pytest.skip("workspace database too big for the 1 MB file system")
        ws = mnt / "ws"
        ws.mkdir()
        shutil.copy(db, ws / "segbalance.db")
        filler = mnt / "filler"
        with open(filler, "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        rc, err, lines = run_cli(["generate", "--workspace", str(ws), "--dataset", str(base / "ds"), "--plan",
                                  str(base / "plan.json"), "--renderer", "copypaste"], capsys)
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, lines
        assert "not a segbalance database" not in lines[0]
        assert "disk" in lines[0] or "No space left" in lines[0], lines[0]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- processes -----------------------------------------------------------------------------------------------
def _tagged(tag: str) -> list[int]:
    """Pids of live processes whose environment carries SEGBALANCE_FAULT_TAG=tag (survive re-parenting)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes()
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"SEGBALANCE_FAULT_TAG={tag}".encode() in env.split(b"\0") and state != "Z":
            out.append(int(d.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_kill_9_of_stats_leaves_no_process_behind(tmp_path: Path) -> None:
    """kill -9 of `segbalance stats` while its worker pool runs: workers, forkserver and tracker all go too."""
    from segbalance.core.datasets.sample import make_sample_dataset

    ds = make_sample_dataset(tmp_path / "ds", n_train=70, n_val=0, size=(64, 32), seed=1)  # >= 64: a pool
    tag = uuid.uuid4().hex
    env = {**os.environ, "SEGBALANCE_FAULT_TAG": tag, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "segbalance.core.cli", "stats", str(ds), "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    survivors: list[int] = []
    try:
        deadline = time.monotonic() + 60
        # main + resource tracker + forkserver + at least one worker
        while len(_tagged(tag)) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            pytest.skip("stats finished before its pool was up (machine too fast to catch it)")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while _tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = _tagged(tag)
        assert survivors == [], f"processes left after kill -9: {survivors}"
    finally:
        for pid in survivors:  # never leave them running, even when the test fails
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# -- issue 40 minor items -------------------------------------------------------------------------------------
def test_pairs_into_a_closed_pipe_is_quiet(base: Path) -> None:
    """`segbalance pairs | head`: the reader went away; no 'Broken pipe' line, the exit status of SIGPIPE."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-m", "segbalance.core.cli", "pairs", "--workspace",
                               str(base / "ws")], stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)
    assert proc.stderr == "" and proc.returncode == 141, (proc.returncode, proc.stderr)


def test_pairs_table_header_keeps_its_words_apart(base: Path, capsys) -> None:
    assert main(["pairs", "--workspace", str(base / "ws")]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[:6] == ["id", "job", "recipe", "strategy", "status", "quality"], header


def test_stats_skip_bad_that_skips_every_map_fails(base: Path, tmp_path: Path, capsys) -> None:
    ds = Ctx(base, tmp_path).copy_ds()
    for label in (ds / "gtFine" / "val").rglob("*_labelIds.png"):
        label.write_bytes(b"not a png")
    rc, err, lines = run_cli(["stats", str(ds), "--split", "val", "--skip-bad", "--json"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "every label map of split val was skipped as bad (2); nothing was measured" in lines[-1]
    assert all(ln.startswith("skipped: ") for ln in lines[:-1])


def test_gan_score_refuses_an_unreadable_generator_before_scoring_real_images(base: Path, tmp_path: Path, capsys,
                                                                            monkeypatch) -> None:
    from segbalance.core.seg import gan_score, quality

    monkeypatch.setattr(quality, "load_scorer", lambda *a, **k: object())  # no segmentation run needed here

    def scored(*a, **k):
        raise AssertionError("real images were scored before the generator was checked")

    monkeypatch.setattr(gan_score, "score_real", scored)
    cut = _cut_ckpt(Ctx(base, tmp_path))
    rc, err, lines = run_cli(["gan-score", "--seg-checkpoint", str(tmp_path), "--dataset", str(base / "ds"),
                              "--renderer", "pix2pixhd", "--checkpoint", str(cut), "--device", "cpu"], capsys)
    assert rc == 2 and len(lines) == 1 and "g_cut.pth: not a readable PyTorch checkpoint" in lines[0], lines


def test_sigterm_during_recombine_leaves_no_partial_maps(base: Path, tmp_path: Path) -> None:
    """SIGTERM (a scheduler, `kill`) cleans up as Ctrl-C does; leftovers of a kill -9 are refused, not mixed in."""
    import json as _json

    plan = _json.loads((base / "plan.json").read_text())
    plan["recipes"] = plan["recipes"] * 400  # long enough to be caught midway
    big = tmp_path / "big.json"
    big.write_text(_json.dumps(plan))
    out = tmp_path / "maps"
    proc = subprocess.Popen([sys.executable, "-m", "segbalance.core.cli", "recombine", str(big), "--workspace",
                             str(base / "ws"), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not (out.is_dir() and len(list(out.glob("*.png"))) >= 20) and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip("recombine finished before it could be stopped")
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert not out.exists(), "partial maps were left behind"
    # what a kill -9 leaves: maps beyond those of the next, smaller run are refused rather than kept beside it
    out.mkdir()
    (out / "recomb_000999_000019_gtFine_labelIds.png").write_bytes(b"x")
    rc = main(["recombine", str(base / "plan.json"), "--workspace", str(base / "ws"), "--out", str(out)])
    assert rc == 2 and (out / "recomb_000999_000019_gtFine_labelIds.png").exists()


def test_palette_and_low_bit_masks_are_read_as_their_stored_values(tmp_path: Path) -> None:
    """A palette PNG's ids are its indices (not its colours); a 1-bit mask holds 0 and 1, not 0 and 255."""
    from PIL import Image

    from segbalance.core.datasets import open_dataset

    root = make_folder(tmp_path / "folder")
    want = {}
    for i in range(3):
        lab = np.asarray(Image.open(root / "masks" / f"img{i}.png"))
        want[f"img{i}"] = lab
        if i == 0:  # VOC style: index = id, with a palette whose colours are not classes.json's
            im = Image.fromarray(lab, "P")
            im.putpalette([9, 9, 9, 200, 100, 50, 10, 20, 30] + [0] * 759)
            im.save(root / "masks" / "img0.png")
        elif i == 1:  # only background and crack: a 1-bit mask
            want["img1"] = (lab == 1).astype(np.uint8)
            Image.fromarray(lab == 1).save(root / "masks" / "img1.png")
    ds = open_dataset(root)
    for ref in ds.samples():
        assert np.array_equal(ds.load_label(ref), want[ref.id]), ref.id
