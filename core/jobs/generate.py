"""The generate job: a plan turned into pairs, recombine -> render -> (score) -> write files atomically ->
commit the GeneratedPair row (only after its files exist).

Resumable: the same command finds its job again by a key over its inputs, removes orphan files, marks rows
whose files vanished as failed and redoes exactly the recipes without a good row. Under torchrun the ranks
split one plan's render batches and write into the same job.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError

from segbalance.core.datasets.cityscapes import IMAGE_SUFFIX, INSTANCE_SUFFIX, LABEL_SUFFIX
from segbalance.core.datasets.stats import pixel_counts
from segbalance.core.errors import Cancelled, DataError, SegbalanceError
from segbalance.core.io import PNG_MAP_CV2, PNG_PHOTO_CV2, encode_png
from segbalance.core.jobs.job_rows import JobContext, _db_call, _pid_alive, db_error
from segbalance.core.ranks import Rank, torchrun_rank
from segbalance.db import models as m
from segbalance.db.base import utcnow

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]
LogFn = Callable[[str], None]

# -- generate ---------------------------------------------------------------------------------------
@dataclass
class GenerateResult:
    job_id: int
    total: int
    done: int  # recipes with a good pair (this run and earlier runs)
    new: int  # pairs written by this run
    rejected: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (recipe index, why)
    pairs_dir: Path | None = None
    resumed: bool = False


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

    durable=False leaves the fsync to _commit_pairs (one syncfs per batch before its rows commit).
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


def generate_key(plan, fingerprint: str, renderer: str, checkpoint_sha: str | None, blend: str,
                 seed: int | None, min_quality: float | None) -> str:
    """Identity of a generate run: the same command on the same inputs finds (and resumes) the same job."""
    payload = json.dumps({"recipes": [r.to_dict() for r in plan.recipes], "fp": fingerprint, "renderer": renderer,
                          "ckpt": checkpoint_sha, "blend": blend, "seed": seed, "minq": min_quality},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def find_seg_checkpoint(ws) -> str | None:
    """The newest finished segmentation training run of the workspace (its run folder), if any."""
    with ws.session() as s:
        run = s.scalar(select(m.TrainingRun).where(m.TrainingRun.kind == "seg", m.TrainingRun.status == "done")
                       .order_by(m.TrainingRun.finished_at.desc(), m.TrainingRun.id.desc()))
        return run.out_dir if run is not None else None


def load_quality_scorer(ws, device: str = "auto", checkpoint: str | None = None, amp: str = "auto"):
    """The quality gate's scorer (a trained segmentation model); a clear error until one exists."""
    try:
        from segbalance.core.seg import quality
    except ImportError:
        quality = None
    ckpt = checkpoint or find_seg_checkpoint(ws)
    if quality is None or not ckpt:
        raise SegbalanceError("--min-quality: no segmentation model yet; train one (segbalance train-seg) or "
                              "pass --seg-checkpoint, then re-run")
    return quality.load_scorer(ckpt, device=device, amp=amp)


def _score(scorer, images: list[np.ndarray], labels: list[np.ndarray]) -> list[float | None]:
    """mIoU over the classes present per pair; None where no evaluated class is present (NaN)."""
    if hasattr(scorer, "score_batch"):
        raw = scorer.score_batch(images, labels)
    else:
        raw = [scorer.score(im, lab) for im, lab in zip(images, labels, strict=True)]
    return [None if v is None or v != v else float(v) for v in raw]


def _cleanup(ws, job_id: int, pairs_dir: Path, ctx: JobContext) -> dict[int, m.GeneratedPair]:
    """Remove orphan files (no row) and mark rows whose files are gone as failed; returns rows by recipe."""
    with ws.session() as s, s.begin():
        rows = {r.recipe_index: r for r in s.scalars(select(m.GeneratedPair).where(m.GeneratedPair.job_id == job_id))}
        known: set[str] = set()
        lost = []
        for r in rows.values():
            paths = [r.image_path, r.label_path] + ([r.instance_path] if r.instance_path else [])
            known.update(paths)
            if r.status != "failed" and not all(ws.abs(p).exists() for p in paths):
                r.status = "failed"
                lost.append(r.recipe_index)
    orphans = 0
    for f in pairs_dir.iterdir():
        if f.is_file() and ws.rel(f) not in known:
            f.unlink(missing_ok=True)
            orphans += 1
    if orphans:
        ctx.log(f"removed {orphans} orphan file(s) of an interrupted run")
    if lost:
        ctx.log(f"{len(lost)} pair(s) had missing files and were marked failed: recipes {lost[:10]}", "warning")
    return rows


