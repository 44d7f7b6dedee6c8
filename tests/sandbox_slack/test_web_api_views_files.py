"""views.* with trigger_ids, and files_upload_v2 (getUploadURLExternal + upload + completeUploadExternal)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from .support import BOT_TOKEN, SlackSandbox

GRANT_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "grant",
    "title": {"type": "plain_text", "text": "Grant Send As"},
    "submit": {"type": "plain_text", "text": "Grant"},
    "blocks": [
        {
            "type": "input",
            "block_id": "duration",
            "label": {"type": "plain_text", "text": "For how long?"},
            "element": {"type": "plain_text_input", "action_id": "hours"},
        }
    ],
}


async def test_views_open_update_with_a_trigger(web: AsyncWebClient, slack: SlackSandbox) -> None:
    trigger = slack.workspace.mint_trigger("U0IVAN")

    opened = await web.views_open(trigger_id=trigger.id, view=GRANT_MODAL)
    view = opened["view"]
    updated = await web.views_update(
        view_id=view["id"], hash=view["hash"], view={**GRANT_MODAL, "title": {"type": "plain_text", "text": "Granted"}}
    )

    assert view["callback_id"] == "grant"
    assert view["root_view_id"] == view["id"]
    assert view["state"] == {"values": {}}
    assert updated["view"]["title"]["text"] == "Granted"
    record = slack.workspace.view(view["id"])
    assert record.user == "U0IVAN"
    assert [v["title"]["text"] for v in record.versions] == ["Grant Send As", "Granted"]
    with pytest.raises(SlackApiError) as raised:
        await web.views_update(view_id=view["id"], hash=view["hash"], view=GRANT_MODAL)
    assert raised.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as raised:
        await web.views_update(view_id="V0NOPE", view=GRANT_MODAL)
    assert raised.value.response["error"] == "not_found"


async def test_trigger_ids_are_single_use_and_expire_after_3_seconds(web: AsyncWebClient, slack: SlackSandbox) -> None:
    used = slack.workspace.mint_trigger("U0IVAN")
    await web.views_open(trigger_id=used.id, view=GRANT_MODAL)
    stale = slack.workspace.mint_trigger("U0IVAN")
    slack.clock.advance(seconds=4)

    for trigger_id, error in (
        (used.id, "exchanged_trigger_id"),
        (stale.id, "expired_trigger_id"),
        ("1.2.3", "invalid_arguments"),
    ):
        with pytest.raises(SlackApiError) as raised:
            await web.views_open(trigger_id=trigger_id, view=GRANT_MODAL)
        assert raised.value.response["error"] == error


async def test_invalid_view_is_invalid_arguments(web: AsyncWebClient, slack: SlackSandbox) -> None:
    trigger = slack.workspace.mint_trigger("U0IVAN")
    long_title = {**GRANT_MODAL, "title": {"type": "plain_text", "text": "A title far too long for a modal"}}

    with pytest.raises(SlackApiError) as raised:
        await web.views_open(trigger_id=trigger.id, view=long_title)

    assert raised.value.response["error"] == "invalid_arguments"
    assert raised.value.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
    ]


async def test_files_upload_v2_lands_in_the_thread_with_its_content(web: AsyncWebClient, slack: SlackSandbox) -> None:
    parent = await web.chat_postMessage(channel="C0MAILAUDIT", text="Audit of 27 Nov")
    csv = "mailbox,trustee,right\nsales@business.com,oscar@business.com,SendAs\n"

    answer = await web.files_upload_v2(
        channel="C0MAILAUDIT",
        content=csv,
        filename="audit.csv",
        title="Mailbox rights",
        initial_comment="3 risky grants",
        thread_ts=parent["ts"],
    )

    file_id = answer["file"]["id"]
    assert answer["file"]["title"] == "Mailbox rights"
    [stored] = slack.workspace.files("C0MAILAUDIT")
    assert (stored.id, stored.name, stored.title, stored.text) == (file_id, "audit.csv", "Mailbox rights", csv)
    assert stored.initial_comment == "3 risky grants"
    [shared] = slack.workspace.replies("C0MAILAUDIT", parent["ts"])
    assert (shared.text, shared.files) == ("3 risky grants", (file_id,))
    assert [c.method for c in slack.workspace.calls()][-2:] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            answer["file"]["url_private"], headers={"Authorization": f"Bearer {BOT_TOKEN}"}, ssl=slack.tls.client
        ) as download,
    ):
        assert await download.text() == csv


async def test_complete_upload_errors(web: AsyncWebClient, slack: SlackSandbox) -> None:
    ticket = await web.files_getUploadURLExternal(filename="a.csv", length=3)

    with pytest.raises(SlackApiError) as raised:
        await web.files_completeUploadExternal(files=[{"id": ticket["file_id"]}], channel_id="C0MAILAUDIT")
    assert raised.value.response["error"] == "file_not_found"  # nothing was uploaded to the URL yet
    with pytest.raises(SlackApiError) as raised:
        await web.files_upload_v2(channel="C0NOWHERE", content="x", filename="a.txt")
    assert raised.value.response["error"] == "invalid_channel"
    with pytest.raises(SlackApiError) as raised:
        await web.files_getUploadURLExternal(filename="a.csv", length=0)
    assert raised.value.response["error"] == "missing_argument"
    assert slack.workspace.files() == []
