"""`segbalance` command line: one sub-command per module in core/commands/.

User errors (bad files, bad options) print one line and exit 2; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from typing import NoReturn

from segbalance.core import __version__
from segbalance.core.errors import Cancelled, SegbalanceError

# Each module exposes register(subparsers); its parser sets `func(args) -> int`.
COMMAND_MODULES = [
    "segbalance.core.commands.sample_data",
    "segbalance.core.commands.stats",
    "segbalance.core.commands.plan",
    "segbalance.core.commands.recombine",
    "segbalance.core.commands.generate",
    "segbalance.core.commands.pairs",
    "segbalance.core.commands.review",
    "segbalance.core.commands.export",
    "segbalance.core.commands.jobs",
    "segbalance.core.commands.train_seg",
    "segbalance.core.commands.evaluate",
    "segbalance.core.commands.compare",
    "segbalance.core.commands.demo",
    "segbalance.core.commands.experiment",
    "segbalance.core.commands.train_gan",
    "segbalance.core.commands.render",
    "segbalance.core.commands.gan_score",
]


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error convention: one line, exit 2 (the usage block is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so every clean-up path a Ctrl-C takes runs for it too."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated()


def _on_sigterm_raise():
    """Make SIGTERM raise Terminated in the main thread; returns the handler to restore (None: not installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):
        return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def one_line(text: str) -> str:
    """An error message as one line: a file name holding a line break is shown with the break escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="segbalance",
        description="Balance the class distribution of a semantic-segmentation dataset with generated pairs.",
    )
    parser.add_argument("--version", action="version", version=f"segbalance {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is a global switch; accept it after the sub-command too (up to a `--` end-of-options marker)
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end] or os.environ.get("SEGBALANCE_DEBUG") == "1"
    argv = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = _on_sigterm_raise()
    try:
        if getattr(args, "workspace", None) and getattr(args, "dataset", None):
            from segbalance.core.workspace import check_apart

            check_apart(dataset=args.dataset, workspace=args.workspace)  # before anything opens the workspace
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit flush
        return rc
    except BrokenPipeError:
        # `segbalance pairs | head`: the reader has all it wanted; say nothing, exit as tools killed by SIGPIPE do
        _silence_stdout()
        return 141
    except SegbalanceError as exc:
        if debug:
            raise
        print(f"segbalance {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except Terminated:
        if debug:
            raise
        print(f"segbalance {args.command}: terminated (SIGTERM); what it had half-written was removed",
              file=sys.stderr)
        return 143
    except (Cancelled, KeyboardInterrupt):
        if debug:
            raise
        print(f"segbalance {args.command}: cancelled", file=sys.stderr)
        return 130
    except OSError as exc:
        # disk full, permission denied, ...: name the file, no traceback
        if debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"segbalance {args.command}: error: {one_line(where + str(exc.strerror or exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        # a damaged, read-only or failing workspace database, from whichever query met it first
        from segbalance.db import DatabaseUnusable

        if debug or not isinstance(exc, DatabaseUnusable):
            raise
        print(f"segbalance {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
