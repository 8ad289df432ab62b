"""SQLite engine and sessions for a workspace database: WAL, foreign keys, busy timeout, version check."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from segbalance.db.base import SCHEMA_VERSION, Base, Meta

DB_NAME = "segbalance.db"
BUSY_TIMEOUT_MS = 15_000


class SchemaError(Exception):
    """The database file cannot be used by this version (newer schema, not a database)."""


class DatabaseUnusable(SchemaError):
    """A query failed because of the file, not the data: damaged pages, a failing or full disk, read-only media.

    Raised from any query (the engine's handle_error hook swaps SQLite's error for it), so every command and
    the app can say what happened in one line that names the file, instead of a traceback.
    """


def describe_sqlite_error(msg: str, db_path: str | Path) -> str | None:
    """One line for SQLite errors that are about the file rather than the query; None for the others."""
    low = msg.lower()
    if "malformed" in low:
        return (f"{db_path}: the workspace database is damaged ({msg}); check it with "
                f"`sqlite3 {db_path} 'PRAGMA integrity_check'`, restore it from a backup or recover it with "
                f"`sqlite3 {db_path} .recover`; the workspace's other files (pairs, layers, runs) are untouched")
    if "disk is full" in low:
        return f"{db_path}: the disk is full; free some space and run the command again (nothing was saved)"
    if "disk i/o error" in low:
        return (f"{db_path}: disk I/O error on the workspace database (disk full, failing or removed?); "
                f"check the disk and run the command again (nothing was saved)")
    if "readonly" in low or "read-only" in low:
        return (f"{db_path}: the workspace is read-only; this command writes to it, so run it on a "
                f"writable copy of the workspace")
    if "no such table" in low or "no such column" in low or "has no column named" in low:
        return (f"{db_path}: the workspace database's schema is damaged ({msg}): it was edited by hand or by "
                f"another program; restore it from a backup (or recover it with `sqlite3 {db_path} .recover` "
                f"into a copy); the workspace's other files (pairs, layers, runs) are untouched")
    if "unable to open database file" in low:
        return (f"{db_path}: cannot open the workspace database (missing, or the folder cannot be read or "
                f"written)")
    return None


def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        pass  # read-only media: stay in the default journal mode
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def read_only_media(db_path: Path) -> bool:
    """True when the database exists but neither it nor its folder (where SQLite puts -wal/-shm) can be written.

    access(2) says EROFS for a read-only mount even to root, and honours permissions for everyone else.
    """
    return db_path.exists() and not (os.access(db_path, os.W_OK) and os.access(db_path.parent, os.W_OK))


def _new_engine(db_path: Path, mode: str | None) -> Engine:
    if mode is None:
        url = f"sqlite:///{db_path}"
    else:  # read-only: a WAL database whose -shm cannot be created opens only as immutable
        url = f"sqlite:///file:{quote(str(db_path))}?mode=ro{'&immutable=1' if mode == 'immutable' else ''}&uri=true"
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _on_connect)

    def handle_error(ctx) -> None:
        orig = ctx.original_exception
        if isinstance(orig, sqlite3.DatabaseError):
            text = describe_sqlite_error(str(orig), db_path)
            if text is not None:
                raise DatabaseUnusable(text) from orig

    event.listen(engine, "handle_error", handle_error)
    return engine


def make_engine(db_path: str | Path, *, create: bool = True) -> Engine:
    """Engine for one workspace database; creates the schema on first use and refuses newer schemas.

    On a read-only workspace the database opens read-only (commands that only read still work); any
    write then fails with DatabaseUnusable saying so.
    """
    db_path = Path(db_path)
    modes: list[str | None] = ["ro", "immutable"] if read_only_media(db_path) else [None]
    for i, mode in enumerate(modes):
        engine = _new_engine(db_path, mode)
        try:
            _check_or_init(engine, create=create and mode is None, path=db_path)
        except DatabaseUnusable as exc:
            engine.dispose()
            if i + 1 < len(modes) and "cannot open" in str(exc):
                continue
            raise
        except DatabaseError as exc:
            engine.dispose()
            msg = str(exc.orig) if getattr(exc, "orig", None) else str(exc)
            if isinstance(exc, OperationalError) and "locked" in msg:
                raise SchemaError(f"{db_path}: database is locked by another writer; try again later") from None
            raise SchemaError(f"{db_path}: not a segbalance database ({msg})") from None
        except SchemaError:
            engine.dispose()
            raise
        return engine
    raise AssertionError("unreachable")  # pragma: no cover


def _check_or_init(engine: Engine, *, create: bool, path: Path) -> None:
    writable = not read_only_media(path)
    with engine.begin() as conn:
        has_meta = engine.dialect.has_table(conn, "meta")
        if has_meta:
            row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
            try:
                version = int(row) if row is not None else 0
            except (TypeError, ValueError):
                raise SchemaError(f"{path}: schema_version {row!r} in table meta is not a number; the database "
                                  f"was edited or is damaged (check it with `sqlite3 {path} "
                                  f"'PRAGMA integrity_check'`)") from None
            if row is not None and version < 1:
                raise SchemaError(f"{path}: schema_version {row!r} in table meta is not a version segbalance "
                                  f"writes; the database was edited or is damaged (check it with `sqlite3 {path} "
                                  f"'PRAGMA integrity_check'`)")
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"{path}: workspace database has schema version {version}, newer than "
                    f"this segbalance supports ({SCHEMA_VERSION}); upgrade segbalance to open it"
                )
        elif not create:
            raise SchemaError(f"{path}: not a segbalance workspace database")
        if has_meta:
            _check_schema(conn, path)
    if not writable:
        return  # read-only media: use the schema as it is
    # create_all only adds missing tables, so later additions land in existing workspaces
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        if s.get(Meta, "schema_version") is None:
            s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))


# tables whose rows name files of the workspace: recreating one empty would orphan those files
TABLE_FILES = {"generated_pair": "pairs", "layer_bank": "layers"}


def _check_schema(conn, path: Path) -> None:
    """SchemaError naming the damage when a table lost a column, or a table whose files exist is gone.

    Tables added by later versions are created on open (create_all), so a missing table is damage only when the
    workspace holds the files its rows would name.
    """
    tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            folder = path.parent / TABLE_FILES.get(table.name, "")
            if table.name in TABLE_FILES and folder.is_dir() and any(folder.iterdir()):
                raise SchemaError(f"{path}: the workspace database's schema is damaged (table {table.name} is "
                                  f"missing, yet {folder} holds its files); restore the database from a "
                                  f"backup; nothing was changed")
            continue
        have = {r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("{table.name}")')}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            raise SchemaError(f"{path}: the workspace database's schema is damaged (table {table.name} has no "
                              f"column {', '.join(missing)}): it was edited by hand or by another program; "
                              f"restore it from a backup; nothing was changed")


def check_integrity(engine: Engine, db_path: str | Path) -> None:
    """Raise DatabaseUnusable when SQLite's quick_check finds damage (reads every page: for start-up, not per query)."""
    with engine.connect() as conn:
        rows = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check")]
    if rows != ["ok"]:
        raise DatabaseUnusable(describe_sqlite_error(f"database disk image is malformed: {rows[0]}", db_path)
                               or str(rows[0]))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    s = factory()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()
