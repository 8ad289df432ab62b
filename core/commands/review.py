"""segbalance review: accept or reject generated pairs by id."""

from __future__ import annotations

import argparse

from segbalance.core.commands import row_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="accept or reject generated pairs")
    p.add_argument("--workspace", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--accept", type=row_id, nargs="+", metavar="ID", help="pair ids to accept")
    g.add_argument("--reject", type=row_id, nargs="+", metavar="ID", help="pair ids to reject")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbalance.core.jobs.decisions import decide
    from segbalance.core.jobs.pairs import ACCEPTED, REJECTED
    from segbalance.core.workspace import Workspace

    ids, status = (args.accept, ACCEPTED) if args.accept else (args.reject, REJECTED)
    with Workspace(args.workspace, create=False) as ws:
        n = len(decide(ws, ids, status, by="cli").before)
    print(f"{status} {n} pair(s)")
    return 0
