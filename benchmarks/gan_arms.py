"""Generator arms compared over seeds, from bench_gan_curve.py --json files. Prints a table, no assertions.

Each arm is NAME=WEIGHTS:FILE,FILE,... where WEIGHTS picks the scored weights of each file (G for a run without a
weight average, raw or EMA for one with it) and the files are one run per seed. Every arm is compared with the
first, paired by seed: the mean difference in gen score (mIoU points) with its t interval over the seeds and the
word it earns (gain, loss, within noise); each arm's share of the oracle's score gets a t interval too.

    python benchmarks/gan_arms.py --at 1500 release=raw:s0.json,s1.json,s2.json ema=EMA:s0.json,s1.json,s2.json

WEIGHTS@N takes that arm's checkpoint at iteration N instead of --at, to compare schedules of different lengths
(each at its own end): `short=EMA:a0.json,a1.json long=EMA@2500:b0.json,b1.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from segbalance.core.experiments.evidence import decide, seed_interval


def _arm(text: str) -> tuple[str, str, int | None, list[Path]]:
    name, _, rest = text.partition("=")
    weights, _, files = rest.partition(":")
    weights, _, at = weights.partition("@")
    if not name or not weights or not files or (at and not at.isdigit()):
        raise argparse.ArgumentTypeError(f"expected NAME=WEIGHTS[@ITER]:FILE,FILE,..., got {text!r}")
    return name, weights, int(at) if at else None, [Path(f) for f in files.split(",") if f]


def _scores(weights: str, files: list[Path], at: int) -> dict[int, tuple[float, float]]:
    """{seed: (gen score, oracle score)} of the checkpoint at iteration `at`, in mIoU points."""
    out = {}
    for f in files:
        data = json.loads(f.read_text())
        rows = [r for r in data["rows"] if r["iteration"] == at and r["weights"] == weights]
        if len(rows) != 1:
            raise SystemExit(f"{f}: no single row for iteration {at} and weights {weights!r}")
        out[int(data["seed"])] = (rows[0]["miou"] * 100, data["oracle_miou"] * 100)
    return out


def _iv(iv) -> str:
    return "–" if iv is None else f"{iv.mean:+.2f} [{iv.lo:+.2f}, {iv.hi:+.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arms", nargs="+", type=_arm, metavar="NAME=WEIGHTS[@ITER]:FILES")
    ap.add_argument("--at", type=int, required=True, help="the checkpoint iteration to compare (unless WEIGHTS@ITER)")
    args = ap.parse_args()

    arms = [(name if at is None else f"{name} @{at}", _scores(w, files, args.at if at is None else at))
            for name, w, at, files in args.arms]
    ref_name, ref = arms[0]
    print(f"gen score at iteration {args.at} unless the arm names its own (mIoU), per seed; "
          "% of oracle: gen / oracle score on the same maps, "
          "t interval over the seeds; Δ: arm − the first arm, paired by seed, t interval over the seeds")
    print("| arm | per seed | % of oracle | Δ vs " + ref_name + " (mIoU) | verdict |")
    print("|---|---|---|---|---|")
    for name, sc in arms:
        seeds = sorted(sc)
        per_seed = ", ".join(f"s{s} {sc[s][0]:.2f}" for s in seeds)
        share = seed_interval([100 * sc[s][0] / sc[s][1] for s in seeds])
        share_txt = "–" if share is None else f"{share.mean:.1f}% [{share.lo:.1f}, {share.hi:.1f}]"
        if name == ref_name:
            print(f"| {name} | {per_seed} | {share_txt} | – | – |")
            continue
        common = [s for s in seeds if s in ref]
        iv = seed_interval([sc[s][0] - ref[s][0] for s in common])
        print(f"| {name} | {per_seed} | {share_txt} | {_iv(iv)} (seeds {', '.join(map(str, common))}) | "
              f"{decide(iv) if iv is not None else '–'} |")


if __name__ == "__main__":
    main()
