"""What Slack sends a bot: slash-command fields and ``block_actions`` / ``view_submission`` payloads,
built from the workspace's real records (the clicked message's stored blocks, the view as opened)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sandbox.slack.model import Channel, JsonObject, SlackMessage, SlackView, User
from sandbox.slack.render import channel_name_for_payload, message_json, view_json
from sandbox.slack.workspace import SlackWorkspace


def user_object(workspace: SlackWorkspace, user: User) -> JsonObject:
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": workspace.team.id}


def slash_command_fields(
    workspace: SlackWorkspace,
    *,
    user: User,
    channel: Channel,
    command: str,
    text: str,
    response_url: str,
    trigger_id: str,
) -> list[tuple[str, str]]:
    """The form fields of a slash command, in the order Slack sends them."""
    return [
        ("token", workspace.verification_token),
        ("team_id", workspace.team.id),
        ("team_domain", workspace.team.domain),
        ("channel_id", channel.id),
        ("channel_name", channel_name_for_payload(channel)),
        ("user_id", user.id),
        ("user_name", user.name),
        ("command", command),
        ("text", text),
        ("api_app_id", workspace.bot.app_id),
        ("is_enterprise_install", "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id),
    ]


def find_element(
    message: SlackMessage, action_id: str, value: str | None, block_id: str | None
) -> tuple[str, JsonObject]:
    """The (block_id, element) a person clicks: by action_id, narrowed by block_id or a button's value."""
    candidates: list[tuple[str, JsonObject]] = []
    for block in message.blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        elements: list[Any] = list(block.get("elements", [])) if block.get("type") == "actions" else []
        elements += [block[key] for key in ("accessory", "element") if isinstance(block.get(key), dict)]
        candidates.extend(
            (str(block.get("block_id", "")), element)
            for element in elements
            if isinstance(element, dict) and element.get("action_id") == action_id
        )
    buttons_with_value = [c for c in candidates if c[1].get("type") == "button" and c[1].get("value") == value]
    if value is not None and buttons_with_value:
        candidates = buttons_with_value
    if not candidates:
        raise ValueError(
            f"no element with action_id {action_id!r} in message {message.ts} in {message.channel}; "
            f"it has: {', '.join(message.action_ids()) or 'no interactive elements'}"
        )
    if len(candidates) > 1:
        raise ValueError(f"{len(candidates)} elements have action_id {action_id!r}: pass block_id= or a button value=")
    return candidates[0]


def action_object(element: JsonObject, block_id: str, value: Any, action_ts: str) -> JsonObject:
    """One ``actions[]`` item: what was clicked or chosen, shaped per element type."""
    kind = str(element.get("type"))
    action: JsonObject = {"action_id": element["action_id"], "block_id": block_id, "type": kind}
    options = _options(element)
    if kind == "button":
        action["text"] = copy.deepcopy(element.get("text"))
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
    elif kind in ("static_select", "radio_buttons", "overflow"):
        action["selected_option"] = _option(options, value, kind)
    elif kind in ("multi_static_select", "checkboxes"):
        wanted = [value] if isinstance(value, str) else list(value or [])
        action["selected_options"] = [_option(options, v, kind) for v in wanted]
    elif kind == "external_select":
        action["selected_option"] = {"text": {"type": "plain_text", "text": str(value)}, "value": str(value)}
    else:
        key = _SELECTED.get(kind)
        if key is None:
            raise ValueError(f"clicking a {kind} element is not supported by the sandbox")
        action[key] = value
    if "placeholder" in element:
        action["placeholder"] = copy.deepcopy(element["placeholder"])
    action["action_ts"] = action_ts
    return action


_SELECTED = {
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
}


def _options(element: JsonObject) -> list[JsonObject]:
    if isinstance(element.get("options"), list):
        return [o for o in element["options"] if isinstance(o, dict)]
    groups = element.get("option_groups")
    if isinstance(groups, list):
        return [o for g in groups if isinstance(g, dict) for o in g.get("options", []) if isinstance(o, dict)]
    return []


def _option(options: list[JsonObject], value: Any, kind: str) -> JsonObject:
    for option in options:
        if option.get("value") == value:
            return copy.deepcopy(option)
    raise ValueError(f"{kind}: no option with value {value!r}; values: {[o.get('value') for o in options]}")


def block_actions_payload(
    workspace: SlackWorkspace,
    *,
    user: User,
    message: SlackMessage,
    action: JsonObject,
    response_url: str,
    trigger_id: str,
    origin: str,
) -> JsonObject:
    channel = workspace.find_channel(message.channel)
    container: JsonObject = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": message.channel,
        "is_ephemeral": message.ephemeral,
    }
    if message.is_reply:
        container["thread_ts"] = message.thread_ts
    payload: JsonObject = {
        "type": "block_actions",
        "user": user_object(workspace, user),
        "api_app_id": workspace.bot.app_id,
        "token": workspace.verification_token,
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": workspace.team.id, "domain": workspace.team.domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": channel_name_for_payload(channel) if channel else ""},
    }
    if not message.ephemeral:
        payload["message"] = message_json(workspace, message, origin)
    payload.update(state={"values": {}}, response_url=response_url, actions=[action])
    return payload


def view_state(view: SlackView, values: Mapping[str, Any]) -> JsonObject:
    """``view.state.values`` for a submission: ``values`` maps an input's action_id to what was entered."""
    state: dict[str, JsonObject] = {}
    for block in view.view.get("blocks", []):
        element = block.get("element") if block.get("type") == "input" else None
        if not isinstance(element, dict) or "action_id" not in element:
            continue
        action_id = element["action_id"]
        entered = values.get(action_id, element.get("initial_value"))
        kind = str(element.get("type"))
        item: JsonObject = {"type": kind}
        if kind in ("static_select", "radio_buttons"):
            item["selected_option"] = _option(_options(element), entered, kind) if entered is not None else None
        elif kind in ("multi_static_select", "checkboxes"):
            wanted = [entered] if isinstance(entered, str) else list(entered or [])
            item["selected_options"] = [_option(_options(element), v, kind) for v in wanted]
        elif kind in _SELECTED:
            item[_SELECTED[kind]] = entered
        else:
            item["value"] = entered
        state.setdefault(str(block.get("block_id", "")), {})[action_id] = item
    unknown = set(values) - {a for block in state.values() for a in block}
    if unknown:
        raise ValueError(f"view {view.id} has no input with action_id {', '.join(sorted(unknown))}")
    return {"values": state}


def view_submission_payload(
    workspace: SlackWorkspace, *, user: User, view: SlackView, values: Mapping[str, Any], trigger_id: str
) -> JsonObject:
    return {
        "type": "view_submission",
        "team": {"id": workspace.team.id, "domain": workspace.team.domain},
        "user": user_object(workspace, user),
        "api_app_id": workspace.bot.app_id,
        "token": workspace.verification_token,
        "trigger_id": trigger_id,
        "view": view_json(workspace, view, view_state(view, values)),
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
