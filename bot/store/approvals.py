"""Fix requests and their approval.

Every state change is one conditional ``UPDATE … WHERE status = <expected>`` (compare-and-set):
of two replicas handling two *Approve* clicks, the database lets exactly one update match. On
PostgreSQL the loser's ``UPDATE`` waits on the row lock, then re-checks the ``WHERE`` against the
committed row; on SQLite write transactions are serialised by ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.store.changes import insert_change
from bot.store.core import StoreCore, aware_utc
from bot.store.errors import SelfApprovalError, UnknownRecordError
from bot.store.models import RequestRow
from bot.store.records import ChangeOrigin, FixRequest, RequestKind, RequestStatus
from plugin.diagnosis import Right

_NO_SYNC = {"synchronize_session": False}


def _request(row: RequestRow) -> FixRequest:
    return FixRequest(
        id=row.id,
        kind=RequestKind(row.kind),
        right=Right(row.right),
        mailbox=row.mailbox,
        trustee=row.trustee,
        duration=None if row.duration_seconds is None else timedelta(seconds=row.duration_seconds),
        requested_by=row.requested_by,
        origin_channel=row.origin_channel,
        origin_thread_ts=row.origin_thread_ts,
        origin_test_user=row.origin_test_user,
        status=RequestStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        card_channel=row.card_channel,
        card_ts=row.card_ts,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        finished_at=row.finished_at,
        detail=row.detail,
    )


class FixRequests(StoreCore):
    async def create_request(
        self,
        *,
        kind: RequestKind,
        right: Right,
        mailbox: str,
        trustee: str,
        requested_by: str,
        origin_channel: str,
        expires_at: datetime,
        origin_thread_ts: str | None = None,
        origin_test_user: str | None = None,
        duration: timedelta | None = None,
        now: datetime | None = None,
    ) -> FixRequest:
        """Record a pending request to grant or revoke ``right`` for ``trustee`` on ``mailbox``."""
        if duration is not None and duration.total_seconds() < 1:
            raise ValueError(f"duration must be at least one second, got {duration}")
        row = RequestRow(
            kind=RequestKind(kind).value,
            right=Right(right).value,
            mailbox=mailbox,
            trustee=trustee,
            duration_seconds=None if duration is None else int(duration.total_seconds()),
            requested_by=requested_by,
            origin_channel=origin_channel,
            origin_thread_ts=origin_thread_ts,
            origin_test_user=origin_test_user,
            status=RequestStatus.PENDING.value,
            created_at=self._now(now),
            expires_at=aware_utc(expires_at, "expires_at"),
        )
        async with self._write("create a fix request") as session:
            session.add(row)
            await session.flush()
            return _request(row)

    async def get_request(self, request_id: int) -> FixRequest:
        """The request; :class:`UnknownRecordError` if there is none with that id."""
        async with self._read("read a fix request") as session:
            row = await session.get(RequestRow, request_id)
            if row is None:
                raise UnknownRecordError(f"no fix request {request_id}")
            return _request(row)

    async def set_card(self, request_id: int, channel: str, ts: str) -> None:
        """Remember where the approval card for the request was posted."""
        statement = update(RequestRow).where(RequestRow.id == request_id).values(card_channel=channel, card_ts=ts)
        async with self._write("record an approval card") as session:
            updated = await session.execute(statement.returning(RequestRow.id).execution_options(**_NO_SYNC))
            if updated.scalar_one_or_none() is None:
                raise UnknownRecordError(f"no fix request {request_id}")

    async def decide(self, request_id: int, decided_by: str, approve: bool, now: datetime) -> bool:
        """Approve or deny a pending, unexpired request. True only for the one call that decided it.

        Approving writes the change it asks for (see :meth:`Store.request_change`) in the same transaction:
        an approved request always has its change, so "already approved" never hides one that never ran.

        False when the request was already decided or has expired (read it with :meth:`get_request`
        to say why). The requester approving their own request raises :class:`SelfApprovalError`
        (denying it, i.e. withdrawing it, is allowed).
        """
        now = aware_utc(now)
        status = RequestStatus.APPROVED if approve else RequestStatus.DENIED
        async with self._write("record a decision") as session:
            requested_by = await session.scalar(select(RequestRow.requested_by).where(RequestRow.id == request_id))
            if requested_by is None:
                raise UnknownRecordError(f"no fix request {request_id}")
            if approve and requested_by == decided_by:
                raise SelfApprovalError(f"{decided_by} asked for request {request_id} and cannot approve it")
            statement = (
                update(RequestRow)
                .where(
                    RequestRow.id == request_id,
                    RequestRow.status == RequestStatus.PENDING.value,
                    RequestRow.expires_at > now,
                )
                .values(status=status.value, decided_by=decided_by, decided_at=now)
            )
            updated = await session.execute(statement.returning(RequestRow).execution_options(**_NO_SYNC))
            row = updated.scalar_one_or_none()
            if row is None:
                return False
            if approve:
                await insert_change(
                    session,
                    kind=RequestKind(row.kind),
                    origin=ChangeOrigin.REQUEST,
                    right=Right(row.right),
                    mailbox=row.mailbox,
                    trustee=row.trustee,
                    requested_by=row.requested_by,
                    approved_by=decided_by,
                    duration=None if row.duration_seconds is None else timedelta(seconds=row.duration_seconds),
                    request_id=row.id,
                    now=now,
                )
            return True

    async def expire_due(self, now: datetime) -> list[FixRequest]:
        """Mark pending requests whose time is up as expired and return them, each to one caller only."""
        now = aware_utc(now)
        statement = (
            update(RequestRow)
            .where(RequestRow.status == RequestStatus.PENDING.value, RequestRow.expires_at <= now)
            .values(status=RequestStatus.EXPIRED.value)
            .returning(RequestRow)
            .execution_options(**_NO_SYNC)
        )
        async with self._write("expire fix requests") as session:
            rows = (await session.scalars(statement)).all()
            return sorted((_request(row) for row in rows), key=lambda request: request.id)
