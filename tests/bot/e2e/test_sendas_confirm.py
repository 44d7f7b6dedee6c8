"""A chat grant cannot go the wrong way: the old order is refused, every grant or revoke first shows a card that
names its effect (and flags admin accounts and admin mailboxes), Confirm does exactly that, Cancel nothing, and a
card works once, for its author, for 15 minutes. Against the real bot, the sandbox's Slack and Exchange."""

from __future__ import annotations

import asyncio

from sandbox.slack import SlackMessage
from tests.bot.e2e.conftest import APPROVALS, HANNAH, IVAN, World
from tests.bot.e2e.sendas_cards import CANCEL, CONFIRM, ask
from tests.bot.e2e.test_sendas import _answer

ADMIN, ALICE = "admin@business.com", "alice@business.com"


def _rights(world: World) -> list[str]:
    return sorted(str(g) for g in world.sandbox.tenant.rights.records())


async def _card(world: World, user: str, text: str) -> SlackMessage:
    return await ask(world.slack, world.workspace, user, text)


async def test_the_old_mailbox_first_order_is_refused_with_an_example(world: World) -> None:
    before = _rights(world)
    await world.command(IVAN, "/sendas", f"grant SendAs {ALICE} {ADMIN}")
    refusal = str((await _answer(world, "is ambiguous")).payload)
    assert "does not say who gets the right on whose mailbox" in refusal
    assert f"/sendas grant {ADMIN} send-as {ALICE}" in refusal  # the example
    await world.settle()
    assert not any(CONFIRM in m.action_ids() for m in world.workspace.all_messages(include_deleted=True))
    assert _rights(world) == before
    assert world.sandbox.tenant.grant_record("SendAs", ADMIN, ALICE) is None
    assert world.sandbox.tenant.grant_record("SendAs", ALICE, ADMIN) is None


async def test_mailbox_first_sentence_shows_its_real_effect_flags_the_admin_mailbox_and_cancel_changes_nothing(
    world: World,
) -> None:
    """Someone used to -Identity first types alice@ first: the card says alice@ would send as admin@, and flags it."""
    before = _rights(world)
    card = await _card(world, IVAN, f"grant {ALICE} send-as {ADMIN}")
    shown = card.all_text()
    assert f"{ALICE} will be able to send as {ADMIN}" in shown
    assert f"{ADMIN} is an admin's mailbox" in shown
    assert card.action_ids() == [CONFIRM, CANCEL]
    await world.settle()
    assert _rights(world) == before  # nothing happens before a Confirm

    await world.slack.click(IVAN, card, CANCEL)
    await world.wait(lambda: "Cancelled: nothing changed" in world.latest(card).all_text())
    assert world.latest(card).action_ids() == []  # the buttons are gone
    await world.settle()
    assert _rights(world) == before
    log = [(e.action, e.result) for e in await world.ctx.store.audit_entries()]
    assert ("grant.cancelled", "ok") in log and not any(action in ("grant", "grant.started") for action, _ in log)


async def test_confirm_grants_exactly_what_the_card_said_once(world: World) -> None:
    before = _rights(world)
    card = await _card(world, IVAN, f"grant {ADMIN} send-as {ALICE}")
    assert f"{ADMIN} will be able to send as {ALICE}" in card.all_text()
    assert f"{ADMIN} is a privileged account" in card.all_text()  # a grant *to* an admin account is flagged
    first, second = await asyncio.gather(
        world.slack.click(IVAN, card, CONFIRM), world.slack.click(IVAN, card, CONFIRM)
    )  # a double click
    assert first.status == second.status == 200
    await _answer(world, "(read back from Exchange)")
    await world.wait(lambda: "The outcome is in the channel" in world.latest(card).all_text())
    await world.settle()
    granted = world.sandbox.tenant.grant_record("SendAs", ALICE, ADMIN)
    assert granted is not None
    after = _rights(world)
    assert sorted(set(after) - set(before)) == [str(granted)]  # exactly that right, and nothing else
    assert set(before) <= set(after)
    assert await world.outcomes("grant") == [("ok", IVAN, IVAN)]
    assert len([e for e in await world.ctx.store.audit_entries(limit=100) if e.action == "grant"]) == 1


async def test_revoke_and_full_access_cards_say_what_goes(world: World) -> None:
    card = await _card(world, IVAN, f"revoke {ADMIN} full-access grace@business.com")
    assert f"{ADMIN} will no longer be able to open grace@business.com's mailbox" in card.all_text()
    await world.slack.click(IVAN, card, CONFIRM)
    assert await world.outcomes("revoke") == [("ok", IVAN, IVAN)]
    assert world.sandbox.tenant.grant_record("FullAccess", "grace@business.com", ADMIN) is None
    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"  # a deleted account's leftover
    orphan = await _card(world, IVAN, f"revoke {sid} send-as sales@business.com")
    assert f"{sid} will no longer be able to send as sales@business.com" in orphan.all_text()
    assert "knows no recipient" not in orphan.all_text()
    timed = await _card(
        world, IVAN, "grant trustee=bob@business.com right=full-access mailbox=support@business.com for=8h"
    )
    assert "bob@business.com will be able to open support@business.com's mailbox until " in timed.all_text()
    assert "(8h, then revoked automatically)" in timed.all_text()


async def test_a_card_expires(world: World) -> None:
    card = await _card(world, HANNAH, "grant bob@business.com send-on-behalf grace@business.com")
    assert "Confirm sends it to IT for approval" in card.all_text()
    world.clock.advance(16 * 60)
    await world.slack.click(HANNAH, card, CONFIRM)
    await world.wait(lambda: "This card expired" in world.latest(card).all_text())
    await world.settle()
    assert not world.workspace.messages(APPROVALS)
    assert world.sandbox.tenant.grant_record("SendOnBehalf", "grace@business.com", "bob@business.com") is None


async def test_others_confirm_into_an_approval_request(world: World) -> None:
    card = await _card(world, HANNAH, "grant oscar@business.com send-as grace@business.com")
    assert "oscar@business.com's account is disabled" in card.all_text()  # a grant to a disabled account
    await world.slack.click(HANNAH, card, CONFIRM)
    await world.wait(lambda: "went to IT for approval" in world.latest(card).all_text())
    approval = await world.top(APPROVALS, "asks to grant *oscar@business.com* Send As on *grace@business.com*")
    assert "*Effect:* oscar@business.com will be able to send as grace@business.com" in approval.all_text()
    assert "oscar@business.com's account is disabled" in approval.all_text()  # IT sees the warning too
    assert world.sandbox.tenant.grant_record("SendAs", "grace@business.com", "oscar@business.com") is None
