"""CLI sub-commands; each module has register(subparsers) and a run(args) -> int."""

from __future__ import annotations

import argparse

MAX_ROW_ID = 2**63 - 1  # SQLite's integers are signed 64-bit: a larger id overflows before any query


def row_id(text: str) -> int:
    """argparse type for a job or pair id: a whole number from 1 to 2^63-1 (one line otherwise, never OverflowError)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (a whole number)") from None
    if not 1 <= value <= MAX_ROW_ID:
        raise argparse.ArgumentTypeError(f"{text} is not an id (ids run from 1 to {MAX_ROW_ID})")
    return value