# -- generation across processes (torchrun) ---------------------------------------------------------------
def rank_device(device: str, shard: Rank) -> str:
    """One device per rank: auto/cuda become cuda:LOCAL_RANK where CUDA is present (auto is the CPU otherwise)."""
    if not shard.enabled or device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{shard.local_rank % torch.cuda.device_count()}"
    return "cpu" if device == "auto" else device


def _good_count(ws, job_id: int) -> int:
    from sqlalchemy import func

    with ws.session() as s:
        return int(s.scalar(select(func.count()).select_from(m.GeneratedPair).where(
            m.GeneratedPair.job_id == job_id, m.GeneratedPair.status != "failed")) or 0)


def run_generate(workspace, dataset, plan, renderer: str = "copypaste", *, checkpoint: str | None = None,
                 device: str = "auto", blend: str = "feather", min_quality: float | None = None,
                 seed: int | None = None, batch_size: int | None = None, plan_source: str | Path = "plan",
                 seg_checkpoint: str | None = None, progress: Progress | None = None,
                 cancel: CancelCheck | None = None, log: LogFn | None = None, amp: str = "auto") -> GenerateResult:
    """Turn every recipe of a plan into a pair (label, instance, RGB) logged in the workspace DB.

    `workspace`, `dataset`, `plan` may be objects or paths. Re-running with the same inputs resumes
    the same job. Cancel (callback or request_cancel from elsewhere) stops between pairs and raises
    Cancelled after marking the job cancelled; nothing half-written is left. Under torchrun every rank
    runs this with the same arguments: they share one job and split its recipes (see Rank.owns); rank 0
    owns the job row and returns the totals.
    """
    # a process group over gloo, which coordinates CPU and GPU ranks alike
    shard = torchrun_rank("gloo")
    try:
        return _run_generate(workspace, dataset, plan, renderer, checkpoint, rank_device(device, shard), blend,
                             min_quality, seed, batch_size, plan_source, seg_checkpoint, progress, cancel, log,
                             shard, amp)
    except OperationalError as exc:  # a DB step outside the job loop (registering the dataset, the bank)
        raise db_error(exc) from None
    finally:
        shard.close()


def _run_generate(workspace, dataset, plan, renderer, checkpoint, device, blend, min_quality, seed, batch_size,
                  plan_source, seg_checkpoint, progress, cancel, log, shard: Rank, amp: str = "auto"
                  ) -> GenerateResult:
    from segbalance.core.datasets import Dataset, open_dataset
    from segbalance.core.planning.balance import Plan
    from segbalance.core.recombine import build_layer_bank
    from segbalance.core.recombine.write import check_recipes
    from segbalance.core.render.registry import load_renderer
    from segbalance.core.workspace import Workspace

    own_ws = not hasattr(workspace, "session")
    if not shard.master:
        shard.barrier()  # rank 0 creates (or migrates) the workspace; two creators would race on the schema
    ws = Workspace(workspace) if own_ws else workspace
    if shard.master:
        shard.barrier()
    try:
        ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
        if not isinstance(plan, Plan):
            plan_source = plan
            plan = Plan.load(plan)
        plan.check_dataset(ds, plan_source)
        if not plan.recipes:
            raise DataError("plan has no recipes", plan_source)
        if min_quality is not None and not 0 <= min_quality <= 1:
            raise SegbalanceError(f"--min-quality must be between 0 and 1 (got {min_quality})")
        scorer = load_quality_scorer(ws, device, seg_checkpoint, amp) if min_quality is not None else None
        gate_ckpt = (seg_checkpoint or find_seg_checkpoint(ws)) if scorer is not None else None
        if not shard.master:
            shard.barrier()  # rank 0 builds the layer bank (a workspace write); the others then read it
        bank = build_layer_bank(ds, ws, cancel=cancel, split=plan.split)
        if shard.master:
            shard.barrier()
        try:
            check_recipes(plan.recipes, bank)
        except DataError as exc:
            raise DataError(str(exc), plan_source) from None
        rend = load_renderer(renderer, ds=ds, checkpoint=checkpoint, device=device, blend=blend, amp=amp,
                             batch_size=batch_size or (1 if renderer == "copypaste" else 2))
        if batch_size:
            rend.batch_size = batch_size
        key = generate_key(plan, ds.fingerprint(), rend.name, rend.checkpoint_sha256, blend, seed, min_quality)
        found = None
        if shard.master:
            found = _find_or_create(ws, key, {
                "key": key, "dataset": str(ds.root), "fingerprint": ds.fingerprint(), "plan": str(plan_source),
                "label_set": ds.label_set.to_dict(),
                "renderer": rend.name, "checkpoint": str(checkpoint) if checkpoint else None,
                "checkpoint_sha256": rend.checkpoint_sha256, "blend": blend, "seed": seed,
                "min_quality": min_quality, "quality_checkpoint": str(gate_ckpt) if gate_ckpt else None,
                "n_recipes": len(plan.recipes)})
        job_id, resumed = shard.broadcast(found)
        ctx = JobContext(ws, job_id, progress, cancel, log) if shard.master else _RankContext(ws, job_id, cancel, log)
        try:
            return _generate(ws, ds, plan, bank, rend, scorer, ctx, job_id, resumed, seed, min_quality, shard)
        finally:
            rend.close()
    finally:
        if own_ws:
            ws.close()


