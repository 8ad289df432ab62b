"""The pair writer of the generate job: a pair's files encoded and written atomically on worker threads, and
its GeneratedPair row committed in a batch only after the batch's files are flushed to disk.

The job (core.jobs.generate) decides what to render and when to stop; this module only makes what it rendered
durable, in the order that keeps the workspace consistent: files first, then one syncfs, then the rows.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from segbalance.core.datasets.cityscapes import IMAGE_SUFFIX, INSTANCE_SUFFIX, LABEL_SUFFIX
from segbalance.core.datasets.stats import pixel_counts
from segbalance.core.errors import DataError, SegbalanceError
from segbalance.core.io import PNG_MAP_CV2, PNG_PHOTO_CV2, encode_png
from segbalance.core.jobs.job_rows import _db_call
from segbalance.db import models as m
from segbalance.db.base import utcnow


def pair_stem(job_id: int, index: int) -> str:
    """Cityscapes-style stem: the job is the 'city', the recipe index the sequence number."""
    return f"job{job_id}_{index:06d}_000019"


# The lossless settings generate writes with (io.encode_png; these are OpenCV's, used without isal)
PNG_PHOTO = PNG_PHOTO_CV2
PNG_MAP = PNG_MAP_CV2


def _encode_png(arr: np.ndarray, path: Path, rgb: bool = False) -> bytes:
    try:
        return encode_png(arr, photo=rgb)
    except ValueError as exc:
        raise DataError(f"cannot encode PNG ({exc})", path) from None


def _write_pair(files: list[tuple[Path, bytes]], durable: bool = True) -> None:
    """Write every file of a pair atomically; on any failure remove the ones already written.

    durable=False leaves the fsync to commit_pairs (one syncfs per batch before its rows commit).
    """
    from segbalance.core.io import atomic_write_bytes

    written: list[Path] = []
    try:
        for path, data in files:
            atomic_write_bytes(path, data, durable=durable)
            written.append(path)
    except OSError as exc:
        for p in written:
            p.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise SegbalanceError("disk full: the partial pair was removed; free space and re-run the same "
                                  "command to resume", exc.filename or files[0][0].parent) from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise SegbalanceError(f"cannot write pairs ({exc.strerror})", exc.filename or files[0][0].parent) \
                from None
        raise


def _sha(data: bytes) -> str:
    from segbalance.core.io import bytes_sha256

    return bytes_sha256(data)


class PairWriter:
    """Encodes and writes pairs on worker threads and commits their rows in batches, overlapping rendering.

    Workers only encode and write files (cv2 releases the GIL); one committer thread flushes the files of
    whatever pairs are complete (one syncfs) and inserts their rows in one transaction per BATCH pairs or
    GATHER_S seconds, whichever comes first, so the fsyncs, the ORM's Python work and the DB's fsync are paid
    per batch, not per pair, and contend less with the rendering thread for the GIL. A row is still committed
    only after its files are on disk. The first error stops further writes and is raised in the caller's thread
    at its next put() or at close(). A killed process loses only pairs without a row (their files are orphans
    removed on resume).
    """

    BATCH = 16
    # gather a batch of rows per transaction: committing at each pair's notify held the GIL per pair for
    # longer than the batch does (figures: docs/benchmarks.md, "generate's writer")
    GATHER_S = 0.25

    @staticmethod
    def default_threads() -> int:
        """One core is the renderer's: writers beyond the other cores only take CPU from it. On 2 cores one
        writer beat four in a sweep of run_generate on bench_generate's data (docs/benchmarks.md)."""
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, min(4, cores - 1))

    def __init__(self, commit: Callable[[list], None] | None = None, threads: int | None = None,
                 depth: int = 8) -> None:
        threads = threads or self.default_threads()
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: list[tuple[object, bool]] = []
        self._closing = False
        self._commit = commit
        self.error: BaseException | None = None
        self.committed = 0
        self.rejected = 0
        self._threads = [threading.Thread(target=self._run, name=f"pair-writer-{k}", daemon=True)
                         for k in range(threads)]
        self._committer = threading.Thread(target=self._commit_loop, name="pair-committer", daemon=True)
        for t in self._threads:
            t.start()
        self._committer.start()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            task, rejected = item
            if self.error is not None:
                continue
            try:
                record = task()
            except BaseException as exc:  # handed to the caller's thread
                self._fail(exc)
                continue
            with self._cond:
                self._pending.append((record, rejected))
                self._cond.notify()

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait(0.2)
                if not self._pending and self._closing:
                    return
                # let more pairs complete: every pair notifies, so wait out the deadline, not the first notify
                deadline = time.monotonic() + self.GATHER_S
                while len(self._pending) < self.BATCH and not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, self._pending = self._pending, []
            try:
                if self._commit is not None:
                    self._commit([r for r, _ in batch])
                with self._lock:
                    self.committed += len(batch)
                    self.rejected += sum(rej for _, rej in batch)
            except BaseException as exc:
                self._fail(exc)

    def _raise(self) -> None:
        with self._lock:
            err, self.error = self.error, None
        if err is not None:
            raise err

    def put(self, task: Callable[[], object], rejected: bool = False) -> None:
        self._raise()
        self._q.put((task, rejected))

    def close(self) -> None:
        alive = [t for t in self._threads if t.is_alive()]
        for _ in alive:
            self._q.put(None)
        for t in alive:
            t.join()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._committer.is_alive():
            self._committer.join()
        self._raise()


