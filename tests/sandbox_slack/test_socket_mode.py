"""Socket Mode against the real slack_sdk client: apps.connections.open with the app-level token, hello,
envelopes acknowledged within 3 seconds, Slack's token errors, one-time tickets, and reconnecting after a
dropped or refreshed connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import SlackSocketModeClient, WorkspaceConfigError, load_workspace

from .support import APP_TOKEN, BOT_TOKEN, SlackSandbox, workspace_data

HELPDESK = "C0HELPDESK"
PING_S = 0.1  # how often slack_sdk checks its connection: a dropped one is replaced within a few of these

Acker = Callable[[SocketModeRequest], Awaitable[dict[str, Any] | bool | None]]
"""What the app answers an envelope: a payload, None (an empty ack) or False (no ack at all)."""


@dataclass
class App:
    """The app side: the real slack_sdk Socket Mode client, and what reached it."""

    client: SocketModeClient
    requests: list[SocketModeRequest] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def connect(slack: SlackSandbox) -> AsyncIterator[Callable[[Acker], Awaitable[App]]]:
    apps: list[App] = []

    async def start(answer: Acker) -> App:
        web = AsyncWebClient(base_url=f"{slack.url}/api/", ssl=slack.tls.client)
        app = App(SocketModeClient(app_token=APP_TOKEN, web_client=web, ping_interval=PING_S))
        apps.append(app)

        async def on_message(_: AsyncBaseSocketModeClient, message: dict[str, Any], __: str | None) -> None:
            app.messages.append(message)

        async def on_request(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
            app.requests.append(request)
            payload = await answer(request)
            if payload is not False:
                response = SocketModeResponse(request.envelope_id, payload if isinstance(payload, dict) else None)
                await client.send_socket_mode_response(response)

        app.client.message_listeners.append(on_message)
        app.client.socket_mode_request_listeners.append(on_request)
        await app.client.connect()  # type: ignore[no-untyped-call]  # untyped in slack_sdk
        await slack.workspace.socket_mode.wait_for_connection()
        return app

    try:
        yield start
    finally:
        for app in apps:
            await app.client.close()  # type: ignore[no-untyped-call]


def player(slack: SlackSandbox, **options: Any) -> SlackSocketModeClient:
    return SlackSocketModeClient(slack.workspace, slack_base_url=slack.url, **options)


async def ack_with_text(request: SocketModeRequest) -> dict[str, Any]:
    return {"text": f"Testing {request.payload.get('text')}…"}


async def test_hello_then_a_slash_command_envelope_acknowledged_in_time(
    slack: SlackSandbox, connect: Callable[[Acker], Awaitable[App]]
) -> None:
    app = await connect(ack_with_text)
    workspace = slack.workspace

    delivery = await player(slack).slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK)

    hello = app.messages[0]
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": "A0EMAILDOC"}
    assert hello["debug_info"]["approximate_connection_time"] > 0
    [opened] = workspace.calls("apps.connections.open")
    assert opened.ok and opened.token == APP_TOKEN
    assert opened.response is not None and opened.response["url"].startswith("wss://127.0.0.1:")
    [request] = app.requests
    assert (request.type, request.accepts_response_payload) == ("slash_commands", True)
    assert request.envelope_id == delivery.envelope_id
    assert request.payload["command"] == "/emailtest" and request.payload["text"] == "alice"
    assert (request.payload["user_id"], request.payload["channel_id"]) == ("U0HANNAH", HELPDESK)
    assert request.payload["response_url"] == delivery.response_url
    assert request.payload["trigger_id"] == delivery.trigger_id
    assert delivery.status == 200 and delivery.acked_in_time and delivery.error is None
    assert delivery.json() == {"text": "Testing alice…"}
    assert delivery.url.startswith("wss://127.0.0.1:")
    [ack_message] = workspace.ephemeral_messages("U0HANNAH", HELPDESK)
    assert (ack_message.text, ack_message.via) == ("Testing alice…", "ack")
    [ack] = workspace.socket_mode.acks()
    assert (ack.envelope_id, ack.in_time, ack.payload) == (delivery.envelope_id, True, {"text": "Testing alice…"})
    assert workspace.deliveries() == [delivery]

    # the response_url in an envelope works exactly as one delivered over HTTP
    assert delivery.response_url is not None
    async with (
        aiohttp.ClientSession() as session,
        session.post(delivery.response_url, json={"text": "alice: Send As denied"}, ssl=slack.tls.client) as posted,
    ):
        assert posted.status == 200
    answer = await workspace.wait_for_message(HELPDESK, lambda m: m.via == "response_url")
    assert (answer.text, answer.visible_to) == ("alice: Send As denied", "U0HANNAH")


async def test_a_click_goes_as_an_interactive_envelope(
    slack: SlackSandbox, connect: Callable[[Acker], Awaitable[App]], web: AsyncWebClient
) -> None:
    async def empty_ack(_: SocketModeRequest) -> None:
        return None

    app = await connect(empty_ack)
    button = {"type": "button", "action_id": "request_fix", "text": {"type": "plain_text", "text": "Request fix"}}
    posted = await web.chat_postMessage(
        channel=HELPDESK, text="Send As denied", blocks=[{"type": "actions", "block_id": "fix", "elements": [button]}]
    )
    report = slack.workspace.message(HELPDESK, str(posted["ts"]))

    delivery = await player(slack).click("U0HANNAH", report, "request_fix")

    assert delivery.status == 200 and delivery.body == ""
    [request] = app.requests
    assert request.type == "interactive"
    assert request.payload["type"] == "block_actions"
    assert request.payload["actions"][0]["action_id"] == "request_fix"
    assert request.payload["container"]["message_ts"] == report.ts
    assert request.payload["response_url"] == delivery.response_url


@pytest.mark.parametrize(
    ("token", "as_form", "error"),
    [
        (BOT_TOKEN, False, "not_allowed_token_type"),
        ("xapp-1-A0EMAILDOC-9999-notthistoken", False, "invalid_auth"),
        (APP_TOKEN, True, "invalid_auth"),
        ("", False, "not_authed"),
    ],
    ids=["bot-token", "unknown-token", "app-token-as-form-field", "no-token"],
)
async def test_connections_open_takes_only_the_app_token_in_the_header(
    slack: SlackSandbox, token: str, as_form: bool, error: str
) -> None:
    web = AsyncWebClient(base_url=f"{slack.url}/api/", ssl=slack.tls.client)
    call = (
        web.api_call("apps.connections.open", data={"token": token})
        if as_form
        else web.apps_connections_open(app_token=token)
    )

    with pytest.raises(SlackApiError) as refused:
        await call

    assert refused.value.response["error"] == error
    assert slack.workspace.socket_mode.connections() == []


async def test_the_app_token_cannot_call_bot_methods(slack: SlackSandbox) -> None:
    web = AsyncWebClient(token=APP_TOKEN, base_url=f"{slack.url}/api/", ssl=slack.tls.client)

    with pytest.raises(SlackApiError) as refused:
        await web.chat_postMessage(channel=HELPDESK, text="hello")

    assert refused.value.response["error"] == "not_allowed_token_type"
    assert slack.workspace.all_messages() == []


async def test_a_ticket_opens_one_connection(slack: SlackSandbox) -> None:
    web = AsyncWebClient(base_url=f"{slack.url}/api/", ssl=slack.tls.client)
    url = str((await web.apps_connections_open(app_token=APP_TOKEN))["url"])

    async with aiohttp.ClientSession() as session, session.ws_connect(url, ssl=slack.tls.client) as ws:
        hello = await ws.receive_json(timeout=5)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, ssl=slack.tls.client)

    assert hello["type"] == "hello"
    assert refused.value.status == 401


async def test_no_ack_in_time_then_a_retry(slack: SlackSandbox, connect: Callable[[Acker], Awaitable[App]]) -> None:
    async def ack_only_retries(request: SocketModeRequest) -> dict[str, Any] | bool:
        return {"text": "on it"} if request.retry_attempt else False

    app = await connect(ack_only_retries)
    slack_player = player(slack, ack_timeout_s=0.3)

    first = await slack_player.slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK)
    retry = await slack_player.redeliver(first, retry_attempt=1, retry_reason="timeout")

    assert (first.status, first.error, first.acked_in_time) == (None, "operation_timeout", False)
    assert retry.status == 200 and retry.json() == {"text": "on it"}
    assert retry.envelope_id != first.envelope_id and retry.trigger_id == first.trigger_id
    assert [(r.retry_attempt, r.retry_reason) for r in app.requests] == [(None, None), (1, "timeout")]
    assert app.requests[0].payload == app.requests[1].payload


async def test_no_connection_fails_at_once(slack: SlackSandbox) -> None:
    delivery = await player(slack).slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK)

    assert (delivery.status, delivery.error) == (None, "dispatch_failed")


async def test_a_dropped_connection_is_replaced_through_connections_open(
    slack: SlackSandbox, connect: Callable[[Acker], Awaitable[App]]
) -> None:
    app = await connect(ack_with_text)
    hub = slack.workspace.socket_mode
    first = hub.connections()[0]

    assert await hub.drop() == 1
    second = await hub.wait_for_connection(newer_than=first)
    delivery = await player(slack).slash_command("U0IVAN", "/emailtest", "bob", HELPDESK)

    assert first.dropped and not first.open
    assert len(slack.workspace.calls("apps.connections.open")) == 2
    assert delivery.ok and delivery.url == second.url
    assert [m["type"] for m in app.messages] == ["hello", "hello", "slash_commands"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{slack.url}/_sandbox/slack/state", ssl=slack.tls.client) as answer,
    ):
        state = await answer.json()
    assert state["socket_mode"] == {
        "connections": [{"number": 1, "open": False, "dropped": True}, {"number": 2, "open": True, "dropped": False}],
        "envelopes": 1,
        "acks": 1,
    }


async def test_the_drop_fault_cuts_the_connection_instead_of_delivering(
    slack: SlackSandbox, connect: Callable[[Acker], Awaitable[App]]
) -> None:
    app = await connect(ack_with_text)
    hub = slack.workspace.socket_mode
    first = hub.connections()[0]
    slack.faults.set("slack", drop_rate=1.0)

    lost = await player(slack, ack_timeout_s=0.3).slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK)
    await asyncio.sleep(PING_S * 3)  # reconnect attempts meet the same fault: apps.connections.open is dropped too
    slack.faults.reset("slack")
    await hub.wait_for_connection(newer_than=first)
    delivered = await player(slack).slash_command("U0HANNAH", "/emailtest", "alice", HELPDESK)

    assert (lost.status, lost.error) == (None, "operation_timeout")
    assert first.dropped
    statuses = [c.status for c in slack.workspace.calls("apps.connections.open")]
    assert statuses[0] == 200 and 0 in statuses  # later calls were dropped while the fault held
    assert delivered.ok
    assert [r.envelope_id for r in app.requests] == [delivered.envelope_id]


async def test_refresh_requested_makes_the_client_reconnect(
    slack: SlackSandbox, connect: Callable[[Acker], Awaitable[App]]
) -> None:
    await connect(ack_with_text)
    hub = slack.workspace.socket_mode
    first = hub.connections()[0]

    assert await hub.disconnect("refresh_requested") == 1
    second = await hub.wait_for_connection(newer_than=first)
    await slack.workspace.wait_for(lambda: not first.open)

    assert not first.dropped  # the client closed it itself
    assert {"type": "disconnect", "reason": "refresh_requested"}.items() <= first.sent[-1].items()
    assert (second.sent[0]["type"], second.sent[0]["num_connections"]) == ("hello", 1)
    assert (await player(slack).slash_command("U0ALICE", "/emailtest", "alice", HELPDESK)).ok


def test_the_app_token_is_an_xapp_token() -> None:
    data = workspace_data()
    data["app_token"] = BOT_TOKEN

    with pytest.raises(WorkspaceConfigError, match=r"^slack.app_token: an app-level token starts with 'xapp-'"):
        load_workspace(data)

    del data["app_token"]
    assert load_workspace(data).app_token is None
