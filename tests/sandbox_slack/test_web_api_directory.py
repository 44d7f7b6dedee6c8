"""auth.test, users.*, usergroups.users.list, conversations.open and the Web API frame, through the real slack_sdk."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.http import serve
from sandbox.slack import build_slack_app, load_workspace

from .support import BOT_TOKEN, SlackSandbox, workspace_data


async def test_auth_test_answers_as_the_bot(web: AsyncWebClient, slack: SlackSandbox) -> None:
    answer = await web.auth_test()

    assert answer["ok"] is True
    assert answer["team_id"] == "T0BUSINESS"
    assert answer["user_id"] == "U0EMAILDOC"
    assert answer["bot_id"] == "B0EMAILDOC"
    assert answer["url"] == "https://business.slack.com/"
    assert "chat:write" in answer.headers["x-oauth-scopes"]
    call = slack.workspace.calls("auth.test")[-1]
    assert (call.token, call.status, call.ok) == (BOT_TOKEN, 200, True)


@pytest.mark.parametrize(("token", "error"), [(None, "not_authed"), ("xoxb-not-ours", "invalid_auth")])
async def test_bad_tokens_are_refused(slack: SlackSandbox, token: str | None, error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        await slack.web_client(token=token).auth_test()

    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == error


async def test_token_in_a_form_field_works_but_not_in_a_json_body(slack: SlackSandbox) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{slack.url}/api/users.info", data={"token": BOT_TOKEN, "user": "U0ALICE"}, ssl=slack.tls.client
        ) as form_answer:
            form_body = await form_answer.json()
        async with session.post(
            f"{slack.url}/api/users.info", json={"token": BOT_TOKEN, "user": "U0ALICE"}, ssl=slack.tls.client
        ) as json_answer:
            json_body = await json_answer.json()

    assert form_body["user"]["profile"]["email"] == "alice@business.com"
    assert json_body == {"ok": False, "error": "not_authed"}


async def test_unknown_method(slack: SlackSandbox) -> None:
    with pytest.raises(SlackApiError) as raised:
        await slack.web_client().api_call("chat.scheduleMessage", json={"channel": "C0HELPDESK", "text": "x"})

    assert raised.value.response["error"] == "unknown_method"


async def test_users_info_and_a_deactivated_user(web: AsyncWebClient) -> None:
    alice = await web.users_info(user="U0ALICE")
    oscar = await web.users_info(user="U0OSCAR")
    bot = await web.users_info(user="U0EMAILDOC")

    assert alice["user"]["real_name"] == "Alice Archer"
    assert alice["user"]["profile"]["email"] == "alice@business.com"
    assert alice["user"]["deleted"] is False
    assert oscar["user"]["deleted"] is True
    assert bot["user"]["is_bot"] is True
    assert bot["user"]["profile"]["bot_id"] == "B0EMAILDOC"
    with pytest.raises(SlackApiError) as raised:
        await web.users_info(user="U0NOBODY")
    assert raised.value.response["error"] == "user_not_found"


async def test_users_lookup_by_email_skips_deactivated_users(web: AsyncWebClient) -> None:
    found = await web.users_lookupByEmail(email="Alice@Business.com")

    assert found["user"]["id"] == "U0ALICE"
    for email in ("oscar@business.com", "nobody@business.com"):
        with pytest.raises(SlackApiError) as raised:
            await web.users_lookupByEmail(email=email)
        assert raised.value.response["error"] == "users_not_found"


async def test_usergroup_members(web: AsyncWebClient) -> None:
    members = await web.usergroups_users_list(usergroup="S0ITADMINS")

    assert members["users"] == ["U0IVAN"]
    with pytest.raises(SlackApiError) as raised:
        await web.usergroups_users_list(usergroup="S0NOGROUP")
    assert raised.value.response["error"] == "no_such_subteam"


async def test_conversations_open_gives_one_dm_per_user(web: AsyncWebClient, slack: SlackSandbox) -> None:
    first = await web.conversations_open(users="U0IVAN")
    again = await web.conversations_open(users=["U0IVAN"])

    assert first["channel"] == {"id": "D0IVAN"}
    assert again["channel"]["id"] == "D0IVAN"
    assert again["already_open"] is True
    posted = await web.chat_postMessage(channel="D0IVAN", text="A request waits for your approval")
    assert slack.workspace.messages("D0IVAN")[0].ts == posted["ts"]
    for users, error in (("U0OSCAR", "user_disabled"), ("U0NOBODY", "user_not_found")):
        with pytest.raises(SlackApiError) as raised:
            await web.conversations_open(users=users)
        assert raised.value.response["error"] == error


async def test_missing_scope_names_the_scope(tls_sandbox_without_email_scope: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await tls_sandbox_without_email_scope.users_lookupByEmail(email="alice@business.com")

    assert raised.value.response["error"] == "missing_scope"
    assert raised.value.response["needed"] == "users:read.email"


@pytest.fixture
async def tls_sandbox_without_email_scope(slack: SlackSandbox) -> AsyncIterator[AsyncWebClient]:
    data = workspace_data()
    data["bot"]["scopes"] = ["commands", "chat:write", "users:read"]
    site = await serve(build_slack_app(load_workspace(data), slack.faults, slack.clock), slack.tls.server)
    yield AsyncWebClient(token=BOT_TOKEN, base_url=f"{site.url}/api/", ssl=slack.tls.client)
    await site.stop()


async def test_dropped_connections_are_recorded(slack: SlackSandbox, web: AsyncWebClient) -> None:
    slack.faults.set("slack", drop_rate=1.0)

    with pytest.raises(aiohttp.ClientError):
        await web.auth_test()

    # slack_sdk's default connection-error handler retried once
    assert [c.status for c in slack.workspace.calls("auth.test")] == [0, 0]


async def test_text_plain_bodies_and_the_state_snapshot(slack: SlackSandbox, web: AsyncWebClient) -> None:
    await web.chat_postMessage(channel="C0HELPDESK", text="hello")
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{slack.url}/api/users.info",
            data=f"token={BOT_TOKEN}&user=U0IVAN",
            headers={"Content-Type": "text/plain"},
            ssl=slack.tls.client,
        ) as answer:
            info = await answer.json()
        async with session.get(f"{slack.url}/_sandbox/slack/state", ssl=slack.tls.client) as answer:
            state = await answer.json()

    assert info["user"]["name"] == "ivan"
    assert [(m["channel"], m["text"]) for m in state["messages"]] == [("C0HELPDESK", "hello")]
    assert [c["method"] for c in state["calls"]] == ["chat.postMessage", "users.info"]


async def test_conversations_info_says_whether_the_bot_is_in_a_channel(
    web: AsyncWebClient, slack: SlackSandbox
) -> None:
    answer = await web.conversations_info(channel="C0ITAPPROVE")
    assert answer["channel"]["is_member"] is True and answer["channel"]["name"] == "it-approvals"
    slack.workspace.channels["C0ITAPPROVE"].members.remove("U0EMAILDOC")
    assert (await web.conversations_info(channel="C0ITAPPROVE"))["channel"]["is_member"] is False
    slack.workspace.channels["C0ITAPPROVE"].is_private = True  # a private channel the bot is not in is invisible
    with pytest.raises(SlackApiError) as raised:
        await web.conversations_info(channel="C0ITAPPROVE")
    assert raised.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as raised:
        await web.conversations_info(channel="C0NOSUCH")
    assert raised.value.response["error"] == "channel_not_found"
