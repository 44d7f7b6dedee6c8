"""What every part of :class:`bot.store.Store` shares: the engine, sessions, the clock, error translation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.dml import Insert

from bot.store.engine import WRITE, create_store_engine, prepare_engine, translated
from bot.store.errors import StoreError
from plugin.clock import Clock, SystemClock
from plugin.errors import ConfigError
from plugin.redact import redact


def aware_utc(value: datetime, name: str = "now") -> datetime:
    """``value`` in UTC; ``ValueError`` for a naive datetime (the store never guesses a time zone)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


class StoreCore:
    """Holds the engine and opens transactions; constructing one does no I/O."""

    def __init__(
        self,
        engine: AsyncEngine | str,
        *,
        clock: Clock | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        if isinstance(engine, str):
            self._engine = create_store_engine(engine)
            self._owns_engine = True
        else:
            prepare_engine(engine)
            self._engine = engine
            self._owns_engine = False
        if self._engine.dialect.name not in ("sqlite", "postgresql"):
            raise ConfigError(f"the store runs on SQLite or PostgreSQL, not {self._engine.dialect.name}")
        self._closed = False
        self._clock: Clock = clock or SystemClock()
        password = self._engine.url.password
        self._secrets = (*secrets, *((str(password),) if password else ()))
        self._dialect = self._engine.dialect.name
        self._reader = async_sessionmaker(self._engine, expire_on_commit=False)
        self._writer = async_sessionmaker(self._engine.execution_options(**WRITE), expire_on_commit=False)

    def _now(self, now: datetime | None = None, name: str = "now") -> datetime:
        return aware_utc(self._clock.now() if now is None else now, name)

    def _redact(self, text: str | None) -> str | None:
        return None if text is None else redact(text, self._secrets)

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise StoreError(f"store: could not {operation}: the store is closed")

    @asynccontextmanager
    async def _write(self, operation: str) -> AsyncIterator[AsyncSession]:
        """A transaction that may write: it holds the write lock from its first statement on SQLite."""
        self._check_open(operation)
        with translated(operation, self._secrets):
            async with self._writer() as session, session.begin():
                yield session

    @asynccontextmanager
    async def _read(self, operation: str) -> AsyncIterator[AsyncSession]:
        """A read-only transaction: one consistent view on SQLite; per-statement on PostgreSQL."""
        self._check_open(operation)
        with translated(operation, self._secrets):
            async with self._reader() as session, session.begin():
                yield session

    def _insert_unless_exists(self, model: type[DeclarativeBase], **values: Any) -> Insert:
        """``INSERT … ON CONFLICT DO NOTHING``: of several concurrent inserts of one key, exactly one inserts."""
        if self._dialect == "postgresql":
            return postgresql.insert(model).values(**values).on_conflict_do_nothing()
        return sqlite.insert(model).values(**values).on_conflict_do_nothing()
