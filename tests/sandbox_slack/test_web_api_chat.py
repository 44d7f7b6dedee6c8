"""chat.postMessage / chat.update / chat.postEphemeral and Block Kit validation, through the real slack_sdk."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import MessageRef

from .support import SlackSandbox

REPORT_BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Test email for alice"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*send_as_denied*: admin@ lacks Send As on alice@"}},
    {
        "type": "actions",
        "block_id": "fix",
        "elements": [
            {
                "type": "button",
                "action_id": "request_fix",
                "text": {"type": "plain_text", "text": "Request fix"},
                "value": "SendAs|alice@business.com|admin@business.com",
                "style": "primary",
            }
        ],
    },
]


async def test_post_message_returns_slack_shape_and_is_recorded(web: AsyncWebClient, slack: SlackSandbox) -> None:
    answer = await web.chat_postMessage(channel="C0HELPDESK", text="Report for alice", blocks=REPORT_BLOCKS)

    assert answer["channel"] == "C0HELPDESK"
    assert answer["message"]["ts"] == answer["ts"]
    assert answer["message"]["bot_id"] == "B0EMAILDOC"
    assert answer["message"]["user"] == "U0EMAILDOC"
    assert answer["message"]["blocks"][2]["block_id"] == "fix"
    assert answer["message"]["blocks"][0]["block_id"]  # Slack names blocks the bot left unnamed
    recorded = slack.workspace.message("C0HELPDESK", answer["ts"])
    assert recorded.text == "Report for alice"
    assert recorded.action_ids() == ["request_fix"]
    assert "admin@ lacks Send As" in recorded.all_text()
    assert slack.workspace.calls("chat.postMessage")[-1].args["channel"] == "C0HELPDESK"


async def test_channel_by_name_and_by_user_id(web: AsyncWebClient, slack: SlackSandbox) -> None:
    by_name = await web.chat_postMessage(channel="#it-approvals", text="Approval needed")
    to_user = await web.chat_postMessage(channel="U0HANNAH", text="Your request was approved")

    assert by_name["channel"] == "C0ITAPPROVE"
    assert to_user["channel"] == "D0HANNAH"
    assert [m.text for m in slack.workspace.messages("D0HANNAH")] == ["Your request was approved"]


async def test_threads_and_updates_are_recorded(web: AsyncWebClient, slack: SlackSandbox) -> None:
    parent = await web.chat_postMessage(channel="C0HELPDESK", text="Testing alice…")
    first = await web.chat_postMessage(channel="C0HELPDESK", thread_ts=parent["ts"], text="Check 1 passed")
    # a reply to a reply lands in the parent's thread, as in Slack
    second = await web.chat_postMessage(channel="C0HELPDESK", thread_ts=first["ts"], text="Check 2 failed")
    updated = await web.chat_update(channel="C0HELPDESK", ts=parent["ts"], text="Tested alice: send_as_denied")

    workspace = slack.workspace
    assert [m.text for m in workspace.replies("C0HELPDESK", parent["ts"])] == ["Check 1 passed", "Check 2 failed"]
    assert second["message"]["thread_ts"] == parent["ts"]
    assert [m.ts for m in workspace.messages("C0HELPDESK")] == [parent["ts"]]
    assert updated["ts"] == parent["ts"]
    assert updated["message"]["edited"]["user"] == "U0EMAILDOC"
    assert [v.text for v in workspace.versions("C0HELPDESK", parent["ts"])] == [
        "Testing alice…",
        "Tested alice: send_as_denied",
    ]
    latest = workspace.latest(MessageRef("C0HELPDESK", parent["ts"]))
    assert latest.version == 1
    assert updated["message"]["reply_count"] == 2


async def test_update_keeps_blocks_unless_replaced(web: AsyncWebClient, slack: SlackSandbox) -> None:
    posted = await web.chat_postMessage(channel="C0HELPDESK", text="Report", blocks=REPORT_BLOCKS)
    await web.chat_update(channel="C0HELPDESK", ts=posted["ts"], text="Report (fix requested)")
    kept = slack.workspace.message("C0HELPDESK", posted["ts"])
    await web.chat_update(channel="C0HELPDESK", ts=posted["ts"], text="Report (done)", blocks=[])
    removed = slack.workspace.message("C0HELPDESK", posted["ts"])

    assert kept.action_ids() == ["request_fix"]
    assert removed.blocks == []


async def test_post_ephemeral(web: AsyncWebClient, slack: SlackSandbox) -> None:
    answer = await web.chat_postEphemeral(channel="C0HELPDESK", user="U0HANNAH", text="Only you can see this")

    ephemeral = slack.workspace.message("C0HELPDESK", answer["message_ts"])
    assert (ephemeral.ephemeral, ephemeral.visible_to) == (True, "U0HANNAH")
    assert slack.workspace.ephemeral_messages("U0HANNAH") == [ephemeral]
    assert slack.workspace.messages("C0HELPDESK", include_ephemeral=False) == []
    for user, error in (("U0NOBODY", "user_not_found"), ("U0OSCAR", "user_not_in_channel")):
        with pytest.raises(SlackApiError) as raised:
            await web.chat_postEphemeral(channel="C0ITAPPROVE", user=user, text="x")
        assert raised.value.response["error"] == error
    with pytest.raises(SlackApiError) as raised:
        await web.chat_postEphemeral(channel="C0ITAPPROVE", user="U0HANNAH", text="x")
    assert raised.value.response["error"] == "user_not_in_channel"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"channel": "C0NOWHERE", "text": "x"}, "channel_not_found"),
        ({"channel": "C0RANDOM", "text": "x"}, "not_in_channel"),
        ({"channel": "C0HELPDESK"}, "no_text"),
        ({"channel": "C0HELPDESK", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "C0HELPDESK", "blocks": "not json"}, "invalid_blocks_format"),
        ({"channel": "C0HELPDESK", "blocks": {"type": "divider"}}, "invalid_blocks_format"),
    ],
)
async def test_post_message_errors(web: AsyncWebClient, arguments: dict[str, Any], error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web.api_call("chat.postMessage", json=arguments)

    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == error


def _button(**overrides: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "Go"}, **overrides}


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "/blocks/0/text/text"),
        (
            [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Go"}}]}],
            "/blocks/0/elements/0/action_id",
        ),
        ([{"type": "actions", "elements": [_button(value="v" * 2001)]}], "/blocks/0/elements/0/value"),
        (
            [{"type": "actions", "elements": [_button(text={"type": "mrkdwn", "text": "*Go*"})]}],
            "/blocks/0/elements/0/text/type",
        ),
        ([{"type": "actions", "elements": [_button(), _button()]}], "/blocks/0/elements/1/action_id"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}], "/blocks/0/text/text"),
        ([{"type": "section"}], "/blocks/0"),
        ([{"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0/type"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text"),
        ([{"type": "divider"}] * 51, "/blocks"),
        ([{"type": "divider", "block_id": "b"}, {"type": "divider", "block_id": "b"}], "/blocks/1/block_id"),
        ([{"type": "actions", "elements": [_button(style="green")]}], "/blocks/0/elements/0/style"),
    ],
)
async def test_malformed_blocks_are_invalid_blocks(
    web: AsyncWebClient, slack: SlackSandbox, blocks: list[dict[str, Any]], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web.chat_postMessage(channel="C0HELPDESK", text="fallback", blocks=blocks)

    assert raised.value.response["error"] == "invalid_blocks"
    assert any(f"[json-pointer:{pointer}]" in e for e in raised.value.response["errors"])
    assert raised.value.response["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert slack.workspace.messages("C0HELPDESK") == []


async def test_update_errors(web: AsyncWebClient, slack: SlackSandbox) -> None:
    by_a_person = await slack.workspace.post_message("C0HELPDESK", text="hello", user="U0HANNAH", via="client")
    ephemeral = await web.chat_postEphemeral(channel="C0HELPDESK", user="U0HANNAH", text="psst")

    for ts, error in (
        ("1.000001", "message_not_found"),
        (ephemeral["message_ts"], "message_not_found"),
        (by_a_person.ts, "cant_update_message"),
    ):
        with pytest.raises(SlackApiError) as raised:
            await web.chat_update(channel="C0HELPDESK", ts=ts, text="edited")
        assert raised.value.response["error"] == error
