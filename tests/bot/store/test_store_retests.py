"""Re-tests as rows: written with the verified grant a failed test asked for, claimed by one replica at a time,
taken over when a lease lapses, the outcome audited once and the report's post claimed once. And a change's
Slack view that keeps failing backs off instead of coming back on every tick."""

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
    RetestOutcome,
    RetestState,
    Store,
)
from plugin.diagnosis import Right
from tests.bot.store.support import START, FakeClock

MakeStore = Callable[..., Awaitable[Store]]
LEASE = timedelta(seconds=60)
GRACE = timedelta(seconds=60)


async def _verified_fix(store: Store, *, test_user: str | None = "alice") -> int:
    """A request from a failed test of ``test_user``, approved, its grant verified: returns the change's id."""
    request = await store.create_request(
        kind=RequestKind.GRANT,
        right=Right.SEND_AS,
        mailbox="alice@contoso.com",
        trustee="admin@contoso.com",
        requested_by="U_HANNAH",
        origin_channel="C_HELP",
        origin_thread_ts="1767603600.000100",
        origin_test_user=test_user,
        expires_at=START + timedelta(hours=4),
    )
    assert await store.decide(request.id, "U_IT", approve=True, now=START)
    change = await store.request_change(request.id)
    assert change is not None
    await store.claim_change(change.id, "replica-a", LEASE)
    await store.start_attempt(change.id, "replica-a")
    await store.settle_change(change.id, "replica-a", ChangeState.VERIFIED, "read back")
    await store.release_change(change.id, "replica-a", shown="verified")
    return change.id


async def test_a_verified_fix_gets_its_retest_in_the_same_transaction(store: Store) -> None:
    change_id = await _verified_fix(store)
    retest = await store.retest_of_change(change_id)
    assert retest is not None
    assert (retest.state, retest.test_user, retest.channel, retest.thread_ts, retest.attempts, retest.due_at) == (
        RetestState.TESTING,
        "alice",
        "C_HELP",
        "1767603600.000100",
        0,
        START,
    )
    assert await store.retest_of_change(await _verified_fix(store, test_user=None)) is None  # asked with /sendas
    direct = await store.record_change(
        kind=RequestKind.GRANT,
        origin=ChangeOrigin.DIRECT,
        right=Right.SEND_AS,
        mailbox="b@contoso.com",
        trustee="c@contoso.com",
        requested_by="U_IT",
        approved_by="U_IT",
    )
    await store.claim_change(direct.id, "replica-a", LEASE)
    await store.start_attempt(direct.id, "replica-a")
    await store.settle_change(direct.id, "replica-a", ChangeState.VERIFIED, "read back")
    assert await store.retest_of_change(direct.id) is None


async def test_one_replica_runs_a_retest_and_another_takes_over_when_its_lease_lapses(
    make_store: MakeStore, clock: FakeClock
) -> None:
    first, second = await make_store(), await make_store()
    retest = await first.retest_of_change(await _verified_fix(first))
    assert retest is not None
    assert await first.workable_retests(GRACE) == []  # left to the replica that verified it, at first
    won = await asyncio.gather(
        first.claim_retest(retest.id, "replica-a", LEASE), second.claim_retest(retest.id, "replica-b", LEASE)
    )
    assert sorted(r is not None for r in won) == [False, True]
    holder, other = ("replica-a", "replica-b") if won[0] is not None else ("replica-b", "replica-a")
    await first.retest_started(retest.id, holder, "1767603601.000200", START + timedelta(seconds=30))
    clock.advance(seconds=61)  # the holder died: its lease lapsed
    assert [r.id for r in await second.workable_retests(GRACE)] == [retest.id]
    taken = await second.claim_retest(retest.id, other, LEASE)
    assert taken is not None and taken.progress_ts == "1767603601.000200"
    with pytest.raises(InvalidStateError, match="another replica took it over"):
        await first.retest_attempted(retest.id, holder, 1, clock.now())
    attempted = await second.retest_attempted(retest.id, other, 1, clock.now() + timedelta(seconds=60))
    assert attempted.attempts == 1
    await second.release_retest(retest.id, other)
    assert await second.workable_retests(GRACE) == []  # the next attempt is not due yet


