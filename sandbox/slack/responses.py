"""``POST /response/{id}``: the response_url of a slash command or a button click.

Slack's rules: a JSON body with ``text`` / ``blocks``; ``response_type`` ``ephemeral`` (default,
seen only by the user who acted) or ``in_channel``; ``replace_original`` / ``delete_original`` act
on the message whose button was clicked (for a slash command: on the last message this URL
posted); ``thread_ts`` posts in a thread. A URL works 5 times within 30 minutes. Success is
``200 {"ok": true}``. UNCONFIRMED, chosen here: errors are JSON ``{"ok": false, "error": …}``
with 404 ``expired_url`` / ``used_url`` / ``no_service`` and 400 ``invalid_payload`` /
``no_text`` / ``invalid_blocks``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.slack.blocks import BlocksFormatError, normalize_blocks, parse_blocks, validate_blocks
from sandbox.slack.model import JsonObject, MessageRef, ResponsePost, ResponseUrl
from sandbox.slack.web_api import RouteHandler
from sandbox.slack.workspace import RESPONSE_URL_MAX_USES, RESPONSE_URL_TTL, SlackWorkspace


class _RefusedError(Exception):
    def __init__(self, status: int, error: str, messages: list[str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.messages = messages or []


def response_url_handler(workspace: SlackWorkspace) -> RouteHandler:
    async def handle(request: web.Request) -> web.Response:
        response_url = workspace.find_response_url(request.match_info["id"])
        if response_url is None:
            return _refusal(_RefusedError(404, "no_service"))
        payload: Any = None
        try:
            payload = await _payload(request)
            message = await _apply(workspace, response_url, payload)
        except _RefusedError as refused:
            post = ResponsePost(
                response_url.id, payload or {}, refused.status, refused.error, None, workspace.clock.now()
            )
            await workspace.record_response_post(post)
            return _refusal(refused)
        response_url.uses += 1
        await workspace.record_response_post(
            ResponsePost(response_url.id, payload, 200, None, message, workspace.clock.now())
        )
        return web.json_response({"ok": True})

    return handle


def _refusal(refused: _RefusedError) -> web.Response:
    body: JsonObject = {"ok": False, "error": refused.error}
    if refused.messages:
        body["response_metadata"] = {"messages": refused.messages}
    return web.json_response(body, status=refused.status)


async def _payload(request: web.Request) -> JsonObject:
    try:
        payload = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _RefusedError(400, "invalid_payload") from None
    if not isinstance(payload, dict):
        raise _RefusedError(400, "invalid_payload")
    return payload


async def _apply(workspace: SlackWorkspace, response_url: ResponseUrl, payload: JsonObject) -> MessageRef | None:
    now = workspace.clock.now()
    if now - response_url.issued_at > RESPONSE_URL_TTL:
        raise _RefusedError(404, "expired_url")
    if response_url.uses >= RESPONSE_URL_MAX_USES:
        raise _RefusedError(404, "used_url")
    text = payload.get("text")
    if text is not None and not isinstance(text, str):
        raise _RefusedError(400, "invalid_payload")
    blocks = None
    if payload.get("blocks") is not None:
        try:
            blocks = parse_blocks(payload["blocks"])
        except BlocksFormatError as exc:
            raise _RefusedError(400, "invalid_blocks_format", [f"[ERROR] {exc}"]) from exc
        errors = validate_blocks(blocks, "message")
        if errors:
            raise _RefusedError(400, "invalid_blocks", [f"[ERROR] {e}" for e in errors])
        blocks = normalize_blocks(blocks)
    original = response_url.source if response_url.kind == "block_actions" else response_url.last_posted
    if original is not None and workspace.message(original.channel, original.ts).deleted:
        original = None
    replace = payload.get("replace_original")
    if replace is None:
        replace = response_url.kind == "block_actions" and workspace.response_url_replaces_by_default
    if _truthy(payload.get("delete_original")):
        if original is not None:
            await workspace.delete_message(original, via="response_url")
        if not text and not blocks:
            return original
    elif _truthy(replace) and original is not None:
        updated = await workspace.update_message(original, text=text or "", blocks=blocks or [], via="response_url")
        return updated.ref
    if not text and not blocks:
        raise _RefusedError(400, "no_text")
    in_channel = payload.get("response_type") == "in_channel"
    thread_ts = payload.get("thread_ts")
    message = await workspace.post_message(
        response_url.channel,
        text=text or "",
        blocks=blocks,
        thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else None,
        visible_to=None if in_channel else response_url.user,
        via="response_url",
    )
    response_url.last_posted = message.ref
    return message.ref


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
