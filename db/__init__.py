"""Workspace database: SQLAlchemy 2.x models and engine setup. Imports neither core nor Qt."""

from segbalance.db.base import SCHEMA_VERSION, Base
from segbalance.db.engine import DB_NAME, DatabaseUnusable, SchemaError, make_engine, session_factory, session_scope

__all__ = ["SCHEMA_VERSION", "Base", "DB_NAME", "DatabaseUnusable", "SchemaError", "make_engine", "session_factory",
           "session_scope"]