def _find_or_create(ws, key: str, params: dict) -> tuple[int, bool]:
    def go() -> tuple[int, bool]:
        with ws.session() as s, s.begin():
            for j in s.scalars(select(m.Job).where(m.Job.kind == "generate").order_by(m.Job.id.desc())):
                if (j.params or {}).get("key") != key:
                    continue
                if j.status == "running" and j.pid != os.getpid() and _pid_alive(j.pid):
                    raise SegbalanceError(f"job #{j.id} with the same inputs is running (pid {j.pid}); "
                                          f"wait for it or cancel it")
                return j.id, True
            job = m.Job(kind="generate", params=params, status="queued")
            s.add(job)
            s.flush()
            return job.id, False
    return _db_call(go)


class _RankContext(JobContext):
    """A torchrun rank other than 0: logs and follows cancel requests, leaves the job row to rank 0."""

    def __init__(self, ws, job_id: int, cancel: CancelCheck | None, log: LogFn | None) -> None:
        super().__init__(ws, job_id, None, cancel, log)

    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done

    def report(self, done: int, *, force: bool = False) -> None:
        self.done = done

    def finish(self, status: str, message: str | None = None) -> None:
        pass


def _rows(ws, job_id: int) -> dict[int, m.GeneratedPair]:
    with ws.session() as s:
        return {r.recipe_index: r for r in s.scalars(select(m.GeneratedPair).where(m.GeneratedPair.job_id == job_id))}


