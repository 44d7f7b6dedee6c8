"""Changes as rows: the intent with its time limit in one transaction, one replica per change, leases that
lapse, the final state and its audit outcome committed together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from bot.store import (
    ChangeOrigin,
    ChangeState,
    InvalidStateError,
    RequestKind,
    RequestStatus,
    Store,
    StoreError,
)
from bot.store.changes import TIME_LIMIT_ACTOR
from plugin.diagnosis import Right
from tests.bot.store.support import START, Database, FakeClock

MakeStore = Callable[..., Awaitable[Store]]
LEASE = timedelta(seconds=60)
GRACE = timedelta(seconds=60)


async def _record(store: Store, duration: timedelta | None = None) -> int:
    change = await store.record_change(
        kind=RequestKind.GRANT,
        origin=ChangeOrigin.DIRECT,
        right=Right.SEND_AS,
        mailbox="billing@contoso.com",
        trustee="alice@contoso.com",
        requested_by="U_IT",
        approved_by="U_IT",
        duration=duration,
    )
    return change.id


async def test_a_time_bound_grant_is_recorded_with_its_revocation(store: Store) -> None:
    grant_id = await _record(store, timedelta(hours=8))
    grant = await store.get_change(grant_id)
    revoke = await store.time_limit_of(grant_id)
    assert revoke is not None
    assert (grant.state, grant.expires_at, grant.attempts) == (ChangeState.APPROVED, START + timedelta(hours=8), 0)
    assert (revoke.kind, revoke.origin, revoke.state, revoke.due_at, revoke.requested_by, revoke.approved_by) == (
        RequestKind.REVOKE,
        ChangeOrigin.TIME_LIMIT,
        ChangeState.APPROVED,
        START + timedelta(hours=8),
        TIME_LIMIT_ACTOR,
        "U_IT",
    )


async def test_no_change_is_recorded_when_the_store_cannot_write(database: Database) -> None:
    async with await Store.open(database.url) as store, await Store.open(database.read_only_url, migrate=False) as ro:
        with pytest.raises(StoreError, match="could not record a change"):
            await _record(ro, timedelta(hours=1))
        assert await store.workable_changes(timedelta(0), START + timedelta(days=1)) == []


async def test_one_replica_claims_a_change(make_store: MakeStore) -> None:
    first, second = await make_store(), await make_store()
    change_id = await _record(first)
    won = await asyncio.gather(
        first.claim_change(change_id, "replica-a", LEASE), second.claim_change(change_id, "replica-b", LEASE)
    )
    assert sorted(change is not None for change in won) == [False, True]


async def test_a_lapsed_lease_lets_another_replica_settle_it(store: Store, clock: FakeClock) -> None:
    change_id = await _record(store)
    assert await store.claim_change(change_id, "replica-a", LEASE) is not None
    started = await store.start_attempt(change_id, "replica-a")
    assert (started.state, started.attempts) == (ChangeState.APPLYING, 1)
    assert await store.workable_changes(GRACE) == []  # held
    clock.advance(seconds=61)
    assert [c.id for c in await store.workable_changes(GRACE)] == [change_id]
    assert await store.claim_change(change_id, "replica-b", LEASE) is not None
    with pytest.raises(InvalidStateError, match="not held by replica-a"):
        await store.settle_change(change_id, "replica-a", ChangeState.VERIFIED, "late")
    done = await store.settle_change(change_id, "replica-b", ChangeState.VERIFIED, "read back")
    assert (done.state, done.finished_at) == (ChangeState.VERIFIED, clock.now())
    entries = [(e.action, e.result, e.detail) for e in await store.audit_entries()]
    assert entries == [("grant.started", "started", None), ("grant", "ok", "read back")]
    assert (await store.verify_audit_chain()).ok
    await store.release_change(change_id, "replica-b", shown="verified")
    assert await store.workable_changes(GRACE, clock.now() + timedelta(days=1)) == []


async def test_a_fresh_change_is_left_to_its_recorder_for_the_grace(store: Store, clock: FakeClock) -> None:
    change_id = await _record(store)
    assert await store.workable_changes(GRACE) == []
    clock.advance(seconds=61)
    assert [c.id for c in await store.workable_changes(GRACE)] == [change_id]


async def test_a_final_change_not_shown_in_slack_is_workable_until_shown(store: Store, clock: FakeClock) -> None:
    change_id = await _record(store)
    await store.claim_change(change_id, "replica-a", LEASE)
    await store.start_attempt(change_id, "replica-a")
    await store.settle_change(change_id, "replica-a", ChangeState.FAILED, "refused")
    await store.release_change(change_id, "replica-a")
    assert [c.id for c in await store.workable_changes(GRACE)] == [change_id]
    assert await store.claim_change(change_id, "replica-b", LEASE) is not None
    await store.release_change(change_id, "replica-b", shown="failed")
    assert await store.workable_changes(GRACE) == []


async def test_approving_records_the_change_and_settling_finishes_the_request(store: Store, clock: FakeClock) -> None:
    request = await store.create_request(
        kind=RequestKind.GRANT,
        right=Right.FULL_ACCESS,
        mailbox="support@contoso.com",
        trustee="bob@contoso.com",
        requested_by="U_ANNA",
        origin_channel="C1",
        expires_at=START + timedelta(hours=4),
        duration=timedelta(minutes=30),
    )
    assert await store.request_change(request.id) is None
    assert await store.decide(request.id, "U_IT", approve=True, now=clock.now())
    change = await store.request_change(request.id)
    assert change is not None and (change.origin, change.approved_by, change.requested_by) == (
        ChangeOrigin.REQUEST,
        "U_IT",
        "U_ANNA",
    )
    revoke = await store.time_limit_of(change.id)
    assert revoke is not None and revoke.due_at == START + timedelta(minutes=30)
    await store.claim_change(change.id, "replica-a", LEASE)
    await store.start_attempt(change.id, "replica-a")
    await store.settle_change(change.id, "replica-a", ChangeState.VERIFIED, "read back")
    assert (await store.get_request(request.id)).status is RequestStatus.DONE


async def test_overdue_revocations_and_escalating_once(store: Store, clock: FakeClock) -> None:
    grant_id = await _record(store, timedelta(minutes=5))
    assert await store.overdue_revocations() == []
    clock.advance(minutes=5)
    overdue = await store.overdue_revocations()
    assert [c.parent_id for c in overdue] == [grant_id]
    assert await store.mark_escalated(overdue[0].id) is True
    assert await store.mark_escalated(overdue[0].id) is False
    assert await store.mark_escalated(overdue[0].id, escalated=False) is True  # telling people failed
    assert await store.mark_escalated(overdue[0].id) is True
