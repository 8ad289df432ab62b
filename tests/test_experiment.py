"""The main job end to end, in the reduced `ci` form: every arm gives a row, outputs parse, runs repeat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from segbalance.core.experiments.protocol import ALL_ARMS, preset, run_experiment
from segbalance.core.workspace import Workspace
from segbalance.db import models as m

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("exp")
    payload = run_experiment(preset("ci", threads=1), out, say=lambda s: None)
    return out, payload


def test_every_arm_gives_a_row_and_outputs_parse(ci_run) -> None:
    out, payload = ci_run
    assert list(payload["arms"]) == list(ALL_ARMS)
    table = (out / "results.md").read_text()
    for arm in ALL_ARMS:
        assert f"| {arm} |" in table
    data = json.loads((out / "results.json").read_text())
    assert set(data["arms"]) == set(ALL_ARMS)
    for arm, row in data["arms"].items():
        assert 0.0 <= row["miou"] <= 100.0, arm
        assert row["seeds"] == 1
    assert data["arms"]["baseline"]["delta"] == 0.0
    img = cv2.imread(str(out / "delta.png"))
    assert img is not None and img.shape[1] > 400
    # the arms with generated data used their own generation jobs, all logged in the workspace
    assert set(data["jobs"]) == {"copypaste", "single", "multi", "recon", "recon-filter", "oracle"}
    # recon-filter trains on recon's very pairs: only the training differs
    assert data["jobs"]["recon-filter"] == data["jobs"]["recon"]
    ignored = data["arms"]["recon-filter"]["ignored_per_seed"]
    assert len(ignored) == 1 and 0.0 <= ignored[0] <= 100.0
    assert "recon-filter: trains on recon's pairs with the noisy-pixel filter (x1.25)" in table
    assert "ignored_per_seed" not in data["arms"]["recon"]
    with Workspace(out) as ws, ws.session() as s:
        runs = s.query(m.TrainingRun).filter(m.TrainingRun.kind == "seg").count()
        used = {arm: [s.query(m.GeneratedPair).filter(m.GeneratedPair.job_id == j,
                                                     m.GeneratedPair.status.in_(["pending", "accepted"])).count()
                      for j in js] for arm, js in data["jobs"].items()}
        assert s.query(m.Job).filter(m.Job.kind == "experiment").count() == 1
    assert runs == len(ALL_ARMS)
    # the table's pair counts are the pairs the DB holds for each arm's jobs
    for arm, per_seed in used.items():
        assert all(n > 0 for n in per_seed), (arm, per_seed)
        assert data["arms"][arm]["pairs_per_seed"] == per_seed
        assert f"| {arm} | {data['arms'][arm]['pairs']:.0f}" in table
    # every arm but the baseline carries its paired evidence; rendering arms their generator score
    for arm in ALL_ARMS[1:]:
        ev = data["arms"][arm]["evidence"]
        assert ev["word"] in ("gain", "loss", "within noise")
        assert ev["seeds"] is None and len(ev["images"]) == 2  # one seed: no interval over seeds
    for arm in data["jobs"]:
        assert data["arms"][arm]["gen_score"] is not None
        assert Path(data["montages"][arm]).is_file()
    assert data["arms"]["recon-filter"]["gen_score"] == data["arms"]["recon"]["gen_score"]
    # recon's generator as a share of the oracle's on the same maps: the ratio of the two scores, with its
    # interval around it; arms on other maps (single, multi) or without a generator get none
    vs = data["arms"]["recon"]["gen_vs_oracle"]
    assert vs["mean"] == pytest.approx(data["arms"]["recon"]["gen_score"] / data["arms"]["oracle"]["gen_score"])
    assert vs["lo"] <= vs["mean"] <= vs["hi"] and vs["maps"] == data["arms"]["recon"]["pairs_per_seed"][0]
    assert f"{vs['mean'] * 100:.0f}% [" in table
    assert "gen_vs_oracle" not in data["arms"]["copypaste"] and "gen_vs_oracle" not in data["arms"]["single"]
    # head to head: one change at a time; a paired delta is linear, so it is the difference of the two
    # arms' deltas against the baseline
    h2h = {(c["reference"], c["arm"]): c for c in data["head_to_head"]}
    assert set(h2h) == {("oracle", "recon"), ("recon", "recon-filter")}
    for (ref, arm), c in h2h.items():
        want = data["arms"][arm]["evidence"]["delta"] - data["arms"][ref]["evidence"]["delta"]
        assert c["evidence"]["delta"] == pytest.approx(want, abs=1e-9)
        assert c["evidence"]["word"] in ("gain", "loss", "within noise") and len(c["evidence"]["images"]) == 2
        assert f"| {arm} − {ref} |" in table


def test_rerun_reuses_finished_work_and_same_seed_repeats_numbers(ci_run, tmp_path: Path) -> None:
    out, payload = ci_run
    # same folder: everything is reused, the numbers are read back unchanged
    again = run_experiment(preset("ci", threads=1, arms=("baseline", "recon")), out, say=lambda s: None)
    for arm in ("baseline", "recon"):
        assert again["arms"][arm]["miou"] == payload["arms"][arm]["miou"]
    # a fresh folder recomputes everything from scratch and gets the same numbers
    fresh = run_experiment(preset("ci", threads=1, arms=("baseline", "recon")), tmp_path / "exp2",
                           say=lambda s: None)
    for arm in ("baseline", "recon"):
        assert fresh["arms"][arm]["miou"] == pytest.approx(payload["arms"][arm]["miou"], abs=1e-9)


def test_experiment_cli_rejects_unknown_config_and_arm(tmp_path: Path) -> None:
    for args, needle in ((["--config", "huge"], "unknown experiment config"),
                         (["--config", "ci", "--arms", "baseline,magic"], "unknown arm")):
        r = subprocess.run([sys.executable, "-m", "segbalance.core.cli", "experiment", "--out", str(tmp_path / "x"),
                            *args],
                           capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_demo_command_prints_table_plots_and_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "segbalance.core.cli", "demo", "--config", "ci", "--workspace", str(ws)],
                       capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| baseline |" in r.stdout and "| recon |" in r.stdout
    assert (ws / "plots" / "class_shares.png").is_file() and (ws / "results.md").is_file()
    assert f"segbalance-gui {ws}" in r.stdout


def test_estimate_multiplies_measured_unit_costs_by_the_schedule(tmp_path: Path, capsys, monkeypatch) -> None:
    """`experiment --estimate` sizes a config (the paper one on a GPU) without running it or writing anything."""
    from segbalance.core.cli import main
    from segbalance.core.experiments.estimate import estimate_experiment

    monkeypatch.delenv("SEGBALANCE_VGG19", raising=False)
    cfg = preset("ci", arms=("baseline", "recon", "single", "recon-filter"), seeds=2)
    est = estimate_experiment(cfg, steps=1, say=lambda s: None)
    parts = {c["what"].split(",")[0]: c for c in est["components"]}
    assert set(parts) == {"PSPNet-resnet18 training step", "PSPNet evaluation", "pix2pixHD tiny G+D step",
                          "pix2pixHD render"}
    assert parts["PSPNet-resnet18 training step"]["count"] == 4 * 2 * cfg.seg_iters
    # one pass per run (its final evaluation writes the per-image counts), plus the pairs the generator score
    # segments: recon-filter trains on recon's pairs, so it renders and scores nothing of its own
    assert parts["PSPNet evaluation"]["count"] == 4 * 2 * cfg.n_val + 2 * 2 * min(cfg.score_images, cfg.budget)
    assert parts["pix2pixHD tiny G+D step"]["count"] == 2 * cfg.gan_iters  # one generator per seed
    assert parts["pix2pixHD render"]["count"] == 2 * 2 * cfg.budget  # two generating arms x two seeds
    assert "without the VGG loss" in parts["pix2pixHD tiny G+D step"]["note"]  # says what it did not time
    for c in est["components"]:
        assert c["seconds_per_unit"] > 0 and c["peak_mb"] > 0
    assert abs(est["total_s"] - sum(c["seconds_per_unit"] * c["count"] for c in est["components"])) < 1e-6
    # without generating arms, no GAN parts; the CLI prints the table and leaves --out alone
    rc = main(["experiment", "--config", "ci", "--arms", "baseline", "--estimate", "--estimate-steps", "1",
               "--out", str(tmp_path / "never")])
    out = capsys.readouterr().out
    assert rc == 0 and "| PSPNet-resnet18 training step" in out and "pix2pixHD" not in out
    assert "of compute, peak memory" in out and not (tmp_path / "never").exists()
    assert "output stride 8" in out
    rc = main(["experiment", "--config", "ci", "--arms", "baseline", "--estimate", "--estimate-steps", "1",
               "--seg-output-stride", "16"])
    assert rc == 0 and "output stride 16" in capsys.readouterr().out


def test_estimate_extrapolates_a_batch_too_big_to_measure() -> None:
    from dataclasses import replace

    from segbalance.core.experiments.estimate import estimate_experiment

    cfg = replace(preset("ci", arms=("baseline",)), seg_batch=6)
    step = estimate_experiment(cfg, steps=1, say=lambda s: None)["components"][0]
    assert "batch 6" in step["what"] and "extrapolated" in step["note"]
    assert step["peak_mb"] > 0 and step["seconds_per_unit"] > 0
