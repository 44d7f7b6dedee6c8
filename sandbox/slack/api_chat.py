"""``chat.postMessage``, ``chat.update`` and ``chat.postEphemeral`` with Slack's checks and answers."""

from __future__ import annotations

from sandbox.slack.model import Channel, JsonObject, MessageRef
from sandbox.slack.render import message_json
from sandbox.slack.web_api import ApiError, ApiRequest, Method, message_blocks
from sandbox.slack.workspace import SlackWorkspace

MAX_TEXT = 40_000


async def target_channel(request: ApiRequest) -> Channel:
    """``channel`` as an id, ``#name``, ``name`` or a user id (the bot's DM with that user)."""
    workspace = request.workspace
    ref = request.text("channel")
    if not ref:
        raise ApiError("channel_not_found")
    user = workspace.find_user(ref)
    if user is not None:
        if user.deleted:
            raise ApiError("user_disabled")
        channel, _ = await workspace.open_dm([user.id])
        return channel
    channel_found = workspace.resolve_channel(ref)
    if channel_found is None:
        raise ApiError("channel_not_found")
    return channel_found


def check_can_post(workspace: SlackWorkspace, channel: Channel) -> None:
    """The bot posts where it is a member, or in any public channel with ``chat:write.public``."""
    if workspace.bot.user_id in channel.members:
        return
    public = not (channel.is_private or channel.is_im or channel.is_mpim)
    if public and "chat:write.public" in workspace.bot.scopes:
        return
    raise ApiError("not_in_channel")


def _content(request: ApiRequest, *, required: bool = True) -> tuple[str | None, list[JsonObject] | None]:
    text = request.text("text")
    blocks = message_blocks(request)
    has_attachments = bool(request.json_arg("attachments"))
    if required and not text and not blocks and not has_attachments:
        raise ApiError("no_text")
    if text is not None and len(text) > MAX_TEXT:
        raise ApiError("msg_too_long")
    return text, blocks


def _metadata(request: ApiRequest) -> JsonObject | None:
    metadata = request.json_arg("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
        raise ApiError("invalid_metadata_format")
    return metadata


async def post_message(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    channel = await target_channel(request)
    text, blocks = _content(request)
    check_can_post(workspace, channel)
    message = await workspace.post_message(
        channel.id,
        text=text or "",
        blocks=blocks,
        thread_ts=request.text("thread_ts") or None,
        metadata=_metadata(request),
        via="chat.postMessage",
    )
    return {
        "ok": True,
        "channel": channel.id,
        "ts": message.ts,
        "message": message_json(workspace, message, request.origin),
    }


async def update(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    channel = workspace.resolve_channel(request.text("channel") or "")
    if channel is None:
        raise ApiError("channel_not_found")
    ts = request.text("ts")
    try:
        current = workspace.message(channel.id, ts or "")
    except KeyError:
        raise ApiError("message_not_found") from None
    if current.deleted or current.ephemeral:
        raise ApiError("message_not_found")
    if current.user != workspace.bot.user_id:
        raise ApiError("cant_update_message")
    text, blocks = _content(request)
    updated = await workspace.update_message(
        MessageRef(channel.id, current.ts), text=text, blocks=blocks, via="chat.update"
    )
    return {
        "ok": True,
        "channel": channel.id,
        "ts": updated.ts,
        "text": updated.text,
        "message": message_json(workspace, updated, request.origin),
    }


async def post_ephemeral(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    channel = await target_channel(request)
    user = workspace.find_user(request.text("user") or "")
    if user is None:
        raise ApiError("user_not_found")
    if user.deleted or user.id not in channel.members:
        raise ApiError("user_not_in_channel")
    text, blocks = _content(request)
    check_can_post(workspace, channel)
    message = await workspace.post_message(
        channel.id,
        text=text or "",
        blocks=blocks,
        thread_ts=request.text("thread_ts") or None,
        visible_to=user.id,
        via="chat.postEphemeral",
    )
    return {"ok": True, "message_ts": message.ts}


METHODS = {
    "chat.postMessage": Method(post_message, "chat:write"),
    "chat.update": Method(update, "chat:write"),
    "chat.postEphemeral": Method(post_ephemeral, "chat:write"),
}
