"""SlackClient against a real slack-bolt AsyncApp: signed slash commands, clicks and submissions are
accepted, respond() lands in the workspace, and forged or stale requests are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond, AsyncSay
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.http import RunningSite, serve
from sandbox.slack import SlackClient, SlackMessage

from .support import SlackSandbox

HELPDESK = "C0HELPDESK"


@dataclass
class BotUnderTest:
    site: RunningSite | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        assert self.site is not None
        return self.site.url


def report_blocks(user: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{user}*: Send As denied"}},
        {
            "type": "actions",
            "block_id": "fix",
            "elements": [
                {
                    "type": "button",
                    "action_id": "request_fix",
                    "text": {"type": "plain_text", "text": "Request fix"},
                    "value": f"SendAs|{user}",
                },
                {
                    "type": "static_select",
                    "action_id": "duration",
                    "placeholder": {"type": "plain_text", "text": "For how long"},
                    "options": [
                        {"text": {"type": "plain_text", "text": "8 hours"}, "value": "8h"},
                        {"text": {"type": "plain_text", "text": "Forever"}, "value": "forever"},
                    ],
                },
            ],
        },
    ]


def build_bolt_app(slack: SlackSandbox, bot: BotUnderTest) -> AsyncApp:
    app = AsyncApp(signing_secret=slack.workspace.signing_secret, client=slack.web_client())

    @app.command("/emailtest")
    async def emailtest(ack: AsyncAck, command: dict[str, Any], say: AsyncSay, request: AsyncBoltRequest) -> None:
        bot.seen.append(command)
        bot.headers.append({k: v[0] for k, v in request.headers.items()})
        if command["text"] == "slow":
            await asyncio.sleep(1.0)
            await ack()
            bot.done.set()
            return
        await ack(f"Testing {command['text']}…")
        await say(text=f"Report for {command['text']}", blocks=report_blocks(command["text"]))

    @app.command("/sendas")
    async def sendas(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        await respond(text="Only you see this: which mailbox?")
        await client.views_open(
            trigger_id=command["trigger_id"],
            view={
                "type": "modal",
                "callback_id": "grant",
                "title": {"type": "plain_text", "text": "Grant Send As"},
                "submit": {"type": "plain_text", "text": "Grant"},
                "blocks": [
                    {
                        "type": "input",
                        "block_id": "mailbox",
                        "label": {"type": "plain_text", "text": "Mailbox"},
                        "element": {"type": "plain_text_input", "action_id": "address"},
                    }
                ],
            },
        )

    @app.view("grant")
    async def grant(ack: AsyncAck, view: dict[str, Any]) -> None:
        address = view["state"]["values"]["mailbox"]["address"]["value"]
        bot.seen.append(view)
        if "@" not in (address or ""):
            await ack(response_action="errors", errors={"mailbox": "Enter an email address"})
        else:
            await ack()

    @app.action("request_fix")
    async def request_fix(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        bot.seen.append(body)
        await respond(replace_original=True, text=f"Fix requested by <@{body['user']['id']}>")
        await client.chat_postMessage(
            channel=body["channel"]["id"], thread_ts=body["container"]["message_ts"], text="Asked IT to approve"
        )

    @app.action("duration")
    async def duration(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        bot.seen.append(body)

    return app


@pytest.fixture
async def bot(slack: SlackSandbox) -> AsyncIterator[BotUnderTest]:
    holder = BotUnderTest()
    site = await serve(build_bolt_app(slack, holder).web_app(path="/slack/events"), slack.tls.server)
    holder.site = site
    try:
        yield holder
    finally:
        await site.stop()


def slack_client(slack: SlackSandbox, bot: BotUnderTest, **kwargs: Any) -> SlackClient:
    return SlackClient(
        slack.workspace,
        bot_url=f"{bot.url}/slack/events",
        slack_base_url=slack.url,
        ssl_context=slack.tls.client,
        **kwargs,
    )


async def test_slash_command_then_click_end_to_end(slack: SlackSandbox, bot: BotUnderTest) -> None:
    client = slack_client(slack, bot)
    workspace = slack.workspace

    command = await client.slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK)
    report = await workspace.wait_for_message(HELPDESK, lambda m: "request_fix" in m.action_ids())
    click = await client.click("U0HANNAH", report, "request_fix")
    replaced = await workspace.wait_for(lambda: workspace.latest(report) if workspace.latest(report).version else None)
    reply = await workspace.wait_for_message(HELPDESK, thread_ts=report.ts)

    assert command.ok
    assert command.acked_in_time
    assert click.ok
    assert click.acked_in_time
    [seen_command, seen_click] = bot.seen
    assert seen_command["text"] == "alice"
    assert seen_command["user_id"] == "U0HANNAH"
    assert seen_command["response_url"] == command.response_url
    assert seen_click["container"] == {
        "type": "message",
        "message_ts": report.ts,
        "channel_id": HELPDESK,
        "is_ephemeral": False,
    }
    assert seen_click["message"]["blocks"] == report.blocks
    assert seen_click["actions"][0]["value"] == "SendAs|alice"
    assert seen_click["actions"][0]["block_id"] == "fix"
    assert seen_click["team"] == {"id": "T0BUSINESS", "domain": "business"}
    assert replaced.text == "Fix requested by <@U0HANNAH>"
    assert replaced.via == "response_url"
    assert reply.text == "Asked IT to approve"
    [ack_message] = workspace.ephemeral_messages("U0HANNAH")
    assert (ack_message.text, ack_message.via) == ("Testing alice…", "ack")
    assert [d.kind for d in workspace.deliveries()] == ["slash_command", "block_actions"]
    assert [c.method for c in workspace.calls()] == ["auth.test", "chat.postMessage", "chat.postMessage"]


async def test_select_click_carries_the_selected_option(slack: SlackSandbox, bot: BotUnderTest) -> None:
    client = slack_client(slack, bot)
    await client.slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK)
    report: SlackMessage = await slack.workspace.wait_for_message(HELPDESK, lambda m: bool(m.blocks))

    delivery = await client.click("U0IVAN", report, "duration", "forever")

    assert delivery.ok
    assert bot.seen[-1]["actions"][0]["selected_option"]["value"] == "forever"
    with pytest.raises(ValueError, match="no element with action_id 'approve'"):
        await client.click("U0IVAN", report, "approve")


async def test_click_in_an_ephemeral_message(slack: SlackSandbox, bot: BotUnderTest, web: AsyncWebClient) -> None:
    client = slack_client(slack, bot)
    posted = await web.chat_postEphemeral(channel=HELPDESK, user="U0HANNAH", text="Pick", blocks=report_blocks("alice"))
    ephemeral = slack.workspace.message(HELPDESK, posted["message_ts"])

    delivery = await client.click("U0HANNAH", ephemeral, "duration", "8h")

    assert delivery.ok
    payload = bot.seen[-1]
    assert payload["container"]["is_ephemeral"] is True
    assert "message" not in payload
    with pytest.raises(ValueError, match="ephemeral for U0HANNAH"):
        await client.click("U0IVAN", ephemeral, "duration", "8h")


async def test_slash_command_in_the_bots_dm(slack: SlackSandbox, bot: BotUnderTest) -> None:
    delivery = await slack_client(slack, bot).slash_command("U0ALICE", "/emailtest", "me")
    report = await slack.workspace.wait_for_message("D0ALICE", lambda m: not m.ephemeral)

    assert delivery.ok
    assert bot.seen[0]["channel_name"] == "directmessage"
    assert report.text == "Report for me"


@pytest.mark.parametrize(
    "tampering", [{"wrong_signature": True}, {"timestamp_age_s": 6 * 60}], ids=["bad-signature", "6-minutes-old"]
)
async def test_bolt_refuses_forged_and_stale_requests(
    slack: SlackSandbox, bot: BotUnderTest, tampering: dict[str, Any]
) -> None:
    delivery = await slack_client(slack, bot).slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK, **tampering)

    assert delivery.status == 401
    assert bot.seen == []
    assert slack.workspace.all_messages() == []


async def test_retries_carry_slack_retry_headers(slack: SlackSandbox, bot: BotUnderTest) -> None:
    delivery = await slack_client(slack, bot).slash_command(
        "U0HANNAH", "/emailtest", "alice", HELPDESK, retry_num=1, retry_reason="http_timeout"
    )

    assert delivery.ok
    assert bot.headers[0]["x-slack-retry-num"] == "1"
    assert bot.headers[0]["x-slack-retry-reason"] == "http_timeout"
    assert bot.headers[0]["content-type"] == "application/x-www-form-urlencoded"


async def test_a_bot_slower_than_the_ack_window_times_out(slack: SlackSandbox, bot: BotUnderTest) -> None:
    delivery = await slack_client(slack, bot, ack_timeout_s=0.3).slash_command(
        "U0HANNAH", "/emailtest", "slow", HELPDESK
    )
    await asyncio.wait_for(bot.done.wait(), timeout=5)

    assert delivery.status is None
    assert delivery.error == "operation_timeout"
    assert not delivery.acked_in_time


async def test_respond_modal_and_submission(slack: SlackSandbox, bot: BotUnderTest) -> None:
    client = slack_client(slack, bot)
    workspace = slack.workspace

    await client.slash_command("U0IVAN", "/sendas", "grant", "C0ITAPPROVE")
    [view] = await workspace.wait_for(lambda: workspace.views("U0IVAN"))
    private = await workspace.wait_for_message("C0ITAPPROVE", lambda m: m.ephemeral)
    refused = await client.submit_view("U0IVAN", view, {"address": "not an address"})
    accepted = await client.submit_view("U0IVAN", view.id, {"address": "alice@business.com"})

    assert (private.visible_to, private.text) == ("U0IVAN", "Only you see this: which mailbox?")
    assert refused.ok
    assert refused.json() == {"response_action": "errors", "errors": {"mailbox": "Enter an email address"}}
    assert accepted.ok
    assert view.errors == {"mailbox": "Enter an email address"}
    assert view.closed is True
    assert bot.seen[-1]["state"]["values"]["mailbox"]["address"] == {
        "type": "plain_text_input",
        "value": "alice@business.com",
    }
    assert bot.seen[-1]["id"] == view.id
