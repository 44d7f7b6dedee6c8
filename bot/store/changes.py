"""Changes to Exchange as rows: the intent, written before Exchange is touched, and how far it got.

The state machine itself (what moves a change from one state to the next) is :mod:`bot.pipeline`; this
module keeps its rows. A change is worked on by one replica at a time, the one holding its lease:
:meth:`Changes.claim_change` is a compare-and-set ``UPDATE … WHERE lease_until IS NULL OR lease_until < now``,
so of two replicas exactly one gets it, and a replica that died lets its lease run out. The audit log's
``<kind>.started`` entry commits with the first attempt, and the outcome entry with the final state, in
the same transaction: a change is never final without its outcome in the log, nor the other way round; a
verified grant that a failed test asked for gets its re-test row (:mod:`bot.store.retests`) in it too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.auditlog import AuditLog
from bot.store.errors import InvalidStateError, UnknownRecordError
from bot.store.models import ChangeRow, RequestRow
from bot.store.records import ChangeOrigin, ChangeRecord, ChangeState, RequestKind, RequestStatus
from bot.store.retests import insert_retest
from plugin.diagnosis import Right

TIME_LIMIT_ACTOR = "emaildoctor (time limit)"
FINAL = (ChangeState.VERIFIED.value, ChangeState.FAILED.value)
_NO_SYNC = {"synchronize_session": False}


def _change(row: ChangeRow) -> ChangeRecord:
    return ChangeRecord(
        id=row.id,
        kind=RequestKind(row.kind),
        origin=ChangeOrigin(row.origin),
        right=Right(row.right),
        mailbox=row.mailbox,
        trustee=row.trustee,
        duration=None if row.duration_seconds is None else timedelta(seconds=row.duration_seconds),
        expires_at=row.expires_at,
        request_id=row.request_id,
        parent_id=row.parent_id,
        requested_by=row.requested_by,
        approved_by=row.approved_by,
        state=ChangeState(row.state),
        due_at=row.due_at,
        attempts=row.attempts,
        claimed_by=row.claimed_by,
        lease_until=row.lease_until,
        shown=row.shown,
        escalated_at=row.escalated_at,
        detail=row.detail,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        show_failures=row.show_failures,
        show_after=row.show_after,
    )


async def insert_change(
    session: AsyncSession,
    *,
    kind: RequestKind,
    origin: ChangeOrigin,
    right: Right,
    mailbox: str,
    trustee: str,
    requested_by: str,
    approved_by: str,
    now: datetime,
    duration: timedelta | None = None,
    request_id: int | None = None,
) -> ChangeRow:
    """Add a change (and, for a time-bound grant, the revocation that ends it) to ``session``'s transaction."""
    if duration is not None and (kind is not RequestKind.GRANT or duration.total_seconds() < 1):
        raise ValueError("only a grant can be time-bound, for at least one second")
    expires = now + duration if duration is not None else None
    row = ChangeRow(
        kind=RequestKind(kind).value,
        origin=ChangeOrigin(origin).value,
        right=Right(right).value,
        mailbox=mailbox,
        trustee=trustee,
        duration_seconds=None if duration is None else int(duration.total_seconds()),
        expires_at=expires,
        request_id=request_id,
        requested_by=requested_by,
        approved_by=approved_by,
        state=ChangeState.APPROVED.value,
        due_at=now,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    if expires is not None:
        session.add(
            ChangeRow(
                kind=RequestKind.REVOKE.value,
                origin=ChangeOrigin.TIME_LIMIT.value,
                right=row.right,
                mailbox=mailbox,
                trustee=trustee,
                expires_at=expires,
                request_id=request_id,
                parent_id=row.id,
                requested_by=TIME_LIMIT_ACTOR,
                approved_by=approved_by,
                state=ChangeState.APPROVED.value,
                due_at=expires,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
    return row


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(ChangeRow.lease_until.is_(None), ChangeRow.lease_until < now)


def _workable(now: datetime) -> ColumnElement[bool]:
    """Unfinished and due, or finished but not yet shown in Slack; and no live replica holds it."""
    unfinished = and_(ChangeRow.state.not_in(FINAL), ChangeRow.due_at <= now)
    unshown = and_(
        ChangeRow.state.in_(FINAL),
        or_(ChangeRow.shown.is_(None), ChangeRow.shown != ChangeRow.state),
        or_(ChangeRow.show_after.is_(None), ChangeRow.show_after <= now),  # Slack refused it: back-off
    )
    return and_(or_(unfinished, unshown), _lease_free(now))


class Changes(AuditLog):
    async def record_change(
        self,
        *,
        kind: RequestKind,
        origin: ChangeOrigin,
        right: Right,
        mailbox: str,
        trustee: str,
        requested_by: str,
        approved_by: str,
        duration: timedelta | None = None,
        request_id: int | None = None,
    ) -> ChangeRecord:
        """Write the intent of a change (and its time limit's revocation) before anything touches Exchange."""
        async with self._write("record a change") as session:
            row = await insert_change(
                session,
                kind=kind,
                origin=origin,
                right=right,
                mailbox=mailbox,
                trustee=trustee,
                requested_by=requested_by,
                approved_by=approved_by,
                duration=duration,
                request_id=request_id,
                now=self._now(),
            )
            return _change(row)

    async def get_change(self, change_id: int) -> ChangeRecord:
        async with self._read("read a change") as session:
            row = await session.get(ChangeRow, change_id)
            if row is None:
                raise UnknownRecordError(f"no change {change_id}")
            return _change(row)

    async def request_change(self, request_id: int) -> ChangeRecord | None:
        """The change an approved request made (None before it was approved)."""
        statement = select(ChangeRow).where(ChangeRow.request_id == request_id, ChangeRow.parent_id.is_(None))
        async with self._read("read a request's change") as session:
            row = (await session.scalars(statement.order_by(ChangeRow.id).limit(1))).one_or_none()
            return None if row is None else _change(row)

    async def time_limit_of(self, change_id: int) -> ChangeRecord | None:
        """The revocation that ends a time-bound grant."""
        async with self._read("read a time limit") as session:
            row = (await session.scalars(select(ChangeRow).where(ChangeRow.parent_id == change_id))).one_or_none()
            return None if row is None else _change(row)

    async def workable_changes(
        self, grace: timedelta, now: datetime | None = None, limit: int = 100
    ) -> list[ChangeRecord]:
        """Changes a reconciler should take up now: unfinished and due, or not yet shown; soonest first.
        A change never attempted is left to the replica that recorded it for ``grace`` (it claims it at once)."""
        now = self._now(now)
        fresh = and_(ChangeRow.attempts == 0, ChangeRow.created_at > now - grace)
        statement = (
            select(ChangeRow).where(_workable(now), ~fresh).order_by(ChangeRow.due_at, ChangeRow.id).limit(limit)
        )
        async with self._read("read changes to settle") as session:
            return [_change(row) for row in (await session.scalars(statement)).all()]

    async def recent_changes(self, limit: int = 100, *, unsettled: bool = False) -> list[ChangeRecord]:
        """The latest changes (only those not final yet, with ``unsettled``), newest first."""
        statement = select(ChangeRow).order_by(ChangeRow.id.desc()).limit(limit)
        if unsettled:
            statement = statement.where(ChangeRow.state.not_in(FINAL))
        async with self._read("read recent changes") as session:
            return [_change(row) for row in (await session.scalars(statement)).all()]

    async def overdue_revocations(self, now: datetime | None = None) -> list[ChangeRecord]:
        """Time limits that ran out and whose revocation is not done yet."""
        now = self._now(now)
        statement = (
            select(ChangeRow)
            .where(
                ChangeRow.origin == ChangeOrigin.TIME_LIMIT.value,
                ChangeRow.state.not_in(FINAL),
                ChangeRow.expires_at <= now,
            )
            .order_by(ChangeRow.expires_at, ChangeRow.id)
        )
        async with self._read("read overdue revocations") as session:
            return [_change(row) for row in (await session.scalars(statement)).all()]

    async def claim_change(self, change_id: int, owner: str, lease: timedelta) -> ChangeRecord | None:
        """Take the change for ``lease`` if it is workable now; None if another replica holds it or it is settled."""
        now = self._now()
        statement = (
            update(ChangeRow)
            .where(ChangeRow.id == change_id, _workable(now))
            .values(claimed_by=owner, lease_until=now + lease)
            .returning(ChangeRow)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("claim a change") as session:
            row = (await session.scalars(statement)).one_or_none()
            return None if row is None else _change(row)

    async def renew_lease(self, change_id: int, owner: str, lease: timedelta) -> bool:
        statement = (
            update(ChangeRow)
            .where(ChangeRow.id == change_id, ChangeRow.claimed_by == owner, ChangeRow.lease_until.is_not(None))
            .values(lease_until=self._now() + lease)
            .returning(ChangeRow.id)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("renew a change's lease") as session:
            return (await session.scalar(statement)) is not None

    async def release_change(
        self, change_id: int, owner: str, *, shown: str | None = None, show_again_at: datetime | None = None
    ) -> None:
        """Give the lease up; ``shown`` records the state Slack now shows. ``show_again_at``: Slack refused to show
        it, so a final change is shown again from then on (and the refusals are counted for the back-off)."""
        values: dict[str, object] = {"lease_until": None}
        if shown is not None:
            values.update(shown=shown, show_failures=0, show_after=None)
        elif show_again_at is not None:
            values.update(show_failures=ChangeRow.show_failures + 1, show_after=show_again_at)
        statement = update(ChangeRow).where(ChangeRow.id == change_id, ChangeRow.claimed_by == owner).values(**values)
        async with self._write("release a change") as session:
            await session.execute(statement.execution_options(**_NO_SYNC))

    async def start_attempt(self, change_id: int, owner: str) -> ChangeRecord:
        """``applying``: Exchange is about to be called. The first attempt writes ``<kind>.started`` with it."""
        async with self._write("start a change") as session:
            row = await self._held(session, change_id, owner)
            row.state, row.attempts, row.updated_at = ChangeState.APPLYING.value, row.attempts + 1, self._now()
            if row.attempts == 1:
                await self._append(
                    session,
                    row.requested_by,
                    f"{row.kind}.started",
                    _change(row).subject(),
                    "started",
                    approved_by=row.approved_by,
                    request_id=row.request_id,
                )
            return _change(row)

    async def settle_change(
        self, change_id: int, owner: str, state: ChangeState, detail: str, *, due_at: datetime | None = None
    ) -> ChangeRecord:
        """Move the change to ``state``. A final state writes the outcome to the audit log (and finishes the
        request that asked for it) in the same transaction; ``due_at`` is when to look at it again otherwise."""
        now = self._now()
        async with self._write("record a change's progress") as session:
            row = await self._held(session, change_id, owner)
            row.state, row.detail, row.updated_at = state.value, self._redact(detail), now
            if due_at is not None:
                row.due_at = due_at
            if state.final:
                row.finished_at = now
                await self._append(
                    session,
                    row.requested_by,
                    row.kind,
                    _change(row).subject(),
                    "ok" if state is ChangeState.VERIFIED else "failed",
                    approved_by=row.approved_by,
                    request_id=row.request_id,
                    detail=detail,
                )
                if state is ChangeState.VERIFIED:
                    await insert_retest(session, row, now)
                if row.origin == ChangeOrigin.REQUEST.value and row.request_id is not None:
                    done = RequestStatus.DONE if state is ChangeState.VERIFIED else RequestStatus.FAILED
                    await session.execute(
                        update(RequestRow)
                        .where(RequestRow.id == row.request_id, RequestRow.status == RequestStatus.APPROVED.value)
                        .values(status=done.value, detail=row.detail, finished_at=now)
                        .execution_options(**_NO_SYNC)
                    )
            return _change(row)

    async def mark_escalated(self, change_id: int, *, escalated: bool = True) -> bool:
        """True for the one caller that gets to tell people the revocation is overdue; ``escalated=False``
        takes the mark back (telling them failed), so a later tick tells them again."""
        done = ChangeRow.escalated_at.is_(None) if escalated else ChangeRow.escalated_at.is_not(None)
        statement = (
            update(ChangeRow)
            .where(ChangeRow.id == change_id, done)
            .values(escalated_at=self._now() if escalated else None)
            .returning(ChangeRow.id)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("escalate a change") as session:
            return (await session.scalar(statement)) is not None

    async def _held(self, session: AsyncSession, change_id: int, owner: str) -> ChangeRow:
        row = await session.get(ChangeRow, change_id, with_for_update=True)
        if row is None:
            raise UnknownRecordError(f"no change {change_id}")
        if row.claimed_by != owner or row.lease_until is None:
            raise InvalidStateError(f"change {change_id} is not held by {owner}: another replica took it over")
        if row.state in FINAL:
            raise InvalidStateError(f"change {change_id} is already {row.state}")
        return row
