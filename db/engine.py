"""SQLite engine and sessions for a workspace database: WAL, foreign keys, busy timeout, version check."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from segbalance.db.base import SCHEMA_VERSION, Base, Meta

DB_NAME = "segbalance.db"
BUSY_TIMEOUT_MS = 15_000


class SchemaError(Exception):
    """The database file cannot be used by this version (newer schema, not a database)."""


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


def make_engine(db_path: str | Path, *, create: bool = True) -> Engine:
    """Engine for one workspace database; creates the schema on first use and refuses newer schemas."""
    db_path = Path(db_path)
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _on_connect)
    try:
        _check_or_init(engine, create=create)
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


def _check_or_init(engine: Engine, *, create: bool) -> None:
    with engine.begin() as conn:
        has_meta = engine.dialect.has_table(conn, "meta")
        if has_meta:
            row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
            version = int(row) if row is not None else 0
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"{engine.url.database}: workspace database has schema version {version}, newer than "
                    f"this segbalance supports ({SCHEMA_VERSION}); upgrade segbalance to open it"
                )
        elif not create:
            raise SchemaError(f"{engine.url.database}: not a segbalance workspace database")
    # create_all only adds missing tables, so later additions land in existing workspaces
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        if s.get(Meta, "schema_version") is None:
            s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))


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
