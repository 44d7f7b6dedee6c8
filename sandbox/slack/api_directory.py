"""Who is who: ``auth.test``, ``users.info``, ``users.lookupByEmail``, ``usergroups.users.list``, ``conversations.open``,
``conversations.info`` (``is_member``: whether the bot is in the channel; a private channel needs ``groups:read``,
and one the bot is not in is ``channel_not_found``, as Slack answers)."""

from __future__ import annotations

from sandbox.slack.model import JsonObject
from sandbox.slack.render import dm_json, user_json
from sandbox.slack.web_api import ApiError, ApiRequest, Method

MAX_GROUP_DM_USERS = 8


async def auth_test(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    return {
        "ok": True,
        "url": f"https://{workspace.team.domain}.slack.com/",
        "team": workspace.team.name,
        "user": workspace.bot.name,
        "team_id": workspace.team.id,
        "user_id": workspace.bot.user_id,
        "bot_id": workspace.bot.bot_id,
        "is_enterprise_install": False,
    }


async def users_info(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    user = workspace.find_user(request.text("user") or "")
    if user is None:
        raise ApiError("user_not_found")
    return {"ok": True, "user": user_json(workspace, user, locale=request.flag("include_locale"))}


async def users_lookup_by_email(request: ApiRequest) -> JsonObject:
    """Deactivated users are not found by email (Slack: ``users_not_found``)."""
    workspace = request.workspace
    user = workspace.user_by_email(request.required("email"))
    if user is None or user.deleted:
        raise ApiError("users_not_found")
    return {"ok": True, "user": user_json(workspace, user)}


async def usergroups_users_list(request: ApiRequest) -> JsonObject:
    group = request.workspace.usergroups.get(request.required("usergroup"))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"ok": True, "users": list(group.users)}


async def conversations_open(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    channel_id = request.text("channel")
    users_arg = request.text("users")
    if channel_id:
        channel = workspace.find_channel(channel_id)
        if channel is None:
            raise ApiError("channel_not_found")
        if not (channel.is_im or channel.is_mpim):
            raise ApiError("method_not_supported_for_channel_type")
        already = True
    elif users_arg:
        user_ids = [u.strip() for u in users_arg.split(",") if u.strip()]
        if len(user_ids) > MAX_GROUP_DM_USERS:
            raise ApiError("too_many_users")
        for user_id in user_ids:
            user = workspace.find_user(user_id)
            if user is None:
                raise ApiError("user_not_found")
            if user.deleted:
                raise ApiError("user_disabled")
        channel, already = await workspace.open_dm(user_ids)
    else:
        raise ApiError("users_list_not_supplied")
    body: JsonObject = {"ok": True}
    if already:
        body.update(no_op=True, already_open=True)
    if request.flag("return_im") or already:
        body["channel"] = dm_json(channel, int(workspace.clock.now().timestamp()))
    else:
        body["channel"] = {"id": channel.id}
    return body


async def conversations_info(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    channel = workspace.find_channel(request.required("channel"))
    is_member = channel is not None and workspace.bot.user_id in channel.members
    if channel is None or channel.is_im or channel.is_mpim or (channel.is_private and not is_member):
        raise ApiError("channel_not_found")
    if channel.is_private and "groups:read" not in workspace.bot.scopes:
        raise ApiError("missing_scope", needed="groups:read", provided=",".join(workspace.bot.scopes))
    return {
        "ok": True,
        "channel": {
            "id": channel.id,
            "name": channel.name,
            "is_channel": not channel.is_private,
            "is_group": channel.is_private,
            "is_private": channel.is_private,
            "is_archived": False,
            "is_member": is_member,
        },
    }


METHODS = {
    "auth.test": Method(auth_test, None),
    "users.info": Method(users_info, "users:read"),
    "users.lookupByEmail": Method(users_lookup_by_email, "users:read.email"),
    "usergroups.users.list": Method(usergroups_users_list, "usergroups:read"),
    "conversations.open": Method(conversations_open, "im:write"),
    "conversations.info": Method(conversations_info, "channels:read"),
}
