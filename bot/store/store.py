"""The :class:`Store`: the bot's durable state, in one SQL database shared by every replica."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType
from typing import Self
from weakref import WeakKeyDictionary

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import schema
from bot.store.approvals import FixRequests
from bot.store.changes import Changes
from bot.store.coordination import Coordination
from bot.store.engine import WRITE, enable_sqlite_wal, translated
from bot.store.errors import StoreError
from bot.store.retests import Retests
from bot.store.snapshots import Snapshots
from plugin.clock import Clock

_MIGRATION_LOCK = "emaildoctor.store.migrate:"

# Alembic keeps its migration context in module globals, so two migrations interleaving on one event
# loop would run each other's operations: within a process they take turns (the database lock below
# covers other processes and replicas).
_local_migrations: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


def _local_migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _local_migrations.get(loop)
    if lock is None:
        lock = _local_migrations[loop] = asyncio.Lock()
    return lock


class Store(FixRequests, Changes, Retests, Snapshots, Coordination):
    """Fix requests and approvals, changes to Exchange and the re-tests after them, the hash-chained audit
    log, audit snapshots, Slack retry keys and scheduled-run claims.

    ``Store(url_or_engine)`` does no I/O; ``await Store.open(url)`` also brings the schema up to
    date. A store built from a URL owns its engine and disposes of it in :meth:`close`; one built
    from an engine leaves it to its owner. Every method raises :class:`~bot.store.errors.StoreError`
    (or a subclass) when the database fails, never a SQLAlchemy or driver exception.

    Times are timezone-aware UTC in and out; ``clock`` supplies ``now`` where a method takes none.
    ``secrets`` (e.g. ``settings.secret_values()``) are masked in any free text the store writes.
    """

    def __init__(
        self,
        engine: AsyncEngine | str,
        *,
        clock: Clock | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(engine, clock=clock, secrets=secrets)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        clock: Clock | None = None,
        secrets: Iterable[str] = (),
    ) -> Self:
        """Connect to ``url`` and migrate the schema to the latest revision (safe to run from several
        replicas at once); with ``migrate=False``, check the schema is already there instead."""
        store = cls(url, clock=clock, secrets=secrets)
        try:
            if migrate:
                await store.migrate()
            else:
                await store.check_schema()
        except BaseException:
            await store.close()
            raise
        return store

    async def migrate(self) -> None:
        """Apply the migrations the database lacks, in one transaction, under a lock.

        PostgreSQL: a transaction-scoped advisory lock per schema, so concurrent replicas migrate one
        after the other and the later ones find nothing to do. SQLite: the write lock of
        ``BEGIN IMMEDIATE``; the database is also switched to write-ahead logging.
        """
        async with _local_migration_lock():
            await self._migrate()

    async def _migrate(self) -> None:
        self._check_open("migrate the database schema")
        with translated("migrate the database schema", self._secrets):
            if self._dialect == "sqlite":
                await enable_sqlite_wal(self._engine)
            async with self._engine.execution_options(**WRITE).begin() as connection:
                if self._dialect == "postgresql":
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:key || current_schema()))"),
                        {"key": _MIGRATION_LOCK},
                    )
                await connection.run_sync(schema.upgrade)

    async def check_schema(self) -> None:
        """Raise :class:`StoreError` unless the database is reachable and at the latest revision."""
        self._check_open("read the database schema revision")
        with translated("read the database schema revision", self._secrets):
            async with self._engine.connect() as connection:
                current = await connection.run_sync(schema.current_revision)
        head = schema.head_revision()
        if current != head:
            raise StoreError(
                f"store: the database schema is at revision {current or '(empty)'}, this version needs {head}: "
                "open the store with migrate=True (the default) to upgrade it"
            )

    async def close(self) -> None:
        """Release the store's connections (only if it created its engine); later calls raise
        :class:`StoreError`. Safe to call twice."""
        self._closed = True
        if self._owns_engine:
            await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
