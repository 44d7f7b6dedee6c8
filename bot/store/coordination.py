"""Doing things once across replicas: Slack retry keys and scheduled-job slots.

Keys and slots are claimed with ``INSERT … ON CONFLICT DO NOTHING RETURNING``: of concurrent
claimers of one key, the database lets exactly one insert, and only it gets a row back.
(Changes to Exchange are claimed with a compare-and-set lease: :mod:`bot.store.changes`.)
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.store.core import StoreCore, aware_utc
from bot.store.errors import UnknownRecordError
from bot.store.models import IdempotencyKeyRow, ScheduledRunRow
from bot.store.records import ScheduledRun

MAX_KEY_LENGTH = 255

_NO_SYNC = {"synchronize_session": False}


def _run(row: ScheduledRunRow) -> ScheduledRun:
    return ScheduledRun(
        job=row.job,
        slot=row.slot,
        owner=row.owner,
        claimed_at=row.claimed_at,
        finished_at=row.finished_at,
        result=row.result,
    )


class Coordination(StoreCore):
    # Slack retries (X-Slack-Retry-Num) ------------------------------------------------------------

    async def claim_once(self, key: str, now: datetime) -> bool:
        """True for the first caller to claim ``key`` (across replicas), False for every later one."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")
        statement = self._insert_unless_exists(IdempotencyKeyRow, key=key, claimed_at=aware_utc(now))
        async with self._write("claim an idempotency key") as session:
            claimed = await session.scalar(statement.returning(IdempotencyKeyRow.key))
            return claimed is not None

    async def claim_many(self, keys: Collection[str], now: datetime) -> set[str]:
        """:meth:`claim_once` for several keys in one transaction: the keys this caller claimed first."""
        for key in keys:
            if not key or len(key) > MAX_KEY_LENGTH:
                raise ValueError(f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")
        if not keys:
            return set()
        at = aware_utc(now)
        model = postgresql if self._dialect == "postgresql" else sqlite
        statement = (
            model.insert(IdempotencyKeyRow)
            .values([{"key": key, "claimed_at": at} for key in dict.fromkeys(keys)])
            .on_conflict_do_nothing()
            .returning(IdempotencyKeyRow.key)
        )
        async with self._write("claim idempotency keys") as session:
            return set((await session.scalars(statement)).all())

    async def prune_keys(self, older_than: datetime) -> int:
        """Forget keys claimed before ``older_than``; returns how many."""
        statement = delete(IdempotencyKeyRow).where(IdempotencyKeyRow.claimed_at < aware_utc(older_than, "older_than"))
        async with self._write("prune idempotency keys") as session:
            deleted = await session.scalars(statement.returning(IdempotencyKeyRow.key).execution_options(**_NO_SYNC))
            return len(deleted.all())

    # Scheduled jobs -------------------------------------------------------------------------------

    async def claim_run(self, job: str, slot: datetime, owner: str) -> bool:
        """True for the one replica that gets to run ``job`` for ``slot`` (e.g. the cron time)."""
        statement = self._insert_unless_exists(
            ScheduledRunRow, job=job, slot=aware_utc(slot, "slot"), owner=owner, claimed_at=self._now()
        )
        async with self._write("claim a scheduled run") as session:
            claimed = await session.scalar(statement.returning(ScheduledRunRow.job))
            return claimed is not None

    async def finish_run(self, job: str, slot: datetime, result: str) -> ScheduledRun:
        """Record the outcome of a claimed run (once)."""
        slot = aware_utc(slot, "slot")
        statement = (
            update(ScheduledRunRow)
            .where(ScheduledRunRow.job == job, ScheduledRunRow.slot == slot, ScheduledRunRow.finished_at.is_(None))
            .values(finished_at=self._now(), result=self._redact(result))
            .returning(ScheduledRunRow)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("finish a scheduled run") as session:
            row = (await session.scalars(statement)).one_or_none()
            if row is None:
                raise UnknownRecordError(f"no unfinished run of {job} for {slot.isoformat()}")
            return _run(row)

    async def last_run(self, job: str) -> ScheduledRun | None:
        """The run of ``job`` with the latest slot, finished or not; None if it never ran."""
        statement = (
            select(ScheduledRunRow).where(ScheduledRunRow.job == job).order_by(ScheduledRunRow.slot.desc()).limit(1)
        )
        async with self._read("read the last scheduled run") as session:
            row = (await session.scalars(statement)).one_or_none()
            return None if row is None else _run(row)
