"""segbalance pairs / review: list generated pairs and accept or reject them."""

from __future__ import annotations

import argparse
import json

from segbalance.core.commands import row_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pairs", help="list generated pairs")
    p.add_argument("--workspace", required=True)
    p.add_argument("--status", help="comma-separated: pending, accepted, rejected, failed")
    p.add_argument("--job", type=row_id, help="only pairs of this job")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.jobs.pairs import PAIR_STATUSES, list_pairs
    from segbalance.core.workspace import Workspace

    status = [s.strip() for s in args.status.split(",") if s.strip()] if args.status else None
    bad = [s for s in status or [] if s not in PAIR_STATUSES]
    if bad:
        raise SegbalanceError(f"unknown status {', '.join(bad)}; valid: {', '.join(PAIR_STATUSES)}")
    with Workspace(args.workspace, create=False) as ws:
        rows = list_pairs(ws, status, args.job)
    if args.json:
        print(json.dumps(rows))
        return 0
    # columns as wide as their longest entry plus a space, so no two words ever run together
    sw = max([len("strategy"), *(len(r["strategy"]) for r in rows)]) + 1
    tw = max([len("status"), *(len(r["status"]) for r in rows)]) + 1
    print(f"{'id':>6} {'job':>4} {'recipe':>6}  {'strategy':<{sw}}{'status':<{tw}}{'quality':>7}  "
          "classes added / image")
    for r in rows:
        q = f"{r['quality']:.3f}" if r["quality"] is not None else "-"
        print(f"{r['id']:>6} {r['job_id']:>4} {r['recipe_index']:>6}  {r['strategy']:<{sw}}{r['status']:<{tw}}"
              f"{q:>7}  {','.join(r['classes_added'])}  {r['image']}")
    print(f"{len(rows)} pair(s)")
    return 0
