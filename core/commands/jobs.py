"""segbalance jobs: follow jobs started elsewhere (status, progress, log) and ask one to stop."""

from __future__ import annotations

import argparse
import json

from segbalance.core.commands import row_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list jobs, show one (progress, log), or cancel one")
    p.add_argument("--workspace", required=True)
    p.add_argument("job", nargs="?", type=row_id, help="job id to show")
    p.add_argument("--cancel", action="store_true", help="ask the job to stop at its next clean boundary")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.jobs.job_rows import job_info, list_jobs, request_cancel
    from segbalance.core.workspace import Workspace

    with Workspace(args.workspace, create=False) as ws:
        if args.job is None:
            if args.cancel:
                raise SegbalanceError("--cancel needs a job id")
            rows = list_jobs(ws)
            if args.json:
                print(json.dumps(rows))
                return 0
            for j in rows:
                print(f"#{j['id']:<4} {j['kind']:<10} {j['status']:<10} {j['done']}/{j['total']}  {j['message'] or ''}")
            return 0
        info = job_info(ws, args.job)
        if args.cancel:
            request_cancel(ws, args.job)
            info = job_info(ws, args.job)
            print(f"cancel requested for job #{args.job} ({info['status']})")
            return 0
    if args.json:
        print(json.dumps(info))
        return 0
    eta = f", ETA {info['eta_s']:.0f} s" if info["eta_s"] else ""
    rate = f", {info['rate']:.1f}/s" if info["rate"] else ""
    print(f"job #{info['id']} {info['kind']}: {info['status']} {info['done']}/{info['total']}{rate}{eta}")
    if info["message"]:
        print(info["message"])
    for line in info["log"]:
        print("  " + line)
    return 0
