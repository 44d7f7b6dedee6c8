"""Who may decide, and what a refusal, a denial or an expiry leaves behind (nothing granted)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.scheduler import Scheduler
from bot.store import RequestStatus
from sandbox.slack import SlackMessage
from tests.bot.e2e.conftest import APPROVALS, HANNAH, HELPDESK, IVAN, World

SEND_AS = ("SendAs", "alice@business.com", "admin@business.com")


async def _request_fix(world: World, requester: str) -> tuple[SlackMessage, SlackMessage]:
    await world.command(requester, "/emailtest", "alice")
    parent = await world.top(HELPDESK, "Testing outgoing email for *alice*")
    report = await world.reply(parent, "Request fix")
    await world.slack.click(requester, report, "request_fix")
    card = await world.top(APPROVALS, "asks to grant *admin@business.com* Send As")
    await world.reply(parent, "waiting for IT approval")  # posted once the card is recorded with its request
    return parent, card


async def _ephemeral_to(world: World, user: str, needle: str) -> SlackMessage:
    def find() -> SlackMessage | None:
        return next((m for m in world.workspace.ephemeral_messages(user) if needle in m.all_text()), None)

    message: SlackMessage = await world.wait(find)
    return message


async def test_non_it_user_cannot_approve(world: World) -> None:
    _, card = await _request_fix(world, IVAN)
    await world.slack.click(HANNAH, card, "approve_request")
    await _ephemeral_to(world, HANNAH, "Only IT admins")
    pending = await world.ctx.store.get_request(1)
    assert pending.status is RequestStatus.PENDING
    assert world.sandbox.tenant.grant_record(*SEND_AS) is None
    assert world.latest(card).action_ids() == ["approve_request", "deny_request"]
    refused = [e for e in await world.ctx.store.audit_entries() if e.action == "approve.refused"]
    assert [(e.actor, e.result) for e in refused] == [(HANNAH, "refused")]


async def test_requester_cannot_approve_their_own_request(world: World) -> None:
    _, card = await _request_fix(world, IVAN)
    await world.slack.click(IVAN, card, "approve_request")
    await _ephemeral_to(world, IVAN, "someone else in IT has to approve it")
    assert (await world.ctx.store.get_request(1)).status is RequestStatus.PENDING
    assert world.sandbox.tenant.grant_record(*SEND_AS) is None


async def test_deny(world: World) -> None:
    parent, card = await _request_fix(world, HANNAH)
    await world.slack.click(IVAN, card, "deny_request")
    await world.wait(lambda: "Denied by" in world.latest(card).all_text())
    await world.reply(parent, "denied the request")
    assert world.latest(card).action_ids() == []
    assert (await world.ctx.store.get_request(1)).status is RequestStatus.DENIED
    assert world.sandbox.tenant.grant_record(*SEND_AS) is None


async def test_expired_request_cannot_be_approved(world: World) -> None:
    _, card = await _request_fix(world, HANNAH)
    world.clock.advance(timedelta(hours=5).total_seconds())  # the TTL is 4 hours
    await Scheduler(world.ctx, started_at=world.clock.now()).tick()
    await world.wait(lambda: "Expired without a decision" in world.latest(card).all_text())
    assert (await world.ctx.store.get_request(1)).status is RequestStatus.EXPIRED
    assert world.latest(card).action_ids() == []  # the buttons are gone
    assert world.sandbox.tenant.grant_record(*SEND_AS) is None


async def test_expired_request_clicked_before_the_sweep(world: World) -> None:
    _, card = await _request_fix(world, HANNAH)
    world.clock.advance(timedelta(hours=5).total_seconds())
    await world.slack.click(IVAN, card, "approve_request")
    await _ephemeral_to(world, IVAN, "This request expired")
    assert world.sandbox.tenant.grant_record(*SEND_AS) is None


async def test_double_click_on_approve_grants_once(world: World) -> None:
    """Two Approve deliveries at the same moment (a double click): exactly one decision and one grant."""
    _, card = await _request_fix(world, HANNAH)
    first, second = await asyncio.gather(
        world.slack.click(IVAN, card, "approve_request"), world.slack.click(IVAN, card, "approve_request")
    )
    assert first.status == second.status == 200
    await world.wait(lambda: "read back from Exchange" in world.latest(card).all_text())
    await _ephemeral_to(world, IVAN, "already approved")
    await world.settle()
    grants = [e for e in await world.ctx.store.audit_entries(limit=100) if e.action == "grant"]
    assert len(grants) == 1