def _generate(ws, ds, plan, bank, rend, scorer, ctx: JobContext, job_id: int, resumed: bool, seed,
              min_quality, shard: Rank | None = None) -> GenerateResult:
    from segbalance.core.recombine import MissingSourceError, apply_recipe
    from segbalance.core.render.interface import LayerWrite, RenderItem

    shard = shard or Rank()
    pairs_dir = ws.subdir("pairs", str(job_id))
    pairs_rel = Path(ws.rel(pairs_dir))  # once: Workspace.rel resolves the path, GIL-held Python per call
    n = len(plan.recipes)
    if shard.master:
        rows = _cleanup(ws, job_id, pairs_dir, ctx)
    shard.barrier()  # orphans of an earlier run are gone before any rank writes
    if not shard.master:
        rows = _rows(ws, job_id)
    good = {i for i, r in rows.items() if r.status != "failed"}
    todo = [i for i in range(n) if i not in good and shard.owns(i, rend.batch_size)]
    ctx.start(n, len(good))
    if shard.enabled:
        ctx.log(f"rank {shard.rank} of {shard.world}: {len(todo)} recipe(s) of this job")
    if resumed:
        ctx.log(f"resuming: {len(good)} of {n} pairs already done")
    precision = getattr(getattr(rend, "model", None), "precision", None)  # a generator's: the runtime's choice
    ctx.log(f"generating {len(todo)} pair(s) with {rend.name} into {ws.rel(pairs_dir)}"
            + (f"; {precision.line()}" if precision is not None else ""))
    res = GenerateResult(job_id, n, len(good), 0, pairs_dir=pairs_dir, resumed=resumed)
    names = {c.id: c.name for c in ds.label_set.classes if 0 <= c.id <= 255}
    delay = float(os.environ.get("SEGBALANCE_JOB_DELAY", "0") or 0)  # testing aid: slow each pair down
    done0 = len(good)
    writer = _PairWriter(partial(_commit_pairs, ws))
    last_count, shown = 0.0, done0
    try:
        pos = 0
        while pos < len(todo):
            if ctx.stop_requested():
                raise Cancelled()
            batch: list[tuple[int, object]] = []
            while pos < len(todo) and len(batch) < max(1, rend.batch_size):
                i = todo[pos]
                pos += 1
                recipe = plan.recipes[i]
                writes: list = []
                try:
                    label, inst = apply_recipe(recipe, ds, bank, on_write=lambda p, box, mk, w=writes:
                                               w.append(LayerWrite(p, box, mk)))
                except MissingSourceError as exc:
                    res.failed.append((i, str(exc)))
                    ctx.log(f"recipe {i} failed: {exc}", "error")
                    continue
                batch.append((i, RenderItem(label, inst, recipe, writes)))
            if not batch:
                continue
            rend.reseed(int(seed) * 1_000_003 + batch[0][0] if seed is not None else batch[0][1].recipe.seed)
            try:
                images = rend.render([it for _, it in batch])
            except MissingSourceError:  # an image vanished: render one by one to isolate it
                images = []
                for i, it in batch:
                    try:
                        images.append(rend.render([it])[0])
                    except MissingSourceError as one:
                        images.append(None)
                        res.failed.append((i, str(one)))
                        ctx.log(f"recipe {i} failed: {one}", "error")
            keep = [(b, img) for b, img in zip(batch, images, strict=True) if img is not None]
            scores = (_score(scorer, [img for _, img in keep], [b[1].label for b, _ in keep]) if scorer is not None
                      else [None] * len(keep))
            for ((i, item), img), quality in zip(keep, scores, strict=True):
                if delay:
                    time.sleep(delay)
                status = "rejected" if quality is not None and quality < min_quality else "pending"
                writer.put(partial(_store_pair, ws, job_id, i, plan.recipes[i], item, img, pairs_dir, pairs_rel, rend,
                                   seed, quality, status, names, rows.get(i)), status == "rejected")
                if shard.enabled and shard.master:
                    now = time.monotonic()
                    if now - last_count >= ctx.interval:  # every rank's pairs, from the DB
                        last_count, shown = now, _good_count(ws, job_id)
                    ctx.report(max(shown, done0 + writer.committed))
                else:
                    ctx.report(done0 + writer.committed)
                if ctx.stop_requested():
                    raise Cancelled()
        writer.close()
    except (Cancelled, KeyboardInterrupt):
        _settle(writer, res, done0, quiet=True)
        ctx.done = res.done  # pairs the writer committed after the last report count too
        ctx.log(f"cancelled after {res.done} of {n} pairs")
        ctx.finish("cancelled", f"cancelled at {res.done}/{n}")
        raise Cancelled() from None
    except BaseException as exc:
        _settle(writer, res, done0, quiet=True)
        ctx.done = res.done
        msg = str(exc) or type(exc).__name__
        try:
            ctx.log(f"failed: {msg}", "error")
            ctx.finish("failed", msg)
        except Exception:  # the DB itself may be the problem; the original error matters more
            pass
        raise
    _settle(writer, res, done0)
    if shard.enabled:  # every rank's share is written: the totals are rank 0's to record
        parts = shard.gather((res.new, res.rejected, res.failed))
        res.new = sum(p[0] for p in parts)
        res.rejected = sum(p[1] for p in parts)
        res.failed = sorted(f for p in parts for f in p[2])
        res.done = _good_count(ws, job_id)
    ctx.done = res.done
    ctx.report(res.done, force=True)
    if res.failed:
        ctx.finish("failed", f"{len(res.failed)} recipe(s) failed (missing source files); {res.done}/{n} done")
    else:
        ctx.finish("done", f"{res.done} pairs" + (f", {res.rejected} rejected by the quality gate"
                                                   if res.rejected else ""))
    return res


class _PairWriter:
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


def _settle(writer: _PairWriter, res: GenerateResult, done0: int, quiet: bool = False) -> None:
    """Let queued pairs finish (they are complete) and count them; a writer error is raised unless quiet."""
    try:
        writer.close()
    except BaseException:
        if not quiet:
            raise
    finally:
        res.new = writer.committed
        res.done = done0 + writer.committed
        res.rejected = writer.rejected


def _store_pair(ws, job_id: int, i: int, recipe, item, img: np.ndarray, pairs_dir: Path, pairs_rel: Path, rend,
                seed, quality, status: str, names: dict[int, str], old) -> _Written:
    """Encode and write one pair's files; the row is committed by the writer's committer (_commit_pairs)."""
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


def _commit_pairs(ws, written: list[_Written]) -> None:
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
