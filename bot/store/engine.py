"""Engines for the store, and the translation of database errors into :class:`StoreError`.

Accepted URLs: ``sqlite:///path.db`` or ``sqlite+aiosqlite:///path.db`` (aiosqlite), and
``postgresql://user@host/db`` or ``postgresql+psycopg://…`` (psycopg 3, async).

SQLite needs help to be safe with several connections (or processes) on one file: the driver's own
transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself, ``BEGIN IMMEDIATE``
for transactions that will write (:data:`WRITE`), so read-modify-write sequences (the audit chain
head, compare-and-set updates) hold the database's write lock from their first read. Waiting for
that lock is bounded by ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.store.errors import StoreError
from plugin.errors import ConfigError
from plugin.paths import data_dir
from plugin.redact import redact

WRITE_OPTION = "emaildoctor_store_write"
WRITE: dict[str, Any] = {WRITE_OPTION: True}
"""Execution options of an engine whose transactions will write (``BEGIN IMMEDIATE`` on SQLite)."""

SQLITE_BUSY_TIMEOUT_MS = 30_000


def async_url(url: str) -> URL:
    """``url`` with the async driver the store uses; :class:`ConfigError` for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"store.url is not a database URL: {exc}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "aiosqlite"):
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("store.url: an in-memory SQLite database cannot be shared; use sqlite:///path.db")
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql" and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"store.url: unsupported database {parsed.drivername!r}; use sqlite:///path.db or postgresql://user@host/db"
    )


def check_store_url(url: str) -> URL:
    """:func:`async_url`, and for a SQLite file its folder: the default store's is created, any other must exist
    (:class:`ConfigError`, naming the setting). Called before anything else is asked of the store."""
    parsed = async_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and not database.startswith("file:"):  # a file: URI opens as given
        _sqlite_folder(Path(database))
    return parsed


def _sqlite_folder(path: Path) -> None:
    """The default store's folder (the per-user data folder) is created; any other folder must exist, so that a
    mistyped path is named instead of SQLite's "unable to open database file"."""
    folder = path.expanduser().parent
    if folder.is_dir():
        return
    if folder == data_dir():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"store.url: cannot create the folder {folder}: {exc.strerror or exc}") from exc
        return
    raise ConfigError(f"store.url (EMAILDOCTOR_STORE__URL): the folder {folder} does not exist")


def create_store_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for ``url``, prepared for the store. Does no I/O (beyond creating the default SQLite
    store's folder)."""
    parsed = check_store_url(url)
    if parsed.get_backend_name() == "postgresql":
        options.setdefault("pool_pre_ping", True)
        if "client_encoding" not in parsed.query:
            # A database created with ENCODING 'SQL_ASCII' would hand back bytes instead of text; ask for UTF-8
            # (SQL_ASCII stores the bytes as they are, so what the store writes reads back the same).
            options.setdefault("connect_args", {}).setdefault("client_encoding", "utf8")
    engine = create_async_engine(parsed, **options)
    prepare_engine(engine)
    return engine


def prepare_engine(engine: AsyncEngine) -> None:
    """Install the SQLite transaction hooks on ``engine`` (idempotent; nothing to do for PostgreSQL)."""
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or event.contains(sync_engine, "begin", _sqlite_begin):
        return
    event.listen(sync_engine, "connect", _sqlite_connect)
    event.listen(sync_engine, "begin", _sqlite_begin)


def _sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Stop sqlite3 from issuing BEGIN itself (it would skip SELECTs); _sqlite_begin does it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


async def enable_sqlite_wal(engine: AsyncEngine) -> None:
    """Switch a SQLite database to write-ahead logging (readers never block the writer); persistent.

    The switch needs the database to itself for a moment, and SQLite reports "database is locked"
    at once rather than waiting when another connection (a replica starting at the same time) holds
    it: so it is retried for a while. A database already in WAL mode is left alone.
    """
    for attempt in range(1, _WAL_ATTEMPTS + 1):
        try:
            async with engine.connect() as connection:
                await connection.run_sync(_switch_to_wal)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS:
                raise
            await asyncio.sleep(0.02 * attempt)
        else:
            return


_WAL_ATTEMPTS = 40  # about 16 seconds in all


def _switch_to_wal(connection: Connection) -> None:
    # On the DBAPI connection, outside any transaction, as SQLite requires.
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("PRAGMA journal_mode")
        row = cursor.fetchone()
        if row is None or str(row[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def describe(exc: BaseException) -> str:
    """A one-line description of a database error, without the SQL statement or its parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        inner: BaseException = exc.orig
        text = str(inner).strip().splitlines()
        return f"{type(inner).__name__}: {text[0] if text else 'no message'}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


def _migration_errors() -> tuple[type[Exception], ...]:
    """Alembic's errors, if Alembic is imported at all: it is only for migrations, not a dependency of every command
    that touches the store."""
    util = sys.modules.get("alembic.util")
    error: type[Exception] | None = getattr(util, "CommandError", None)
    return (error,) if error is not None else ()


@contextmanager
def translated(operation: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Turn SQLAlchemy, Alembic and driver (sqlite3, psycopg) errors raised inside the block into :class:`StoreError`."""
    try:
        yield
    except Exception as exc:
        # Alembic's errors are looked up now: the block itself may have imported it (a migration).
        if not isinstance(exc, (SQLAlchemyError, sqlite3.Error, psycopg.Error, *_migration_errors())):
            raise
        raise StoreError(f"store: could not {operation}: {redact(describe(exc), secrets)}") from exc
