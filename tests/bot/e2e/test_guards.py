"""Authorization at the moment of the decision, per-person limits, escaped input on every card, bounded
durations, and Slack delivery ids that do not pile up: against the real bot and the sandbox's Slack."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import text

from bot.store import RequestStatus, UnknownRecordError
from sandbox.slack import ResponsePost, SlackMessage
from tests.bot.e2e.conftest import APPROVALS, AUDIT, HANNAH, HELPDESK, IVAN, World
from tests.bot.e2e.sendas_cards import ask_and_confirm
from tests.bot.e2e.test_approvals import _ephemeral_to
from tests.bot.e2e.test_sendas import _answer
from tests.bot.store.support import Database

GRANT = "grant admin@business.com send-as grace@business.com"


async def test_an_it_member_removed_from_the_group_cannot_approve(world: World) -> None:
    await ask_and_confirm(world.slack, world.workspace, HANNAH, GRANT)
    card = await world.top(APPROVALS, "asks to grant *admin@business.com* Send As")
    await world.command(IVAN, "/mailaudit", "schedule")  # IVAN's membership is now known (and cached for reads)
    await _answer(world, "No scheduled audit")
    group = world.workspace.usergroups["S0ITADMINS"]
    world.workspace.usergroups["S0ITADMINS"] = dataclasses.replace(group, users=())
    await world.slack.click(IVAN, card, "approve_request")
    await _ephemeral_to(world, IVAN, "Only IT admins")
    assert (await world.ctx.store.get_request(1)).status is RequestStatus.PENDING
    assert world.sandbox.tenant.grant_record("SendAs", "grace@business.com", "admin@business.com") is None
    refused = [(e.action, e.actor) for e in await world.ctx.store.audit_entries() if e.result == "refused"]
    assert refused == [("approve.refused", IVAN)]


async def test_sendas_lookups_are_for_it_and_who_reads_a_fresh_audit(world: World) -> None:
    await world.command(HANNAH, "/sendas", "who admin@business.com")
    await world.command(HANNAH, "/sendas", "show sales@business.com")
    await _answer(world, "Only IT admins can look up mailbox rights (/sendas who)")
    await _answer(world, "Only IT admins can look up mailbox rights (/sendas show)")
    assert not any(
        "Rights on" in str(p.payload) or "What admin" in str(p.payload) for p in world.workspace.response_posts()
    )

    await world.command(IVAN, "/mailaudit", "run")
    await world.top(AUDIT, "Mailbox-rights audit")
    await world.settle()
    await world.command(IVAN, "/sendas", "who admin@business.com")
    from_audit = await _answer(world, "(from the audit of")
    assert "Send As on henry@business.com" in str(from_audit.payload)
    world.clock.advance(61 * 60)  # the audit is no longer fresh: Exchange answers
    await world.command(IVAN, "/sendas", "who admin@business.com")

    def live() -> ResponsePost | None:
        return next(
            (
                p
                for p in world.workspace.response_posts()
                if "What admin@business.com can" in str(p.payload) and "from the audit" not in str(p.payload)
            ),
            None,
        )

    assert "Send As on henry@business.com" in str((await world.wait(live)).payload)


async def test_repeated_emailtest_signs_in_once_per_window(world: World) -> None:
    def bob_sign_ins() -> int:
        return sum(1 for s in world.sandbox.smtp.sign_ins if s.login == "bob@business.com")

    for _ in range(3):
        await world.command(HANNAH, "/emailtest", "bob")

    def verdicts() -> list[SlackMessage] | None:
        found = [world.latest(m) for m in world.workspace.messages(HELPDESK)]
        return found if len(found) == 3 and all("passed" in m.text for m in found) else None

    summaries = await world.wait(verdicts)
    await world.settle()
    once = bob_sign_ins()
    assert once >= 1
    labelled = [m for m in summaries if "not a new one" in m.all_text()]
    assert len(labelled) == 2  # the first test is real, the two repeats say they are its result
    world.clock.advance(61)
    await world.command(HANNAH, "/emailtest", "bob")
    await world.wait(lambda: len(world.workspace.messages(HELPDESK)) == 4 or None)
    await world.wait(lambda: bob_sign_ins() == 2 * once or None)
    assert "not a new one" not in world.latest(world.workspace.messages(HELPDESK)[-1]).all_text()


async def test_each_person_has_a_command_budget(world: World) -> None:
    limit = world.settings.limits.emailtest_per_requester_per_minute
    for number in range(limit + 1):
        await world.command(HANNAH, "/emailtest", f"nobody-{number}")
    await _answer(world, f"/emailtest is limited to {limit} per minute for each person")
    await world.settle()
    assert len(world.workspace.messages(HELPDESK, include_ephemeral=False)) == limit  # the one over tested nobody
    await world.command(IVAN, "/emailtest", "nobody-else")  # another person is not affected
    await world.top(HELPDESK, "nobody-else")


def _received(world: World) -> list[str]:
    """Everything the bot sent to Slack, as Slack received it (messages with their blocks, response_url posts)."""
    return [
        *(json.dumps([m.text, m.blocks]) for m in world.workspace.all_messages(include_deleted=True)),
        *(json.dumps(p.payload) for p in world.workspace.response_posts()),
    ]


def _mrkdwn_objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [found for item in node for found in _mrkdwn_objects(item)]
    if isinstance(node, dict):
        own = [node] if node.get("type") == "mrkdwn" else []
        return own + [found for value in node.values() for found in _mrkdwn_objects(value)]
    return []


async def test_typed_text_is_shown_never_obeyed_on_every_card(world: World) -> None:
    lure = "<!channel> payroll is down, re-enter your password at https://evil.example"
    await world.command(HANNAH, "/emailtest", lure)
    parent = await world.top(HELPDESK, "payroll is down")
    await world.reply(parent, "User not found")
    await world.command(HANNAH, "/sendas", "grant <!here> send-as <https://evil.example|alice@business.com>")
    refused = await _answer(world, "must be an email address")
    await world.command(IVAN, "/sendas", "show <!everyone>")
    await world.command(HANNAH, "/sendas", "grant <!channel> admin@business.com alice@business.com")
    await _answer(world, "names no right")
    await world.settle()

    received = _received(world)
    assert not any(token in text for text in received for token in ("<!channel", "<!here", "<!everyone", "<https:"))
    assert "&lt;!channel&gt; payroll is down" in world.latest(parent).text
    assert "&lt;!here&gt;" in str(refused.payload)
    # verbatim: Slack does not turn the bare https://evil.example into a link either
    messages = world.workspace.all_messages(include_deleted=True)
    assert all(obj.get("verbatim") is True for m in messages for obj in _mrkdwn_objects(m.blocks))


async def test_durations_are_bounded(world: World) -> None:
    await world.command(HANNAH, "/sendas", f"{GRANT} for 99999999999999999999d")
    await _answer(world, "is far too long: a time-bound grant lasts between 1 minute and 90d")
    await world.command(HANNAH, "/sendas", f"{GRANT} for 91d")
    await _answer(world, "'91d' is out of range")
    assert not any("Something went wrong" in str(p.payload) for p in world.workspace.response_posts())
    try:
        await world.ctx.store.get_request(1)
        raise AssertionError("a refused duration opened a request")
    except UnknownRecordError:
        pass
    await ask_and_confirm(world.slack, world.workspace, HANNAH, f"{GRANT} for 90d")
    await world.top(APPROVALS, "Send As on *grace@business.com*'s mailbox for 90d")


async def test_delivery_ids_are_forgotten_after_slacks_retry_window(world: World, database: Database) -> None:
    async def rows() -> int:
        async with database.raw.connect() as connection:
            return int((await connection.execute(text("SELECT count(*) FROM idempotency_keys"))).scalar_one())

    for _ in range(3):
        await world.command(IVAN, "/mailaudit", "schedule")
    await world.settle()  # ids are claimed in the store after the acknowledgement
    assert await rows() == 3
    world.clock.advance(2 * 3600)
    delivery = await world.command(IVAN, "/mailaudit", "schedule")
    retry = await world.slack.redeliver(delivery, retry_num=1)  # the newest id is kept: its retry is ignored
    assert retry.status == 200
    await world.settle()
    assert await rows() == 1
    answers = [p for p in world.workspace.response_posts() if "No scheduled audit" in str(p.payload)]
    assert len(answers) == 4
