"""The JSON shapes Slack answers with (users, messages, views, files, DMs), from the workspace's records."""

from __future__ import annotations

import copy
import mimetypes
from typing import Any

from sandbox.slack.model import Channel, JsonObject, SlackFile, SlackMessage, SlackView, User
from sandbox.slack.workspace import SlackWorkspace

_UPDATED = 1764230400  # a fixed "profile last updated" epoch: users do not change while the sandbox runs


def user_json(workspace: SlackWorkspace, user: User, *, locale: bool = False) -> JsonObject:
    profile: JsonObject = {
        "real_name": user.real_name,
        "real_name_normalized": user.real_name,
        "display_name": "" if user.is_bot else user.name,
        "display_name_normalized": "" if user.is_bot else user.name,
        "first_name": user.real_name.split(" ")[0],
        "last_name": " ".join(user.real_name.split(" ")[1:]),
        "status_text": "",
        "status_emoji": "",
        "team": workspace.team.id,
    }
    if user.email and not user.is_bot:
        profile["email"] = user.email
    if user.is_bot and user.id == workspace.bot.user_id:
        profile.update(bot_id=workspace.bot.bot_id, api_app_id=workspace.bot.app_id, always_active=True)
    out: JsonObject = {
        "id": user.id,
        "team_id": workspace.team.id,
        "name": user.name,
        "deleted": user.deleted,
        "color": "9f69e7",
        "real_name": user.real_name,
        "tz": "Europe/London",
        "tz_label": "Greenwich Mean Time",
        "tz_offset": 0,
        "profile": profile,
        "is_admin": False,
        "is_owner": False,
        "is_primary_owner": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "is_bot": user.is_bot,
        "is_app_user": False,
        "updated": _UPDATED,
        "is_email_confirmed": bool(user.email),
    }
    if locale:
        out["locale"] = "en-US"
    return out


def bot_profile(workspace: SlackWorkspace) -> JsonObject:
    bot = workspace.bot
    return {
        "id": bot.bot_id,
        "app_id": bot.app_id,
        "name": bot.name,
        "deleted": False,
        "updated": _UPDATED,
        "team_id": workspace.team.id,
        "icons": {},
    }


def message_json(workspace: SlackWorkspace, message: SlackMessage, origin: str) -> JsonObject:
    """A message as chat.postMessage returns it and as interaction payloads carry it."""
    out: JsonObject = {"type": "message", "text": message.text, "user": message.user, "ts": message.ts}
    if message.bot_id:
        out.update(bot_id=message.bot_id, app_id=workspace.bot.app_id, bot_profile=bot_profile(workspace))
    out["team"] = workspace.team.id
    if message.blocks:
        out["blocks"] = copy.deepcopy(message.blocks)
    if message.files:
        out["files"] = [file_json(workspace, workspace.file(fid), origin) for fid in message.files]
        out["upload"] = True
    if message.metadata:
        out["metadata"] = copy.deepcopy(message.metadata)
    if message.edited_ts:
        out["edited"] = {"user": message.user, "ts": message.edited_ts}
    if message.is_reply and message.thread_ts:
        out["thread_ts"] = message.thread_ts
        parent = _parent(workspace, message)
        if parent is not None:
            out["parent_user_id"] = parent.user
    elif not message.ephemeral:
        replies = [r for r in workspace.replies(message.channel, message.ts) if not r.ephemeral]
        if replies:
            users = list(dict.fromkeys(r.user for r in replies if r.user))
            out.update(
                thread_ts=message.ts,
                reply_count=len(replies),
                reply_users_count=len(users),
                latest_reply=replies[-1].ts,
                reply_users=users,
                is_locked=False,
                subscribed=False,
            )
    return out


def _parent(workspace: SlackWorkspace, message: SlackMessage) -> SlackMessage | None:
    try:
        return workspace.message(message.channel, message.thread_ts or "")
    except KeyError:
        return None


def view_json(workspace: SlackWorkspace, view: SlackView, state: JsonObject | None = None) -> JsonObject:
    body = view.view
    return {
        "id": view.id,
        "team_id": workspace.team.id,
        "type": body.get("type", "modal"),
        "blocks": copy.deepcopy(body.get("blocks", [])),
        "private_metadata": body.get("private_metadata", ""),
        "callback_id": body.get("callback_id", ""),
        "state": state or {"values": {}},
        "hash": view.hash,
        "title": copy.deepcopy(body.get("title")),
        "clear_on_close": bool(body.get("clear_on_close", False)),
        "notify_on_close": bool(body.get("notify_on_close", False)),
        "close": copy.deepcopy(body.get("close")),
        "submit": copy.deepcopy(body.get("submit")),
        "previous_view_id": view.previous_view_id,
        "root_view_id": view.root_view_id,
        "app_id": workspace.bot.app_id,
        "external_id": view.external_id or "",
        "app_installed_team_id": workspace.team.id,
        "bot_id": workspace.bot.bot_id,
    }


def file_json(workspace: SlackWorkspace, file: SlackFile, origin: str) -> JsonObject:
    mimetype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    extension = file.name.rsplit(".", 1)[-1].lower() if "." in file.name else "binary"
    base = f"{origin}/files-pri/{workspace.team.id}-{file.id}/{file.name}"
    public: dict[str, Any] = {}
    private: dict[str, Any] = {}
    for channel_id in file.channels:
        channel = workspace.find_channel(channel_id)
        shares = private if channel is None or channel.is_private else public
        shares[channel_id] = [{"reply_users": [], "reply_count": 0, "channel_name": channel.name if channel else ""}]
    return {
        "id": file.id,
        "created": file.created,
        "timestamp": file.created,
        "name": file.name,
        "title": file.title,
        "mimetype": mimetype,
        "filetype": extension,
        "pretty_type": extension.upper(),
        "user": file.user,
        "user_team": workspace.team.id,
        "editable": False,
        "size": len(file.content),
        "mode": "hosted",
        "is_external": False,
        "external_type": "",
        "is_public": bool(public),
        "public_url_shared": False,
        "display_as_bot": False,
        "username": "",
        "url_private": base,
        "url_private_download": f"{origin}/files-pri/{workspace.team.id}-{file.id}/download/{file.name}",
        "permalink": f"https://{workspace.team.domain}.slack.com/files/{file.user}/{file.id}/{file.name}",
        "channels": [c for c in file.channels if c.startswith("C")],
        "groups": [c for c in file.channels if c.startswith("G")],
        "ims": [c for c in file.channels if c.startswith("D")],
        "comments_count": 0,
        "shares": {key: value for key, value in (("public", public), ("private", private)) if value},
        "has_rich_preview": False,
        "alt_txt": file.alt_txt,
    }


def dm_json(channel: Channel, created: int) -> JsonObject:
    return {
        "id": channel.id,
        "created": created,
        "is_im": channel.is_im,
        "is_mpim": channel.is_mpim,
        "is_org_shared": False,
        "user": channel.im_user,
        "last_read": "0000000000.000000",
        "latest": None,
        "unread_count": 0,
        "unread_count_display": 0,
        "is_open": True,
        "priority": 0,
    }


def channel_name_for_payload(channel: Channel) -> str:
    """Interaction payloads name a DM ``directmessage`` and a group DM ``privategroup``."""
    if channel.is_im:
        return "directmessage"
    if channel.is_mpim:
        return "privategroup"
    return channel.name
