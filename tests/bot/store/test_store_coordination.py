"""Once across replicas: Slack retry keys, scheduled runs, time-bound grant revocations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from bot.store import InvalidStateError, Store, TimedGrantStatus, UnknownRecordError
from bot.store.coordination import REVOCATION_LEASE
from plugin.diagnosis import Right
from tests.bot.store.support import START, FakeClock

MakeStore = Callable[..., Awaitable[Store]]


async def test_a_key_is_claimed_once(store: Store) -> None:
    assert await store.claim_once("T1:/emailtest:trigger-1", START) is True
    assert await store.claim_once("T1:/emailtest:trigger-1", START + timedelta(seconds=1)) is False
    assert await store.claim_once("T1:/emailtest:trigger-2", START) is True


async def test_replicas_claiming_the_same_keys_at_once_get_each_once(make_store: MakeStore) -> None:
    first, second = await make_store(), await make_store()
    keys = [f"retry-{number}" for number in range(20)]
    results = await asyncio.gather(
        *(first.claim_once(key, START) for key in keys),
        *(second.claim_once(key, START) for key in keys),
    )
    for number in range(len(keys)):
        assert sorted((results[number], results[number + len(keys)])) == [False, True]


async def test_old_keys_are_pruned(store: Store) -> None:
    await store.claim_once("old", START)
    await store.claim_once("new", START + timedelta(hours=2))
    assert await store.prune_keys(START + timedelta(hours=1)) == 1
    assert await store.claim_once("old", START + timedelta(hours=3)) is True
    assert await store.claim_once("new", START + timedelta(hours=3)) is False


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_keys_have_a_bounded_length(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        await store.claim_once(key, START)


async def test_a_scheduled_run_happens_once(make_store: MakeStore, clock: FakeClock) -> None:
    first, second = await make_store(), await make_store()
    slot = START.replace(hour=7)
    won = await asyncio.gather(
        first.claim_run("audit", slot, "replica-a"), second.claim_run("audit", slot, "replica-b")
    )
    assert sorted(won) == [False, True]
    owner = "replica-a" if won[0] else "replica-b"
    assert await first.claim_run("audit", slot + timedelta(days=1), "replica-a") is True
    assert await first.claim_run("cleanup", slot, "replica-a") is True

    finished_at = clock.advance(minutes=4)
    finished = await second.finish_run("audit", slot, "412 grants, 3 risky")
    assert (finished.owner, finished.finished_at, finished.result) == (owner, finished_at, "412 grants, 3 risky")
    with pytest.raises(UnknownRecordError):
        await second.finish_run("audit", slot, "again")

    last = await first.last_run("audit")
    assert last is not None
    assert (last.slot, last.owner, last.finished_at) == (slot + timedelta(days=1), "replica-a", None)
    assert await first.last_run("never") is None


async def _grant(store: Store, hours: float = 8) -> int:
    grant = await store.add_timed_grant(
        Right.SEND_AS, "billing@contoso.com", "alice@contoso.com", START + timedelta(hours=hours), 12, "U_IT"
    )
    return grant.id


async def test_a_timed_grant_becomes_due(store: Store) -> None:
    grant_id = await _grant(store)
    await _grant(store, hours=9)
    assert await store.due_timed_grants(START + timedelta(hours=7, minutes=59)) == []
    due = await store.due_timed_grants(START + timedelta(hours=8))
    assert [grant.id for grant in due] == [grant_id]
    grant = due[0]
    assert (grant.right, grant.mailbox, grant.trustee, grant.request_id, grant.granted_by, grant.status) == (
        Right.SEND_AS,
        "billing@contoso.com",
        "alice@contoso.com",
        12,
        "U_IT",
        TimedGrantStatus.ACTIVE,
    )
    assert grant.expires_at == START + timedelta(hours=8)


async def test_one_replica_revokes_a_timed_grant(make_store: MakeStore, clock: FakeClock) -> None:
    first, second = await make_store(), await make_store()
    grant_id = await _grant(first)
    clock.advance(hours=8)
    won = await asyncio.gather(
        first.claim_timed_grant_revocation(grant_id, "replica-a"),
        second.claim_timed_grant_revocation(grant_id, "replica-b"),
    )
    assert sorted(won) == [False, True]
    assert await first.due_timed_grants(clock.now()) == []  # being revoked

    revoked = await second.mark_timed_grant_revoked(grant_id, True, "removed and read back")
    assert (revoked.status, revoked.revoked_at, revoked.detail) == (
        TimedGrantStatus.REVOKED,
        clock.now(),
        "removed and read back",
    )
    assert revoked.claimed_by == ("replica-a" if won[0] else "replica-b")
    assert await first.claim_timed_grant_revocation(grant_id, "replica-a") is False
    with pytest.raises(InvalidStateError, match="revoked, not being revoked"):
        await first.mark_timed_grant_revoked(grant_id, True)


async def test_a_failed_revocation_is_final(store: Store, clock: FakeClock) -> None:
    grant_id = await _grant(store)
    clock.advance(hours=8)
    assert await store.claim_timed_grant_revocation(grant_id, "replica-a")
    failed = await store.mark_timed_grant_revoked(grant_id, False, "Exchange: throttled")
    assert (failed.status, failed.revoked_at, failed.detail) == (TimedGrantStatus.FAILED, None, "Exchange: throttled")
    assert await store.due_timed_grants(clock.now()) == []


async def test_a_revocation_abandoned_by_a_dead_replica_is_due_again(store: Store, clock: FakeClock) -> None:
    grant_id = await _grant(store)
    clock.advance(hours=8)
    assert await store.claim_timed_grant_revocation(grant_id, "replica-a")
    clock.advance(seconds=REVOCATION_LEASE.total_seconds() - 1)
    assert await store.due_timed_grants(clock.now()) == []
    assert await store.claim_timed_grant_revocation(grant_id, "replica-b") is False
    clock.advance(seconds=1)
    assert [grant.id for grant in await store.due_timed_grants(clock.now())] == [grant_id]
    assert await store.claim_timed_grant_revocation(grant_id, "replica-b") is True


async def test_unknown_timed_grants(store: Store) -> None:
    assert await store.claim_timed_grant_revocation(404, "replica-a") is False
    with pytest.raises(UnknownRecordError):
        await store.mark_timed_grant_revoked(404, True)
