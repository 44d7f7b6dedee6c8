"""Modals: ``views.open`` / ``views.push`` (with a trigger_id: one use, 3 seconds) and ``views.update``."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from sandbox.slack.blocks import BlocksFormatError, normalize_blocks, parse_json_arg, validate_view
from sandbox.slack.model import JsonObject, SlackView
from sandbox.slack.render import view_json
from sandbox.slack.web_api import ApiError, ApiRequest, Method
from sandbox.slack.workspace import TRIGGER_TTL, SlackWorkspace


def _view_arg(request: ApiRequest) -> JsonObject:
    raw = request.args.get("view")
    if raw is None:
        raise ApiError("invalid_arguments", "[ERROR] missing required field: view")
    try:
        view: Any = parse_json_arg(raw, "view")
    except BlocksFormatError as exc:
        raise ApiError("invalid_arguments", f"[ERROR] {exc}") from exc
    errors = validate_view(view)
    if errors:
        raise ApiError("invalid_arguments", *(f"[ERROR] {e}" for e in errors))
    normalized: JsonObject = copy.deepcopy(view)
    normalized["blocks"] = normalize_blocks(view["blocks"])
    return normalized


def _new_hash(workspace: SlackWorkspace) -> str:
    return f"{int(workspace.clock.now().timestamp())}.{secrets.token_hex(4)}"


def _external_id(workspace: SlackWorkspace, view: JsonObject, current: SlackView | None = None) -> str | None:
    external_id = view.get("external_id") or None
    if external_id is not None:
        other = workspace.find_view(external_id=external_id)
        if other is not None and other is not current:
            raise ApiError("duplicate_external_id")
    return external_id


async def _open(request: ApiRequest, *, push: bool) -> JsonObject:
    workspace = request.workspace
    trigger_id = request.required("trigger_id")
    trigger = workspace.find_trigger(trigger_id)
    if trigger is None:
        raise ApiError("invalid_arguments", "invalid `trigger_id`")
    if trigger.used:
        raise ApiError("exchanged_trigger_id")
    if workspace.clock.now() - trigger.issued_at > TRIGGER_TTL:
        raise ApiError("expired_trigger_id")
    body = _view_arg(request)
    external_id = _external_id(workspace, body)
    trigger.used = True
    view_id = workspace.next_id("V")
    root = view_id
    previous = None
    if push:
        stack = workspace.views(trigger.user, include_closed=False)
        if stack:
            previous = stack[-1].id
            root = stack[-1].root_view_id
    view = SlackView(
        id=view_id,
        user=trigger.user,
        view=body,
        hash=_new_hash(workspace),
        external_id=external_id,
        root_view_id=root,
        previous_view_id=previous,
    )
    await workspace.save_view(view)
    return {"ok": True, "view": view_json(workspace, view)}


async def views_open(request: ApiRequest) -> JsonObject:
    return await _open(request, push=False)


async def views_push(request: ApiRequest) -> JsonObject:
    return await _open(request, push=True)


async def views_update(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    view_id = request.text("view_id")
    external_id = request.text("external_id")
    if not view_id and not external_id:
        raise ApiError("invalid_arguments", "[ERROR] either view_id or external_id is required")
    view = workspace.find_view(view_id=view_id or None, external_id=external_id)
    if view is None:
        raise ApiError("not_found")
    expected = request.text("hash")
    if expected and expected != view.hash:
        raise ApiError("hash_conflict")
    body = _view_arg(request)
    view.external_id = _external_id(workspace, body, view) or view.external_id
    view.view = body
    view.hash = _new_hash(workspace)
    await workspace.save_view(view)
    return {"ok": True, "view": view_json(workspace, view)}


METHODS = {
    "views.open": Method(views_open, None),
    "views.push": Method(views_push, None),
    "views.update": Method(views_update, None),
}
