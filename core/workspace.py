"""A workspace: a folder with segbalance.db plus the files jobs produce."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from segbalance.core.datasets import Dataset as DatasetReader
from segbalance.core.errors import WorkspaceError
from segbalance.core.processes import sweep_temp_files
from segbalance.db import DB_NAME, DatabaseUnusable, SchemaError, make_engine, session_factory
from segbalance.db import models as m
from segbalance.db.engine import check_integrity, read_only_media


def check_apart(*, dataset: str | Path | None = None, workspace: str | Path | None = None,
                out: str | Path | None = None, flag: str = "--out") -> None:
    """WorkspaceError when folders that must stay apart do not: a workspace or an output folder that is the
    dataset folder or lies inside it (its files would become part of the dataset), or an output folder that is
    the workspace folder or holds it (the run's files would mix with the workspace's own)."""
    ds = Path(dataset).resolve() if dataset is not None else None
    ws = Path(workspace).resolve() if workspace is not None else None
    target = Path(out).resolve() if out is not None else None
    if ds is not None and ws is not None and (ws == ds or ds in ws.parents):
        raise WorkspaceError(f"the workspace must not be the dataset folder or lie inside it ({ds}): its database "
                             "and files would be written into the dataset; choose another folder", ws)
    if target is not None and ds is not None and (target == ds or ds in target.parents):
        raise WorkspaceError(f"{flag} must not be the dataset folder or lie inside it ({ds})", target)
    if target is not None and ws is not None and (target == ws or target in ws.parents):
        raise WorkspaceError(f"{flag} must not be the workspace folder or hold it ({ws}); a folder inside the "
                             "workspace (e.g. runs/NAME) is fine", target)


class Workspace:
    """Opens (or creates) a workspace folder and its database."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path).resolve()
        db_path = self.path / DB_NAME
        if not self.path.exists():
            if not create:
                raise WorkspaceError("workspace folder not found", self.path)
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise WorkspaceError(f"cannot create workspace ({exc.strerror})", self.path) from None
        elif not self.path.is_dir():
            raise WorkspaceError("not a folder", self.path)
        if not db_path.exists():
            if not create:
                raise WorkspaceError(f"not a segbalance workspace (no {DB_NAME})", self.path)
            if any(self.path.iterdir()) and not os.access(self.path, os.W_OK):
                raise WorkspaceError("workspace folder is read-only", self.path)
        try:
            self.engine = make_engine(db_path, create=create)
        except SchemaError as exc:
            raise WorkspaceError(str(exc)) from None
        except OSError as exc:
            raise WorkspaceError(f"cannot open database ({exc})", db_path) from None
        self.sessions = session_factory(self.engine)
        self._sweep()

    def _sweep(self) -> None:
        """Temp files of writers killed mid-write (layer banks, pairs): the next command removes them."""
        for sub in ("layers", "pairs"):
            if (self.path / sub).is_dir():
                sweep_temp_files(self.path / sub, recursive=True)

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def read_only(self) -> bool:
        """True on read-only media (or without write permission): the database was opened read-only."""
        return read_only_media(self.db_path)

    def check_integrity(self) -> None:
        """DatabaseUnusable when the database has damaged pages; reads every page, so once (app start-up)."""
        check_integrity(self.engine, self.db_path)

    def session(self) -> Session:
        return self.sessions()

    def subdir(self, *parts: str) -> Path:
        """A folder inside the workspace, created on demand."""
        p = self.path.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def rel(self, path: str | Path) -> str:
        """Path relative to the workspace, as stored in the DB."""
        return str(Path(path).resolve().relative_to(self.path))

    def abs(self, rel: str | Path) -> Path:
        return self.path / rel

    def stored_path(self, path: str | Path) -> str:
        """How a folder is written in the DB: relative when it lies inside the workspace (so the
        workspace can be moved or copied with its data), absolute otherwise."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.path).as_posix() or "."
        except ValueError:
            return str(p)

    def resolve_stored(self, stored: str) -> Path:
        """The folder a DB path names today (relative ones are read against the workspace's place now)."""
        p = Path(stored)
        return p if p.is_absolute() else self.path / p

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datasets ----------------------------------------------------------------------
    def register_dataset(self, ds: DatasetReader) -> int:
        """Record a dataset and its sample list (kept in sync with disk); returns the dataset row id."""
        check_apart(dataset=ds.root, workspace=self.path)
        stored = self.stored_path(ds.root)
        with self.sessions() as s, s.begin():
            row = s.scalar(select(m.Dataset).where(m.Dataset.path.in_([stored, str(ds.root)])))
            if row is None:
                row = m.Dataset(path=stored, format=ds.format, label_set=ds.label_set.to_dict())
                s.add(row)
                s.flush()
            row.path = stored  # rows written before paths were stored relative
            row.format = ds.format
            row.label_set = ds.label_set.to_dict()
            row.fingerprint = ds.fingerprint()
            existing = {
                (r.split, r.name): r for r in s.scalars(select(m.Sample).where(m.Sample.dataset_id == row.id))
            }
            seen = set()
            for ref in ds.samples():
                key = (ref.split, ref.id)
                seen.add(key)
                paths = dict(
                    image_path=str(ref.image_path) if ref.image_path else None,
                    label_path=str(ref.label_path),
                    instance_path=str(ref.instance_path) if ref.instance_path else None,
                )
                r = existing.get(key)
                if r is None:
                    s.add(m.Sample(dataset_id=row.id, split=ref.split, name=ref.id, **paths))
                else:
                    for k, v in paths.items():
                        if getattr(r, k) != v:
                            setattr(r, k, v)
            gone = [r.id for k, r in existing.items() if k not in seen]
            if gone:
                s.execute(delete(m.Sample).where(m.Sample.id.in_(gone)))
            return row.id

    def dataset_row(self, ds: DatasetReader) -> m.Dataset | None:
        with self.sessions() as s:
            return s.scalar(select(m.Dataset).where(m.Dataset.path.in_([self.stored_path(ds.root), str(ds.root)])))

# the views catch a damaged database by this name without importing the db layer themselves
__all__ = ["DB_NAME", "DatabaseUnusable", "Workspace"]
