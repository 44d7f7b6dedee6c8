"""Doing things once across replicas: Slack retry keys, scheduled-job slots, time-bound grant revocations.

Keys and slots are claimed with ``INSERT … ON CONFLICT DO NOTHING RETURNING``: of concurrent
claimers of one key, the database lets exactly one insert, and only it gets a row back.
Revocations are claimed with a compare-and-set ``UPDATE … WHERE status = 'active'``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, or_, select, update

from bot.store.core import StoreCore, aware_utc
from bot.store.errors import InvalidStateError, UnknownRecordError
from bot.store.models import IdempotencyKeyRow, ScheduledRunRow, TimedGrantRow
from bot.store.records import ScheduledRun, TimedGrant, TimedGrantStatus
from plugin.diagnosis import Right

REVOCATION_LEASE = timedelta(minutes=15)
"""A replica that claimed a revocation and has not finished it after this long is presumed dead:
the grant becomes due again, so a crash never leaves a time-bound right in place for good."""

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


def _grant(row: TimedGrantRow) -> TimedGrant:
    return TimedGrant(
        id=row.id,
        right=Right(row.right),
        mailbox=row.mailbox,
        trustee=row.trustee,
        expires_at=row.expires_at,
        request_id=row.request_id,
        granted_by=row.granted_by,
        created_at=row.created_at,
        status=TimedGrantStatus(row.status),
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        revoked_at=row.revoked_at,
        detail=row.detail,
    )


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Active grants, and revocations whose claimer let the lease run out."""
    return or_(
        TimedGrantRow.status == TimedGrantStatus.ACTIVE.value,
        and_(
            TimedGrantRow.status == TimedGrantStatus.REVOKING.value,
            TimedGrantRow.claimed_at <= now - REVOCATION_LEASE,
        ),
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

    # Time-bound grants ----------------------------------------------------------------------------

    async def add_timed_grant(
        self,
        right: Right,
        mailbox: str,
        trustee: str,
        expires_at: datetime,
        request_id: int | None,
        granted_by: str,
    ) -> TimedGrant:
        """Remember that ``right`` was granted until ``expires_at`` and must then be revoked."""
        row = TimedGrantRow(
            right=Right(right).value,
            mailbox=mailbox,
            trustee=trustee,
            expires_at=aware_utc(expires_at, "expires_at"),
            request_id=request_id,
            granted_by=granted_by,
            created_at=self._now(),
            status=TimedGrantStatus.ACTIVE.value,
        )
        async with self._write("record a time-bound grant") as session:
            session.add(row)
            await session.flush()
            return _grant(row)

    async def due_timed_grants(self, now: datetime) -> list[TimedGrant]:
        """Grants whose time is up and that no live replica is revoking, soonest first."""
        now = aware_utc(now)
        statement = (
            select(TimedGrantRow)
            .where(TimedGrantRow.expires_at <= now, _claimable(now))
            .order_by(TimedGrantRow.expires_at, TimedGrantRow.id)
        )
        async with self._read("read due time-bound grants") as session:
            return [_grant(row) for row in (await session.scalars(statement)).all()]

    async def claim_timed_grant_revocation(self, grant_id: int, owner: str) -> bool:
        """True for the one replica that gets to revoke the grant now."""
        now = self._now()
        statement = (
            update(TimedGrantRow)
            .where(TimedGrantRow.id == grant_id, _claimable(now))
            .values(status=TimedGrantStatus.REVOKING.value, claimed_by=owner, claimed_at=now)
            .returning(TimedGrantRow.id)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("claim a time-bound grant revocation") as session:
            return (await session.scalar(statement)) is not None

    async def mark_timed_grant_revoked(self, grant_id: int, ok: bool, detail: str | None = None) -> TimedGrant:
        """Record the outcome of a claimed revocation: ``revoked``, or ``failed`` (final: tell a person)."""
        now = self._now()
        status = TimedGrantStatus.REVOKED if ok else TimedGrantStatus.FAILED
        statement = (
            update(TimedGrantRow)
            .where(TimedGrantRow.id == grant_id, TimedGrantRow.status == TimedGrantStatus.REVOKING.value)
            .values(status=status.value, revoked_at=now if ok else None, detail=self._redact(detail))
            .returning(TimedGrantRow)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("record a time-bound grant revocation") as session:
            row = (await session.scalars(statement)).one_or_none()
            if row is not None:
                return _grant(row)
            current = await session.scalar(select(TimedGrantRow.status).where(TimedGrantRow.id == grant_id))
            if current is None:
                raise UnknownRecordError(f"no time-bound grant {grant_id}")
            raise InvalidStateError(f"time-bound grant {grant_id} is {current}, not being revoked")
