"""Re-tests after a granted fix, as rows: written with the grant's ``verified`` state, in the same transaction,
and run by whichever replica holds the row's lease (the runner is :mod:`bot.retest`).

A re-test is ``testing`` (attempts due at ``due_at``, with back-off), then ``posting`` (the outcome recorded and
its ``retest`` audit entry written, in one transaction), then ``done`` once Slack shows it. The lease is the same
compare-and-set as a change's (:mod:`bot.store.changes`): of several replicas exactly one runs an attempt, and
one that died lets its lease run out. The report posted with the result is claimed by setting ``posted_at`` in
the transaction that records the outcome (or, after Slack refused it, by a compare-and-set on ``posted_at``), so
it is posted once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.auditlog import AuditLog
from bot.store.errors import InvalidStateError, UnknownRecordError
from bot.store.models import ChangeRow, RequestRow, RetestRow
from bot.store.records import RetestOutcome, RetestRecord, RetestState
from plugin.diagnosis import Right

RETEST_ACTOR = "emaildoctor"
_NO_SYNC = {"synchronize_session": False}


def _retest(row: RetestRow) -> RetestRecord:
    return RetestRecord(
        id=row.id,
        change_id=row.change_id,
        request_id=row.request_id,
        test_user=row.test_user,
        right=Right(row.right),
        channel=row.channel,
        thread_ts=row.thread_ts,
        state=RetestState(row.state),
        attempts=row.attempts,
        due_at=row.due_at,
        claimed_by=row.claimed_by,
        lease_until=row.lease_until,
        progress_ts=row.progress_ts,
        outcome=None if row.outcome is None else RetestOutcome(row.outcome),
        result_text=row.result_text,
        report=row.report,
        posted_at=row.posted_at,
        slack_failures=row.slack_failures,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


async def insert_retest(session: AsyncSession, change: ChangeRow, now: datetime) -> None:
    """Within the transaction that verifies ``change``: its re-test, if a failed test led to the request."""
    if change.kind != "grant" or change.origin != "request" or change.request_id is None:
        return
    request = await session.get(RequestRow, change.request_id)
    if request is None or request.origin_test_user is None:
        return
    session.add(
        RetestRow(
            change_id=change.id,
            request_id=request.id,
            test_user=request.origin_test_user,
            right=change.right,
            channel=request.origin_channel,
            thread_ts=request.origin_thread_ts,
            state=RetestState.TESTING.value,
            attempts=0,
            due_at=now,
            slack_failures=0,
            created_at=now,
            updated_at=now,
        )
    )


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(RetestRow.lease_until.is_(None), RetestRow.lease_until < now)


def _workable(now: datetime) -> ColumnElement[bool]:
    return and_(RetestRow.state != RetestState.DONE.value, RetestRow.due_at <= now, _lease_free(now))


class Retests(AuditLog):
    async def retest_of_change(self, change_id: int) -> RetestRecord | None:
        async with self._read("read a re-test") as session:
            row = (await session.scalars(select(RetestRow).where(RetestRow.change_id == change_id))).one_or_none()
            return None if row is None else _retest(row)

    async def get_retest(self, retest_id: int) -> RetestRecord:
        async with self._read("read a re-test") as session:
            row = await session.get(RetestRow, retest_id)
            if row is None:
                raise UnknownRecordError(f"no re-test {retest_id}")
            return _retest(row)

    async def workable_retests(
        self, grace: timedelta, now: datetime | None = None, limit: int = 100
    ) -> list[RetestRecord]:
        """Re-tests due now that no live replica holds, soonest first. One not started yet is left to the replica
        that verified the grant for ``grace`` (it starts it at once)."""
        now = self._now(now)
        fresh = and_(RetestRow.progress_ts.is_(None), RetestRow.created_at > now - grace)
        statement = (
            select(RetestRow).where(_workable(now), ~fresh).order_by(RetestRow.due_at, RetestRow.id).limit(limit)
        )
        async with self._read("read re-tests to run") as session:
            return [_retest(row) for row in (await session.scalars(statement)).all()]

    async def claim_retest(self, retest_id: int, owner: str, lease: timedelta) -> RetestRecord | None:
        """Take the re-test for ``lease`` if it is due and nobody holds it; None otherwise."""
        now = self._now()
        statement = (
            update(RetestRow)
            .where(RetestRow.id == retest_id, _workable(now))
            .values(claimed_by=owner, lease_until=now + lease)
            .returning(RetestRow)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("claim a re-test") as session:
            row = (await session.scalars(statement)).one_or_none()
            return None if row is None else _retest(row)

    async def renew_retest_lease(self, retest_id: int, owner: str, lease: timedelta) -> bool:
        statement = (
            update(RetestRow)
            .where(RetestRow.id == retest_id, RetestRow.claimed_by == owner, RetestRow.lease_until.is_not(None))
            .values(lease_until=self._now() + lease)
            .returning(RetestRow.id)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("renew a re-test's lease") as session:
            return (await session.scalar(statement)) is not None

    async def release_retest(self, retest_id: int, owner: str) -> None:
        statement = (
            update(RetestRow)
            .where(RetestRow.id == retest_id, RetestRow.claimed_by == owner)
            .values(lease_until=None)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("release a re-test") as session:
            await session.execute(statement)

    async def retest_started(self, retest_id: int, owner: str, progress_ts: str, due_at: datetime) -> RetestRecord:
        """The progress message is posted (``progress_ts``); the first attempt is due at ``due_at``."""
        async with self._write("start a re-test") as session:
            row = await self._held_retest(session, retest_id, owner)
            row.progress_ts, row.due_at, row.slack_failures, row.updated_at = progress_ts, due_at, 0, self._now()
            return _retest(row)

    async def retest_attempted(self, retest_id: int, owner: str, attempts: int, due_at: datetime) -> RetestRecord:
        """Attempt ``attempts`` failed as expected (the right is not applied yet); the next is due at ``due_at``."""
        async with self._write("record a re-test attempt") as session:
            row = await self._held_retest(session, retest_id, owner, RetestState.TESTING)
            row.attempts, row.due_at, row.updated_at = attempts, due_at, self._now()
            return _retest(row)

    async def finish_retest(
        self,
        retest_id: int,
        owner: str,
        *,
        attempts: int,
        outcome: RetestOutcome,
        text: str,
        report: str | None,
    ) -> RetestRecord:
        """Record the outcome and its ``retest`` audit entry, and claim the report's post (``posted_at``), in one
        transaction: ``posting``, to be shown in Slack by this replica (or, if it dies, another)."""
        now = self._now()
        async with self._write("record a re-test's outcome") as session:
            row = await self._held_retest(session, retest_id, owner, RetestState.TESTING)
            row.state, row.attempts, row.outcome = RetestState.POSTING.value, attempts, outcome.value
            row.result_text, row.report, row.posted_at = self._redact(text), self._redact(report), now
            row.due_at, row.updated_at = now, now
            await self._append(
                session,
                RETEST_ACTOR,
                "retest",
                {"user": row.test_user},
                "ok" if outcome is RetestOutcome.PASSED else "failed",
                request_id=row.request_id,
                detail=text,
            )
            return _retest(row)

    async def claim_retest_post(self, retest_id: int, owner: str) -> bool:
        """True for the one caller that gets to post the report (after an earlier post was refused by Slack)."""
        statement = (
            update(RetestRow)
            .where(
                RetestRow.id == retest_id,
                RetestRow.claimed_by == owner,
                RetestRow.state == RetestState.POSTING.value,
                RetestRow.posted_at.is_(None),
            )
            .values(posted_at=self._now())
            .returning(RetestRow.id)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("claim a re-test's report") as session:
            return (await session.scalar(statement)) is not None

    async def retest_slack_failed(
        self, retest_id: int, owner: str, due_at: datetime, *, report_unposted: bool = False
    ) -> RetestRecord:
        """Slack refused a message: try again at ``due_at``; ``report_unposted`` gives the report's claim back."""
        async with self._write("record a re-test's Slack failure") as session:
            row = await self._held_retest(session, retest_id, owner)
            row.slack_failures, row.due_at, row.updated_at = row.slack_failures + 1, due_at, self._now()
            if report_unposted:
                row.posted_at = None
            return _retest(row)

    async def close_retest(self, retest_id: int, owner: str) -> RetestRecord:
        """Slack shows the outcome: ``done``."""
        now = self._now()
        async with self._write("close a re-test") as session:
            row = await self._held_retest(session, retest_id, owner, RetestState.POSTING)
            row.state, row.finished_at, row.updated_at, row.slack_failures = RetestState.DONE.value, now, now, 0
            return _retest(row)

    async def _held_retest(
        self, session: AsyncSession, retest_id: int, owner: str, state: RetestState | None = None
    ) -> RetestRow:
        row = await session.get(RetestRow, retest_id, with_for_update=True)
        if row is None:
            raise UnknownRecordError(f"no re-test {retest_id}")
        if row.claimed_by != owner or row.lease_until is None:
            raise InvalidStateError(f"re-test {retest_id} is not held by {owner}: another replica took it over")
        if row.state == RetestState.DONE.value or (state is not None and row.state != state.value):
            raise InvalidStateError(f"re-test {retest_id} is already {row.state}")
        return row
