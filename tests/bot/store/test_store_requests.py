"""Fix requests: round trip, the approval race between replicas, self-approval, expiry, outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta, timezone

import pytest

from bot.store import (
    ChangeState,
    FixRequest,
    RequestKind,
    RequestStatus,
    SelfApprovalError,
    Store,
    UnknownRecordError,
)
from plugin.diagnosis import Right
from tests.bot.store.support import START, Database

TTL = timedelta(hours=24)


async def _request(store: Store, requested_by: str = "U_HELPDESK", **overrides: object) -> FixRequest:
    fields: dict[str, object] = {
        "kind": RequestKind.GRANT,
        "right": Right.SEND_AS,
        "mailbox": "billing@contoso.com",
        "trustee": "alice@contoso.com",
        "requested_by": requested_by,
        "origin_channel": "C_HELPDESK",
        "origin_thread_ts": "1767603600.000100",
        "expires_at": START + TTL,
    }
    fields.update(overrides)
    return await store.create_request(**fields)  # type: ignore[arg-type]


async def test_a_request_round_trips_with_aware_utc_times(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    created = await _request(
        store,
        kind=RequestKind.REVOKE,
        right=Right.FULL_ACCESS,
        duration=timedelta(hours=8),
        origin_test_user="alice@contoso.com",
        expires_at=(START + TTL).astimezone(paris),
    )
    read = await store.get_request(created.id)
    assert read == created
    assert read.kind is RequestKind.REVOKE
    assert read.right is Right.FULL_ACCESS
    assert read.duration == timedelta(hours=8)
    assert read.status is RequestStatus.PENDING
    assert read.created_at == START
    assert read.expires_at == START + TTL
    assert read.expires_at.tzinfo is not None
    assert read.expires_at.utcoffset() == timedelta(0)
    assert (read.origin_channel, read.origin_thread_ts, read.origin_test_user) == (
        "C_HELPDESK",
        "1767603600.000100",
        "alice@contoso.com",
    )


async def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await _request(store, expires_at=(START + TTL).replace(tzinfo=None))


async def test_unknown_requests(store: Store) -> None:
    with pytest.raises(UnknownRecordError):
        await store.get_request(404)
    with pytest.raises(UnknownRecordError):
        await store.set_card(404, "C_IT", "1.2")
    with pytest.raises(UnknownRecordError):
        await store.decide(404, "U_IT", True, START)


async def test_the_card_is_remembered(store: Store) -> None:
    request = await _request(store)
    await store.set_card(request.id, "C_IT", "1767603601.000200")
    read = await store.get_request(request.id)
    assert (read.card_channel, read.card_ts) == ("C_IT", "1767603601.000200")


@pytest.mark.parametrize(("approve", "status"), [(True, RequestStatus.APPROVED), (False, RequestStatus.DENIED)])
async def test_a_request_is_decided_once(store: Store, approve: bool, status: RequestStatus) -> None:
    request = await _request(store)
    now = START + timedelta(minutes=5)
    assert await store.decide(request.id, "U_IT1", approve, now) is True
    assert await store.decide(request.id, "U_IT2", True, now) is False
    assert await store.decide(request.id, "U_IT2", False, now) is False
    read = await store.get_request(request.id)
    assert (read.status, read.decided_by, read.decided_at) == (status, "U_IT1", now)


async def test_two_replicas_approving_at_once_exactly_one_wins(
    database: Database, make_store: Callable[..., Awaitable[Store]]
) -> None:
    first, second = await make_store(), await make_store()
    requests = [await _request(first) for _ in range(10)]
    for request in requests:
        won = await asyncio.gather(
            first.decide(request.id, "U_IT1", True, START),
            second.decide(request.id, "U_IT2", True, START),
        )
        assert sorted(won) == [False, True]
        winner = "U_IT1" if won[0] else "U_IT2"
        assert (await second.get_request(request.id)).decided_by == winner
    approved = await database.rows("SELECT count(*) FROM fix_requests WHERE status = 'approved'")
    assert approved == [(10,)]


async def test_the_requester_cannot_approve_their_own_request(store: Store) -> None:
    request = await _request(store, requested_by="U_ALICE")
    with pytest.raises(SelfApprovalError, match="U_ALICE"):
        await store.decide(request.id, "U_ALICE", True, START)
    assert (await store.get_request(request.id)).status is RequestStatus.PENDING
    # Denying one's own request withdraws it, which is allowed.
    assert await store.decide(request.id, "U_ALICE", False, START) is True
    assert (await store.get_request(request.id)).status is RequestStatus.DENIED


async def test_an_expired_request_cannot_be_decided_and_expires_once(
    store: Store, make_store: Callable[..., Awaitable[Store]]
) -> None:
    expiring = await _request(store, expires_at=START + timedelta(hours=1))
    later = await _request(store, expires_at=START + timedelta(hours=3))
    decided = await _request(store, expires_at=START + timedelta(hours=1))
    assert await store.decide(decided.id, "U_IT", True, START) is True

    assert await store.expire_due(START + timedelta(minutes=59)) == []
    deadline = START + timedelta(hours=1)
    assert await store.decide(expiring.id, "U_IT", True, deadline) is False
    assert (await store.get_request(expiring.id)).status is RequestStatus.PENDING

    other = await make_store()
    first, second = await asyncio.gather(store.expire_due(deadline), other.expire_due(deadline))
    expired = first + second
    assert [request.id for request in expired] == [expiring.id]
    assert expired[0].status is RequestStatus.EXPIRED
    assert await store.expire_due(deadline) == []
    assert (await store.get_request(later.id)).status is RequestStatus.PENDING
    assert (await store.get_request(decided.id)).status is RequestStatus.APPROVED


async def test_outcome_text_is_redacted(database: Database, make_store: Callable[..., Awaitable[Store]]) -> None:
    store = await make_store(secrets=["s3cret-client-value"])
    request = await _request(store)
    await store.decide(request.id, "U_IT", True, START)
    change = await store.request_change(request.id)
    assert change is not None
    await store.claim_change(change.id, "replica-a", timedelta(seconds=60))
    await store.start_attempt(change.id, "replica-a")
    why = "token request failed: client_secret=s3cret-client-value, Bearer abc.def"
    await store.settle_change(change.id, "replica-a", ChangeState.FAILED, why)
    assert (await store.get_request(request.id)).status is RequestStatus.FAILED
    detail = (await store.get_request(request.id)).detail or ""
    assert "s3cret-client-value" not in detail
    assert "abc.def" not in detail
    assert "<redacted>" in detail
    dump = await database.rows("SELECT * FROM fix_requests")
    assert "s3cret-client-value" not in repr(dump)
