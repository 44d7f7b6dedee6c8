"""`/sendas show|who|grant|revoke`, time-bound grants revoked on time, and grants that never run unlogged."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.scheduler import Scheduler
from bot.store import RequestStatus
from bot.store.engine import async_url
from sandbox.slack import ResponsePost
from tests.bot.e2e.conftest import APPROVALS, HANNAH, IVAN, World
from tests.bot.e2e.sendas_cards import ask_and_confirm


async def _answer(world: World, needle: str) -> ResponsePost:
    def find() -> ResponsePost | None:
        return next((p for p in world.workspace.response_posts() if needle in str(p.payload)), None)

    post: ResponsePost = await world.wait(find)
    return post


async def _confirmed(world: World, user: str, text_: str) -> None:
    await ask_and_confirm(world.slack, world.workspace, user, text_)


async def test_show_lists_holders_without_self_and_marks_kinds(world: World) -> None:
    await world.command(IVAN, "/sendas", "show sales@business.com")
    post = await _answer(world, "Rights on sales@business.com")
    shown = str(post.payload)
    assert "admin@business.com" in shown and "S-1-5-21-3623811015-3361044348-30300820-1013 (deleted account)" in shown
    assert "NT AUTHORITY\\\\SELF" not in shown and "NT AUTHORITY\\SELF" not in shown
    assert post.payload.get("response_type") == "ephemeral"


async def test_who_is_a_reverse_lookup(world: World) -> None:
    await world.command(IVAN, "/sendas", "who admin@business.com")
    post = await _answer(world, "What admin@business.com can send as")
    shown = str(post.payload)
    assert "Send As on henry@business.com" in shown and "Send on Behalf on frank@business.com" in shown
    assert "alice@business.com" not in shown


async def test_it_grants_and_revokes_directly(world: World) -> None:
    record = ("SendAs", "grace@business.com", "admin@business.com")
    await _confirmed(world, IVAN, "grant admin@business.com send-as grace@business.com")
    await _answer(world, "(read back from Exchange)")
    assert world.sandbox.tenant.grant_record(*record) is not None
    await _confirmed(world, IVAN, "grant admin@business.com send-as grace@business.com")
    await _answer(world, "already so, nothing changed")
    await _confirmed(world, IVAN, "revoke admin@business.com send-as grace@business.com")
    # The outcome is written with the change's final state: wait for that, not for Exchange's side of it.
    assert await world.outcomes("revoke") == [("ok", IVAN, IVAN)]
    assert world.sandbox.tenant.grant_record(*record) is None
    assert await world.outcomes("grant", 2) == [("ok", IVAN, IVAN)] * 2


async def test_others_get_an_approval_request(world: World) -> None:
    await _confirmed(world, HANNAH, "grant admin@business.com send-on-behalf grace@business.com")
    await _answer(world, "went to IT for approval")
    card = await world.top(APPROVALS, "asks to grant *admin@business.com* Send on Behalf on *grace@business.com*")
    assert card.action_ids() == ["approve_request", "deny_request"]
    assert world.sandbox.tenant.grant_record("SendOnBehalf", "grace@business.com", "admin@business.com") is None


async def test_time_bound_grant_is_revoked_when_it_expires(world: World) -> None:
    record = ("FullAccess", "support@business.com", "bob@business.com")
    await _confirmed(world, IVAN, "grant bob@business.com full-access support@business.com for 8h")
    await _answer(world, "revoked automatically after 8h")
    assert world.sandbox.tenant.grant_record(*record) is not None
    scheduler = Scheduler(world.ctx, started_at=world.clock.now())
    world.clock.advance(timedelta(hours=7).total_seconds())
    await scheduler.tick()
    assert world.sandbox.tenant.grant_record(*record) is not None  # not yet
    world.clock.advance(timedelta(hours=1, minutes=1).total_seconds())
    await scheduler.tick()
    assert world.sandbox.tenant.grant_record(*record) is None
    notice = await world.top(APPROVALS, "The time limit ran out")
    assert "bob@business.com's Full Access on support@business.com was removed" in notice.text
    revoked = [e for e in await world.ctx.store.audit_entries(limit=50) if e.action == "revoke"]
    assert [(e.actor, e.result) for e in revoked] == [("emaildoctor (time limit)", "ok")]


async def test_a_time_limit_leaves_a_right_that_was_held_before_the_grant(world: World) -> None:
    """admin@ holds Send As on sales@ permanently: granting it for 8h adds nothing, so 8h later nothing is removed."""
    record = ("SendAs", "sales@business.com", "admin@business.com")
    assert world.sandbox.tenant.grant_record(*record) is not None
    await _confirmed(world, IVAN, "grant admin@business.com send-as sales@business.com for 8h")
    await _answer(world, "already so, nothing changed")
    scheduler = Scheduler(world.ctx, started_at=world.clock.now())
    world.clock.advance(timedelta(hours=8, minutes=1).total_seconds())
    await scheduler.tick()
    notice = await world.top(APPROVALS, "The time limit ran out")
    assert "admin@business.com's Send As on sales@business.com stays" in notice.text
    assert world.sandbox.tenant.grant_record(*record) is not None
    revoked = [e for e in await world.ctx.store.audit_entries(limit=50) if e.action == "revoke"]
    assert [(e.actor, e.result) for e in revoked] == [("emaildoctor (time limit)", "ok")]
    assert "held before the grant" in (revoked[0].detail or "")


async def test_a_failed_revocation_is_retried_escalated_and_listed_in_mailaudit(world: World) -> None:
    record = ("FullAccess", "support@business.com", "bob@business.com")
    await _confirmed(world, IVAN, "grant bob@business.com full-access support@business.com for 1h")
    await _answer(world, "revoked automatically after 1h")
    scheduler = Scheduler(world.ctx, started_at=world.clock.now())
    world.sandbox.faults.set("exchange", error_rate=1.0, retry_after_s=0)  # Exchange is down when it runs out
    world.clock.advance(timedelta(hours=1, minutes=16).total_seconds())  # past the 15-minute escalation bound
    await scheduler.tick()
    assert world.sandbox.tenant.grant_record(*record) is not None
    notice = await world.top(APPROVALS, "removing it has failed 1 times")
    assert "bob@business.com's Full Access on support@business.com" in notice.text
    await world.command(IVAN, "/mailaudit", "last")
    listed = await _answer(world, "Changes not finished yet")
    assert "time limit of bob@business.com's Full Access on support@business.com ran out" in str(listed.payload)

    world.sandbox.faults.reset("exchange")
    await scheduler.tick()  # the retry is not due yet: nothing happens
    assert world.sandbox.tenant.grant_record(*record) is not None
    world.clock.advance(60)
    await scheduler.tick()
    assert world.sandbox.tenant.grant_record(*record) is None
    assert await world.outcomes("revoke") == [("ok", "emaildoctor (time limit)", IVAN)]
    await world.top(APPROVALS, "The time limit ran out")


async def test_bad_arguments_change_nothing(world: World) -> None:
    before = sorted(str(g) for g in world.sandbox.tenant.rights.records())
    for text_ in (
        "grant Everything admin@business.com alice@business.com",
        "grant admin@business.com send-as",
        "grant x@business.com send-as y@business.com for ages",
        "grant admin send-as nobody-at-all",
        "frobnicate",
    ):
        await world.command(IVAN, "/sendas", text_)
    await _answer(world, "names no right")
    await _answer(world, "is ambiguous: with the right last")
    await _answer(world, "is not a duration")
    await _answer(world, "Exchange knows no mailbox or user 'nobody-at-all'")
    await _answer(world, "Usage:")
    await world.settle()
    assert sorted(str(g) for g in world.sandbox.tenant.rights.records()) == before
    assert [e for e in await world.ctx.store.audit_entries() if e.action in ("grant", "grant.started")] == []


async def test_no_grant_runs_when_the_audit_log_cannot_be_written(world: World) -> None:
    engine = create_async_engine(async_url(world.settings.store.url))
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE audit_log"))
    await engine.dispose()
    await _confirmed(world, IVAN, "grant admin@business.com send-as alice@business.com")
    await world.wait(
        lambda: any("Store" in str(p.payload) or "store" in str(p.payload) for p in world.workspace.response_posts())
    )
    await world.settle()
    assert world.sandbox.tenant.grant_record("SendAs", "alice@business.com", "admin@business.com") is None


async def test_an_approved_change_that_cannot_run_is_marked_failed(world: World) -> None:
    await _confirmed(world, HANNAH, "grant admin@business.com send-as nobody@business.com")
    card = await world.top(APPROVALS, "nobody@business.com")
    await world.slack.click(IVAN, card, "approve_request")
    await world.wait(lambda: "the change did not run" in world.latest(card).all_text())
    await world.settle()
    request = await world.ctx.store.get_request(1)
    assert request.status is RequestStatus.FAILED
    outcomes = [(e.action, e.result) for e in await world.ctx.store.audit_entries(limit=20)]
    assert ("grant.started", "started") in outcomes and ("grant", "failed") in outcomes
