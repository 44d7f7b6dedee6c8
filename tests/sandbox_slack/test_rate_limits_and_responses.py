"""429 + Retry-After (fault bursts and tiers) and response_url posts, through the real slack_sdk clients."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sandbox.slack.model import InteractionKind, MessageRef

from .support import SlackSandbox


async def test_a_429_burst_is_retried_by_the_rate_limit_handler(slack: SlackSandbox) -> None:
    slack.faults.set("slack", throttle_burst=2, retry_after_s=0)
    client = slack.web_client(retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)])

    answer = await client.chat_postMessage(channel="C0HELPDESK", text="after the burst")

    calls = slack.workspace.calls("chat.postMessage")
    assert [(c.status, c.error) for c in calls] == [(429, "ratelimited"), (429, "ratelimited"), (200, None)]
    assert [m.ts for m in slack.workspace.messages("C0HELPDESK")] == [answer["ts"]]


async def test_without_a_retry_handler_the_429_surfaces(slack: SlackSandbox, web: AsyncWebClient) -> None:
    slack.faults.set("slack", throttle_burst=1, retry_after_s=7)

    with pytest.raises(SlackApiError) as raised:
        await web.users_info(user="U0ALICE")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"


async def test_server_errors_carry_slack_error_codes(slack: SlackSandbox, web: AsyncWebClient) -> None:
    slack.faults.set("slack", error_rate=1.0, error_status=503)

    with pytest.raises(SlackApiError) as raised:
        await web.auth_test()

    assert raised.value.response.status_code == 503
    assert raised.value.response["error"] == "service_unavailable"


async def test_method_tiers_limit_per_minute_on_the_sandbox_clock(slack: SlackSandbox, web: AsyncWebClient) -> None:
    limits = slack.workspace.rate_limits
    limits.enabled = True
    limits.method_per_minute["users.lookupByEmail"] = 2
    await web.users_lookupByEmail(email="alice@business.com")
    slack.clock.advance(seconds=15)
    await web.users_lookupByEmail(email="alice@business.com")

    with pytest.raises(SlackApiError) as raised:
        await web.users_lookupByEmail(email="alice@business.com")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "45"
    slack.clock.advance(seconds=45)
    assert (await web.users_lookupByEmail(email="alice@business.com"))["ok"] is True
    await web.chat_postMessage(channel="C0HELPDESK", text="one per second per channel")
    with pytest.raises(SlackApiError) as raised:
        await web.chat_postMessage(channel="C0HELPDESK", text="too soon")
    assert raised.value.response["error"] == "ratelimited"
    assert (await web.chat_postMessage(channel="C0ITAPPROVE", text="another channel"))["ok"] is True


def _response_url(slack: SlackSandbox, kind: InteractionKind, source: MessageRef | None = None) -> AsyncWebhookClient:
    minted = slack.workspace.mint_response_url(kind, channel="C0HELPDESK", user="U0HANNAH", source=source)
    return AsyncWebhookClient(f"{slack.url}/response/{minted.id}", ssl=slack.tls.client)


async def test_response_url_ephemeral_in_channel_and_thread(slack: SlackSandbox, web: AsyncWebClient) -> None:
    parent = await web.chat_postMessage(channel="C0HELPDESK", text="Report")
    hook = _response_url(slack, "slash_command")

    private = await hook.send(text="Working on it…")
    public = await hook.send(text="Everyone sees this", response_type="in_channel")
    threaded = await hook.send_dict({"text": "In the thread", "response_type": "in_channel", "thread_ts": parent["ts"]})

    assert (private.status_code, private.body) == (200, '{"ok": true}')
    assert public.status_code == threaded.status_code == 200
    workspace = slack.workspace
    [ephemeral] = workspace.ephemeral_messages("U0HANNAH")
    assert (ephemeral.text, ephemeral.via) == ("Working on it…", "response_url")
    assert [m.text for m in workspace.messages("C0HELPDESK", include_ephemeral=False)] == [
        "Report",
        "Everyone sees this",
    ]
    assert [m.text for m in workspace.replies("C0HELPDESK", parent["ts"])] == ["In the thread"]
    assert [p.status for p in workspace.response_posts()] == [200, 200, 200]


async def test_response_url_replaces_and_deletes_the_clicked_message(slack: SlackSandbox, web: AsyncWebClient) -> None:
    clicked = await web.chat_postMessage(channel="C0HELPDESK", text="Approve?")
    ref = MessageRef("C0HELPDESK", clicked["ts"])

    await _response_url(slack, "block_actions", ref).send(text="Approved by Ivan", replace_original=True)
    replaced = slack.workspace.latest(ref)
    await _response_url(slack, "block_actions", ref).send(delete_original=True)

    assert (replaced.text, replaced.version) == ("Approved by Ivan", 1)
    assert slack.workspace.latest(ref).deleted is True
    assert slack.workspace.messages("C0HELPDESK") == []


async def test_response_url_limits_5_uses_and_30_minutes(slack: SlackSandbox) -> None:
    hook = _response_url(slack, "slash_command")
    for n in range(5):
        assert (await hook.send(text=f"update {n}")).status_code == 200
    sixth = await hook.send(text="one too many")
    late = _response_url(slack, "slash_command")
    slack.clock.advance(seconds=31 * 60)
    expired = await late.send(text="too late")
    unknown = await AsyncWebhookClient(f"{slack.url}/response/nope", ssl=slack.tls.client).send(text="x")

    assert (sixth.status_code, sixth.body) == (404, '{"ok": false, "error": "used_url"}')
    assert (expired.status_code, expired.body) == (404, '{"ok": false, "error": "expired_url"}')
    assert unknown.status_code == 404
    assert len(slack.workspace.ephemeral_messages("U0HANNAH")) == 5


async def test_response_url_validates_blocks_and_content(slack: SlackSandbox) -> None:
    hook = _response_url(slack, "slash_command")

    bad_blocks = await hook.send(text="x", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": ""}}])
    empty = await hook.send_dict({"response_type": "ephemeral"})

    assert bad_blocks.status_code == 400
    assert '"invalid_blocks"' in bad_blocks.body
    assert empty.status_code == 400
    assert '"no_text"' in empty.body
    assert slack.workspace.all_messages() == []
