"""The engine as services (issue 14): the CLI and the app call the same core functions and say the same
numbers — pair review, export counts, plan summaries, dataset records."""

from __future__ import annotations

import numpy as np
import pytest

from segbalance.core.cli import main
from segbalance.core.datasets import catalog, open_dataset
from segbalance.core.errors import SegbalanceError
from segbalance.core.export.formats import export_dataset
from segbalance.core.io import write_png
from segbalance.core.jobs import decisions, pairs
from segbalance.core.planning.balance import Plan
from segbalance.core.workspace import Workspace
from segbalance.db import models as m
from segbalance.desktop_app import core_calls


@pytest.fixture
def ws_with_pairs(tmp_path, sample_dataset):
    """A generate job on the sample dataset with pairs of every status."""
    ds = open_dataset(sample_dataset)
    ws = Workspace(tmp_path / "ws")
    statuses = ["pending", "accepted", "accepted", "rejected", "failed"]
    with ws.session() as s, s.begin():
        job = m.Job(kind="generate", params={"fingerprint": ds.fingerprint()}, status="done")
        other = m.Job(kind="generate", params={"fingerprint": "another-dataset"}, status="done")
        s.add_all([job, other])
        s.flush()
        for i, st in enumerate([*statuses, "accepted"]):
            jid = job.id if i < len(statuses) else other.id
            d = ws.subdir("pairs", str(jid))
            write_png(d / f"p{i}_gtFine_labelIds.png", np.full((128, 256), 7, np.uint8))
            write_png(d / f"p{i}_leftImg8bit.png", np.zeros((128, 256, 3), np.uint8), rgb=True)
            s.add(m.GeneratedPair(job_id=jid, recipe_index=i, recipe={}, strategy="single", source_samples=[],
                                  classes_added=["wall"], image_path=ws.rel(d / f"p{i}_leftImg8bit.png"),
                                  label_path=ws.rel(d / f"p{i}_gtFine_labelIds.png"), renderer="copypaste",
                                  status=st))
    yield ws, ds
    ws.close()


def test_export_counts_are_what_the_export_writes(ws_with_pairs, tmp_path):
    ws, ds = ws_with_pairs
    counts = pairs.export_counts(ws, ds)
    assert counts == {"pending": 1, "accepted": 2, "rejected": 1, "failed": 1}  # the other dataset's pair is out
    assert pairs.status_counts(ws)["accepted"] == 3
    man = export_dataset(ws, ds, tmp_path / "out", ("accepted", "pending"))
    assert man["generated"] == counts["accepted"] + counts["pending"]


def test_a_failed_pair_is_refused_by_the_service_and_the_cli_alike(ws_with_pairs, capsys):
    ws, _ds = ws_with_pairs
    failed = next(p.id for p in pairs.pair_records(ws) if p.status == "failed")
    with pytest.raises(SegbalanceError) as exc:
        decisions.decide(ws, [failed], "accepted", by="cli")
    assert main(["review", "--workspace", str(ws.path), "--accept", str(failed)]) == 2
    assert capsys.readouterr().err.strip() == f"segbalance review: error: {exc.value}"
    assert next(p.status for p in pairs.pair_records(ws) if p.id == failed) == "failed"
    with pytest.raises(SegbalanceError, match="no pair with id 999"):
        decisions.decide(ws, [999], "rejected", by="cli")


def test_the_cli_plan_and_the_app_summary_give_the_same_counts(sample_dataset, tmp_path, capsys):
    out = tmp_path / "plan.json"
    argv = ["plan", str(sample_dataset), "--workspace", str(tmp_path / "ws"), "--target",
            "wall=0.06,fence=0.05", "--budget", "4", "--out", str(out)]
    assert main(argv) == 0
    cli = capsys.readouterr().out
    ds = open_dataset(sample_dataset)
    app = core_calls.plan_summary(Plan.load(out), ds.label_set).splitlines()
    assert app[1].removeprefix("by strategy: ") in cli.split("strategies: ")[1].splitlines()[0]
    assert f"adding: {app[2].removeprefix('adding: ')}" in cli


def test_datasets_inside_the_workspace_are_stored_relative(tmp_path):
    from segbalance.core.datasets.sample import make_sample_dataset

    ws = Workspace(tmp_path / "ws")
    inside = make_sample_dataset(ws.path / "data" / "s", n_train=2, n_val=1, size=(64, 32), seed=0)
    outside = make_sample_dataset(tmp_path / "outside", n_train=2, n_val=1, size=(64, 32), seed=0)
    ws.register_dataset(open_dataset(inside))
    ws.register_dataset(open_dataset(outside))
    recs = catalog.datasets(ws)
    assert [r.stored for r in recs] == ["data/s", str(outside.resolve())]
    assert recs[0].path == ws.path / "data" / "s" and recs[0].exists
    assert ws.register_dataset(open_dataset(inside)) == recs[0].id  # found again, not added twice
    ws.close()
