"""The CLI's progress bars: engine functions take a (done, total) callback, this adapts it to tqdm."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def cli_progress(desc: str, unit: str = "it", *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a progress callback drawing a tqdm bar on stderr (stdout stays clean for --json)."""
    bar: tqdm | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if not enabled:
            return
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
