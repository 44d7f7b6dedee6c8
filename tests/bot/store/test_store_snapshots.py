"""Audit snapshots: latest and previous, round trip, a 50,000-row tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.store import Store
from tests.bot.store.support import START


def _row(number: int) -> dict[str, object]:
    return {
        "mailbox": f"shared{number // 5}@contoso.com",
        "trustee": f"user{number}@contoso.com",
        "right": ("SendAs", "SendOnBehalf", "FullAccess")[number % 3],
        "inherited": False,
        "risky": number % 97 == 0,
        "display_name": f"Ünïcode Üser {number}",
    }


async def test_no_snapshot_yet(store: Store) -> None:
    assert await store.latest_snapshot() is None
    assert await store.previous_snapshot() is None


async def test_latest_and_previous(store: Store) -> None:
    first = await store.save_snapshot(START, {"grants": 2}, [_row(1), _row(2)])
    assert await store.previous_snapshot() is None
    second = await store.save_snapshot(START + timedelta(days=1), {"grants": 1, "changes": {"removed": 1}}, [_row(1)])
    latest, previous = await store.latest_snapshot(), await store.previous_snapshot()
    assert latest is not None
    assert previous is not None
    assert (latest.id, latest.taken_at, latest.summary, latest.rows) == (
        second,
        START + timedelta(days=1),
        {"grants": 1, "changes": {"removed": 1}},
        (_row(1),),
    )
    assert (previous.id, previous.taken_at, previous.rows) == (first, START, (_row(1), _row(2)))


async def test_an_empty_audit_is_a_snapshot(store: Store) -> None:
    await store.save_snapshot(START, {}, iter([]))
    latest = await store.latest_snapshot()
    assert latest is not None
    assert latest.rows == ()


async def test_fifty_thousand_rows_round_trip(store: Store) -> None:
    rows = (_row(number) for number in range(50_000))
    await store.save_snapshot(START, {"grants": 50_000}, rows)
    latest = await store.latest_snapshot()
    assert latest is not None
    assert len(latest.rows) == 50_000
    assert latest.rows[0] == _row(0)
    assert latest.rows[-1] == _row(49_999)


async def test_snapshots_hold_json_only(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.save_snapshot(START, {"taken": START}, [])
    with pytest.raises(TypeError):
        await store.save_snapshot(START, {}, [{"taken": START}])
    assert await store.latest_snapshot() is None