async def test_the_outcome_is_audited_once_and_the_report_posted_once(store: Store, clock: FakeClock) -> None:
    retest = await store.retest_of_change(await _verified_fix(store))
    assert retest is not None
    await store.claim_retest(retest.id, "replica-a", LEASE)
    await store.retest_started(retest.id, "replica-a", "1767603601.000200", clock.now())
    finished = await store.finish_retest(
        retest.id, "replica-a", attempts=2, outcome=RetestOutcome.PASSED, text="passes now", report='["r", []]'
    )
    assert (finished.state, finished.outcome, finished.posted_at) == (
        RetestState.POSTING,
        RetestOutcome.PASSED,
        clock.now(),
    )
    with pytest.raises(InvalidStateError, match="already posting"):  # a second outcome is refused
        await store.finish_retest(
            retest.id, "replica-a", attempts=3, outcome=RetestOutcome.PASSED, text="again", report=None
        )
    assert not await store.claim_retest_post(retest.id, "replica-a")  # claimed with the outcome
    # Slack refused the report: its claim is given back, and taken once.
    failed = await store.retest_slack_failed(
        retest.id, "replica-a", clock.now() + timedelta(seconds=30), report_unposted=True
    )
    assert (failed.posted_at, failed.slack_failures) == (None, 1)
    assert await store.claim_retest_post(retest.id, "replica-a")
    assert not await store.claim_retest_post(retest.id, "replica-a")
    closed = await store.close_retest(retest.id, "replica-a")
    assert closed.state is RetestState.DONE and closed.finished_at == clock.now()
    await store.release_retest(retest.id, "replica-a")
    clock.advance(hours=1)
    assert await store.workable_retests(GRACE) == []
    entries = [e for e in await store.audit_entries() if e.action == "retest"]
    assert [(e.actor, e.result, e.subject, e.detail) for e in entries] == [
        ("emaildoctor", "ok", {"user": "alice"}, "passes now")
    ]
    assert (await store.verify_audit_chain()).ok


async def test_a_change_slack_refuses_to_show_backs_off(store: Store, clock: FakeClock) -> None:
    change = await store.record_change(
        kind=RequestKind.GRANT,
        origin=ChangeOrigin.DIRECT,
        right=Right.SEND_AS,
        mailbox="b@contoso.com",
        trustee="c@contoso.com",
        requested_by="U_IT",
        approved_by="U_IT",
    )
    await store.claim_change(change.id, "replica-a", LEASE)
    await store.start_attempt(change.id, "replica-a")
    await store.settle_change(change.id, "replica-a", ChangeState.FAILED, "refused")
    await store.release_change(change.id, "replica-a", show_again_at=clock.now() + timedelta(seconds=30))
    assert await store.workable_changes(GRACE) == []  # not on the next tick
    clock.advance(seconds=30)
    assert [c.id for c in await store.workable_changes(GRACE)] == [change.id]
    await store.claim_change(change.id, "replica-b", LEASE)
    await store.release_change(change.id, "replica-b", show_again_at=clock.now() + timedelta(seconds=60))
    again = await store.get_change(change.id)
    assert (again.show_failures, again.show_after) == (2, clock.now() + timedelta(seconds=60))
    clock.advance(seconds=60)
    await store.claim_change(change.id, "replica-a", LEASE)
    await store.release_change(change.id, "replica-a", shown="failed")
    shown = await store.get_change(change.id)
    assert (shown.shown, shown.show_failures, shown.show_after) == ("failed", 0, None)
    assert await store.workable_changes(GRACE) == []
