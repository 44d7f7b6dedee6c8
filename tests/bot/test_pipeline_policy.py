"""The pipeline's back-off, give-up and escalation bounds (pure logic)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.pipeline import Policy
from bot.retest import RetestPolicy
from bot.store import ChangeOrigin, ChangeRecord, ChangeState, RequestKind
from plugin.diagnosis import Right
from plugin.settings import ChangeSettings

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
POLICY = Policy(ChangeSettings(retry_first_delay_seconds=15, retry_max_delay_seconds=100, give_up_minutes=60))
GRANT = ChangeRecord(
    id=1, kind=RequestKind.GRANT, origin=ChangeOrigin.DIRECT, right=Right.SEND_AS, mailbox="a@x.com",
    trustee="b@x.com", duration=None, expires_at=None, request_id=None, parent_id=None, requested_by="U1",
    approved_by="U1", state=ChangeState.APPROVED, due_at=NOW, attempts=0, claimed_by=None, lease_until=None,
    shown=None, escalated_at=None, detail=None, created_at=NOW, updated_at=NOW, finished_at=None,
)  # fmt: skip


def test_back_off_doubles_up_to_the_cap() -> None:
    assert [POLICY.delay(n).total_seconds() for n in range(1, 6)] == [15, 30, 60, 100, 100]


def test_a_grant_is_given_up_but_a_time_limit_never() -> None:
    later = NOW + timedelta(minutes=60)
    assert not POLICY.gave_up(GRANT, NOW + timedelta(minutes=59))
    assert POLICY.gave_up(GRANT, later)
    assert not POLICY.gave_up(replace(GRANT, kind=RequestKind.REVOKE, origin=ChangeOrigin.TIME_LIMIT), later)


def test_a_time_limit_is_overdue_after_the_escalation_bound() -> None:
    revoke = replace(GRANT, kind=RequestKind.REVOKE, origin=ChangeOrigin.TIME_LIMIT, expires_at=NOW)
    assert not POLICY.overdue(revoke, NOW + timedelta(minutes=14))
    assert POLICY.overdue(revoke, NOW + timedelta(minutes=15))


def test_an_applied_change_is_read_back_with_back_off() -> None:
    waits = []
    change = replace(GRANT, state=ChangeState.APPLIED, due_at=NOW + timedelta(seconds=15))
    for _ in range(5):
        wait = POLICY.next_read(change)
        waits.append(wait.total_seconds())
        change = replace(change, updated_at=change.due_at, due_at=change.due_at + wait)
    assert waits == [30, 60, 100, 100, 100]
    assert POLICY.next_read(replace(GRANT, state=ChangeState.APPLIED)).total_seconds() == 15  # never below the first


def test_retest_waits_double_within_the_limit() -> None:
    policy = RetestPolicy(first_delay=30, max_delay=120, timeout=15 * 60)
    assert policy.delays() == [30, 60, 120, 120, 120, 120, 120, 120]
    assert [policy.wait_before(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 120]
    assert not policy.last_attempt(7, NOW, NOW + timedelta(minutes=5))
    assert policy.last_attempt(8, NOW, NOW + timedelta(minutes=5))
    assert policy.last_attempt(2, NOW, NOW + timedelta(minutes=15))  # replicas were down: the limit still ends it