def store_pair(ws, job_id: int, i: int, recipe, item, img: np.ndarray, pairs_dir: Path, pairs_rel: Path, rend,
                seed, quality, status: str, names: dict[int, str], old) -> _Written:
    """Encode and write one pair's files; the row is committed by the writer's committer (commit_pairs)."""
    from segbalance.core.recombine.write import instance_png

    stem = pair_stem(job_id, i)
    img_p, lab_p, inst_p = (pairs_dir / (stem + sfx) for sfx in (IMAGE_SUFFIX, LABEL_SUFFIX, INSTANCE_SUFFIX))
    if img.shape[:2] != item.label.shape:
        raise DataError(f"renderer returned {img.shape[1]}x{img.shape[0]} for a "
                        f"{item.label.shape[1]}x{item.label.shape[0]} map")
    blobs = [(img_p, _encode_png(img, img_p, rgb=True)), (lab_p, _encode_png(item.label, lab_p)),
             (inst_p, _encode_png(instance_png(item.instance), inst_p))]
    # a new pair's files are flushed with its batch (no row claims them before); one that replaces a committed
    # row's files is flushed at once, since that row already points at them
    _write_pair(blobs, durable=old is not None)
    counts = pixel_counts(item.label)  # cv2.calcHist: releases the GIL, which np.bincount holds
    values = dict(
        recipe=recipe.to_dict(), strategy=recipe.strategy, source_samples=recipe.sources(),
        classes_added=[names.get(c, str(c)) for c in recipe.classes_added()],
        image_path=str(pairs_rel / img_p.name), label_path=str(pairs_rel / lab_p.name),
        instance_path=str(pairs_rel / inst_p.name),
        image_sha256=_sha(blobs[0][1]), label_sha256=_sha(blobs[1][1]), instance_sha256=_sha(blobs[2][1]),
        renderer=rend.name, checkpoint_sha256=rend.checkpoint_sha256,
        seed=int(seed) if seed is not None else int(recipe.seed),
        pixel_counts={names.get(int(k), str(int(k))): int(counts[k]) for k in np.flatnonzero(counts)},
        quality=quality, status=status, created_at=utcnow())

    return _Written(job_id, i, values, old.id if old is not None else None, [p for p, _ in blobs])


@dataclass
class _Written:
    """A pair whose files are on disk and whose row is not committed yet."""

    job_id: int
    index: int
    values: dict
    old_id: int | None
    files: list[Path]


def commit_pairs(ws, written: list[_Written]) -> None:
    """Insert (or, for a redone recipe, update) the rows of pairs whose files exist, in one transaction.

    The files are flushed first, with one syncfs for the batch instead of three fsyncs per pair: a row is
    committed only once its files would survive a power cut.
    """
    from segbalance.core.io import sync_filesystem

    def go() -> None:
        with ws.session() as s, s.begin():
            new = []
            for w in written:
                row = s.get(m.GeneratedPair, w.old_id) if w.old_id is not None else None
                if row is None:
                    new.append(dict(job_id=w.job_id, recipe_index=w.index, **w.values))
                else:
                    for k, v in w.values.items():
                        setattr(row, k, v)
            if new:  # one executemany: ORM objects cost GIL-held Python per pair (docs/benchmarks.md)
                s.execute(insert(m.GeneratedPair), new)
    try:
        if written:
            try:
                sync_filesystem(written[0].files[0].parent, [f for w in written for f in w.files])
            except OSError as exc:  # EIO from writeback: these pairs' files may be damaged, so they get no row
                raise SegbalanceError(f"cannot flush pairs to disk ({exc.strerror}); re-run the same command to "
                                      "resume", written[0].files[0].parent) from None
        _db_call(go)
    except BaseException:
        for w in written:  # no row, no files: those pairs are redone on resume
            for p in w.files:
                p.unlink(missing_ok=True)
        raise
