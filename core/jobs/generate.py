"""The generate job: a plan turned into pairs, recombine -> render -> (score) -> write files atomically ->
commit the GeneratedPair row (only after its files exist).

Resumable: the same command finds its job again by a key over its inputs, removes orphan files, marks rows
whose files vanished as failed and redoes exactly the recipes without a good row. Under torchrun the ranks
split one plan's render batches and write into the same job. The job is driven by one GenerateRequest; the
pairs' files and rows are made durable by core.jobs.pair_writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from segbalance.core.errors import Cancelled, DataError, SegbalanceError
from segbalance.core.jobs.job_rows import JobContext, _db_call, _pid_alive, db_error
from segbalance.core.jobs.pair_writer import PairWriter, commit_pairs, store_pair
from segbalance.core.ranks import Rank, torchrun_rank
from segbalance.db import models as m

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


def _job_status(ws, job_id: int) -> str | None:
    with ws.session() as s:
        return s.scalar(select(m.Job.status).where(m.Job.id == job_id))


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
    req = GenerateRequest(workspace, dataset, plan, renderer, checkpoint=checkpoint, device=device, blend=blend,
                          min_quality=min_quality, seed=seed, batch_size=batch_size, plan_source=plan_source,
                          seg_checkpoint=seg_checkpoint, amp=amp)
    # a process group over gloo, which coordinates CPU and GPU ranks alike
    shard = torchrun_rank("gloo")
    try:
        return _run_generate(replace(req, device=rank_device(device, shard)), shard, progress, cancel, log)
    except OperationalError as exc:  # a DB step outside the job loop (registering the dataset, the bank)
        raise db_error(exc) from None
    finally:
        shard.close()


@dataclass(frozen=True)
class GenerateRequest:
    """What a generate job is asked to do: the inputs its key is made of, and how to run it here."""

    workspace: object  # a Workspace or its folder
    dataset: object  # a Dataset or its folder
    plan: object  # a Plan or its file
    renderer: str = "copypaste"
    checkpoint: str | None = None  # the generator's, for a GAN renderer
    device: str = "auto"
    blend: str = "feather"
    min_quality: float | None = None  # the quality gate's threshold; None: no gate
    seed: int | None = None
    batch_size: int | None = None
    plan_source: str | Path = "plan"  # how errors name the plan when it is given as an object
    seg_checkpoint: str | None = None  # the gate's segmentation model (the newest finished run if None)
    amp: str = "auto"


def _run_generate(req: GenerateRequest, shard: Rank, progress: Progress | None, cancel: CancelCheck | None,
                  log: LogFn | None) -> GenerateResult:
    from segbalance.core.datasets import Dataset, open_dataset
    from segbalance.core.planning.balance import Plan
    from segbalance.core.recombine import build_layer_bank
    from segbalance.core.recombine.write import check_recipes
    from segbalance.core.render.registry import load_renderer
    from segbalance.core.workspace import Workspace

    workspace, dataset, plan, plan_source = req.workspace, req.dataset, req.plan, req.plan_source
    renderer, checkpoint, device, blend, amp = req.renderer, req.checkpoint, req.device, req.blend, req.amp
    min_quality, seed, batch_size, seg_checkpoint = req.min_quality, req.seed, req.batch_size, req.seg_checkpoint
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
    if resumed and len(good) == n and _job_status(ws, job_id) == "done":
        # nothing to do: the finished job's row (finish time, log) keeps saying when its pairs were made
        return GenerateResult(job_id, n, n, 0, pairs_dir=pairs_dir, resumed=True)
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
    writer = PairWriter(partial(commit_pairs, ws))
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
                writer.put(partial(store_pair, ws, job_id, i, plan.recipes[i], item, img, pairs_dir, pairs_rel, rend,
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


def _settle(writer: PairWriter, res: GenerateResult, done0: int, quiet: bool = False) -> None:
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


