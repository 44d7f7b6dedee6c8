"""How Slack's requests are received: signatures, replay windows, retries, and the 3-second acknowledgement."""

from __future__ import annotations

import asyncio

from tests.bot.e2e.conftest import HANNAH, HELPDESK, IVAN, World


async def test_invalid_signature_is_rejected_and_does_nothing(world: World) -> None:
    delivery = await world.slack.slash_command(HANNAH, "/emailtest", "alice", HELPDESK, wrong_signature=True)
    assert delivery.status == 401
    await asyncio.sleep(0.3)
    assert world.workspace.messages(HELPDESK) == []
    assert await world.ctx.store.audit_entries() == []


async def test_timestamp_older_than_five_minutes_is_rejected(world: World) -> None:
    delivery = await world.slack.slash_command(HANNAH, "/emailtest", "alice", HELPDESK, timestamp_age_s=6 * 60)
    assert delivery.status == 401
    await asyncio.sleep(0.3)
    assert world.workspace.messages(HELPDESK) == []


async def test_a_retried_delivery_does_nothing_twice(world: World) -> None:
    first = await world.command(HANNAH, "/emailtest", "bob")
    retry = await world.slack.redeliver(first, retry_num=1)
    again = await world.slack.redeliver(first, retry_num=2, retry_reason="http_error")
    assert retry.status == again.status == 200
    parent = await world.top(HELPDESK, "Testing outgoing email for *bob*")
    await world.wait(lambda: "passed" in world.latest(parent).text)
    await world.settle()
    await asyncio.sleep(0.3)
    assert len(world.workspace.messages(HELPDESK)) == 1
    assert len(world.workspace.replies(HELPDESK, parent.ts)) == 2  # the report and its transcript, once


async def test_acknowledged_within_3_seconds_while_graph_is_slow(world: World) -> None:
    world.sandbox.faults.set("graph", latency_ms=5000)
    delivery = await world.command(HANNAH, "/emailtest", "alice")
    assert delivery.acked_in_time
    assert delivery.elapsed_s < 3.0
    parent = await world.top(HELPDESK, "Testing outgoing email for *alice*")
    await world.wait(lambda: "Send As denied" in world.latest(parent).text, within=60)


async def test_several_tests_at_once_do_not_block_each_other(world: World) -> None:
    world.sandbox.faults.set("graph", latency_ms=1500)
    deliveries = await asyncio.gather(
        world.command(HANNAH, "/emailtest", "alice"),
        world.command(IVAN, "/emailtest", "bob"),
        world.command(HANNAH, "/emailtest", "henry"),
    )
    assert all(d.acked_in_time for d in deliveries)
    for name, verdict in (("alice", "Send As denied"), ("bob", "passed"), ("henry", "passed")):
        parent = await world.top(HELPDESK, f"Testing outgoing email for *{name}*")
        await world.wait(lambda p=parent, v=verdict: v in world.latest(p).text, within=30)


async def test_mention_is_resolved_through_users_info(world: World) -> None:
    await world.command(HANNAH, "/emailtest", "<@U0ALICE|alice>")
    parent = await world.top(HELPDESK, "Testing outgoing email for *alice@business.com*")
    await world.wait(lambda: "Send As denied" in world.latest(parent).text)
    assert [c.args.get("user") for c in world.workspace.calls("users.info")] == ["U0ALICE"]


async def test_bad_input_gets_a_clear_private_answer(world: World) -> None:
    await world.command(HANNAH, "/emailtest", "")
    await world.command(HANNAH, "/emailtest", "nobody-like-this")

    def answers() -> list[str]:
        return [str(post.payload.get("text", "")) for post in world.workspace.response_posts()]

    await world.wait(lambda: any("say whom to test" in text for text in answers()))
    parent = await world.top(HELPDESK, "nobody-like-this")
    report = await world.reply(parent, "User not found")
    assert "no employee 'nobody-like-this'" in report.all_text()
    assert not any("Traceback" in text for text in answers())
