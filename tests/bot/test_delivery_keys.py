"""Recognising a retried Slack delivery in memory, before the acknowledgement (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.delivery import RecentDeliveries, delivery_key

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_key_is_new_once_within_its_lifetime() -> None:
    recent = RecentDeliveries(ttl=timedelta(hours=1))
    assert recent.first_here("slack:t1", START)
    assert not recent.first_here("slack:t1", START + timedelta(minutes=5))
    assert recent.first_here("slack:t2", START)
    assert recent.first_here("slack:t1", START + timedelta(hours=2))  # forgotten after an hour
    assert len(recent) == 1


def test_memory_is_bounded() -> None:
    recent = RecentDeliveries(ttl=timedelta(hours=1), max_keys=3)
    for number in range(10):
        assert recent.first_here(f"slack:{number}", START)
    assert len(recent) == 3
    assert not recent.first_here("slack:9", START)


def test_keys_of_commands_and_buttons() -> None:
    assert delivery_key({"trigger_id": "123.abc"}) == "slack:123.abc"
    click = {"user": {"id": "U1"}, "actions": [{"action_ts": "1700000000.1"}]}
    assert delivery_key(click) == "slack:U1:1700000000.1"
    assert delivery_key({"type": "event_callback"}) is None
