"""Once across replicas: Slack retry keys and scheduled runs (changes: test_store_changes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from bot.store import Store, UnknownRecordError
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


async def test_keys_are_claimed_together_once(make_store: MakeStore) -> None:
    first, second = await make_store(), await make_store()
    assert await first.claim_many(["a", "b"], START) == {"a", "b"}
    assert await second.claim_many(["b", "c", "c"], START) == {"c"}
    assert await first.claim_once("c", START) is False
    assert await first.claim_many([], START) == set()
