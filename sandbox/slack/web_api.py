"""The Web API frame: ``/api/{method}`` as Slack serves it.

Arguments come from the query string and from a form, multipart or JSON body (slack_sdk sends
``auth.test`` and ``files.getUploadURLExternal`` as query parameters, ``chat.*`` and ``views.*``
as JSON, ``users.*`` as GET). The token comes from ``Authorization: Bearer`` or a ``token``
argument — never from a JSON body, as Slack ignores it there. Errors are ``ok: false`` with
HTTP 200; only rate limiting answers 429 with ``Retry-After`` in whole seconds.

Two tokens exist: the bot token (``xoxb-…``) for every method but ``apps.connections.open``, which
takes only the app-level token (``xapp-…``), and only in the Authorization header. Either token on
the other's methods is ``not_allowed_token_type``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from sandbox.slack.blocks import BlocksFormatError, normalize_blocks, parse_blocks, validate_blocks
from sandbox.slack.model import JsonObject
from sandbox.slack.workspace import SlackWorkspace

JSON_ARGS = ("blocks", "attachments", "view", "files", "metadata")


class ApiError(Exception):
    """An ``ok: false`` answer: ``error`` is Slack's code, ``extra`` fields go next to it."""

    def __init__(self, error: str, *messages: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = dict(extra)
        if messages:
            self.extra["response_metadata"] = {"messages": list(messages)}

    def body(self) -> JsonObject:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class ApiRequest:
    method: str
    args: dict[str, Any]
    token: str | None
    origin: str
    """``scheme://host:port`` of this server, for the URLs it hands out (uploads, files)."""
    workspace: SlackWorkspace
    parse_error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token_in_header: bool = False
    """The token came as ``Authorization: Bearer`` (not as a ``token`` argument)."""

    def text(self, name: str) -> str | None:
        value = self.args.get(name)
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise ApiError("invalid_arguments", f"[ERROR] {name} must be a string")
        return str(value)

    def required(self, name: str, error: str = "invalid_arguments") -> str:
        value = self.text(name)
        if value is None or value == "":
            if error == "invalid_arguments":
                raise ApiError(error, f"[ERROR] missing required field: {name}")
            raise ApiError(error)
        return value

    def flag(self, name: str) -> bool:
        value = self.args.get(name)
        return value is True or (isinstance(value, (str, int)) and str(value).lower() in ("1", "true"))

    def json_arg(self, name: str) -> Any:
        """A JSON-typed argument (blocks, view, files…): decoded from a string when it came in a form."""
        value = self.args.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ApiError("invalid_arguments", f"[ERROR] failed to parse {name}: {exc.msg}") from exc
        return value


def message_blocks(request: ApiRequest, name: str = "blocks") -> list[JsonObject] | None:
    """The ``blocks`` argument validated for a message: ``invalid_blocks_format`` / ``invalid_blocks``."""
    if request.args.get(name) is None:
        return None
    try:
        blocks = parse_blocks(request.args[name])
    except BlocksFormatError as exc:
        raise ApiError("invalid_blocks_format", f"[ERROR] {exc}") from exc
    errors = validate_blocks(blocks, "message")
    if errors:
        raise ApiError("invalid_blocks", *(f"[ERROR] {e}" for e in errors), errors=errors)
    return normalize_blocks(blocks)


Handler = Callable[[ApiRequest], Awaitable[JsonObject]]
RouteHandler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True)
class Method:
    handler: Handler
    scope: str | None
    """The scope the method needs (``missing_scope`` without it); None for none."""
    token: Literal["bot", "app"] = "bot"
    """Which token the method takes: the bot token, or the app-level token (``apps.connections.open``)."""


async def parse_request(request: web.Request, workspace: SlackWorkspace) -> ApiRequest:
    """Read method, arguments and token from any of the ways slack_sdk sends them."""
    args: dict[str, Any] = dict(request.query)
    token = args.pop("token", None)
    parse_error: str | None = None
    content_type = request.content_type
    if request.can_read_body:
        if content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                body, parse_error = None, "invalid_json"
            if isinstance(body, dict):
                body.pop("token", None)  # Slack does not read a token from a JSON body
                args.update(body)
            elif parse_error is None:
                parse_error = "invalid_json"
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            args.update({key: value for key, value in form.items() if isinstance(value, str)})
            token = args.pop("token", token)
        elif content_type == "text/plain":
            args.update(parse_qsl(await request.text(), keep_blank_values=True))
            token = args.pop("token", token)
        else:
            parse_error = "invalid_post_type"
    authorization = request.headers.get("Authorization", "")
    in_header = authorization.lower().startswith("bearer ")
    if in_header:
        token = authorization[7:].strip()
    return ApiRequest(
        token_in_header=in_header,
        method=request.match_info.get("method", ""),
        args=args,
        token=token,
        origin=f"{request.scheme}://{request.host}",
        workspace=workspace,
        parse_error=parse_error,
    )


_PARSED = web.RequestKey("slack_api_request", ApiRequest)


def recording_middleware(workspace: SlackWorkspace) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Outermost: record every request but ``/_sandbox/`` (path and status, :meth:`SlackWorkspace.requests`);
    parse every ``/api/`` request once and record it with whatever answered it (the method, a 429 of the
    fault book, or a dropped connection as status 0)."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        status = 0  # a dropped connection
        try:
            response = await _record_api_call(workspace, request, handler)
        except web.HTTPException as refused:  # e.g. 404 for a path the sandbox does not serve
            status = refused.status
            raise
        else:
            status = response.status
        finally:
            await workspace.record_request(request.method, request.path, status)
        return response

    return middleware


async def _record_api_call(
    workspace: SlackWorkspace, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    parsed = await parse_request(request, workspace)
    request[_PARSED] = parsed
    try:
        response = await handler(request)
    except ConnectionResetError:
        await workspace.record_call(parsed.method, parsed.args, parsed.token, 0, None)
        raise
    body: Mapping[str, Any] | None = None
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        try:
            decoded = json.loads(response.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            decoded = None
        body = decoded if isinstance(decoded, dict) else None
    await workspace.record_call(parsed.method, parsed.args, parsed.token, response.status, body)
    return response


def slack_error_response(status: int, retry_after_s: int) -> web.Response:
    """The fault middleware's answer: Slack's 429 (``ratelimited`` + Retry-After) or a 5xx."""
    error = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}.get(status, "fatal_error")
    headers = {"Retry-After": str(int(retry_after_s))} if status in (429, 503) else {}
    return web.json_response({"ok": False, "error": error}, status=status, headers=headers)


def api_handler(workspace: SlackWorkspace, methods: Mapping[str, Method]) -> RouteHandler:
    async def handle(request: web.Request) -> web.Response:
        parsed = request.get(_PARSED) or await parse_request(request, workspace)
        headers: dict[str, str] = {}
        try:
            result = await _dispatch(parsed, methods, headers)
        except ApiError as exc:
            return web.json_response(exc.body(), headers=headers)
        except RateLimitedError as exc:
            headers["Retry-After"] = str(exc.retry_after_s)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        return web.json_response(result, headers=headers)

    return handle


class RateLimitedError(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited for {retry_after_s}s")
        self.retry_after_s = retry_after_s


async def _dispatch(request: ApiRequest, methods: Mapping[str, Method], headers: dict[str, str]) -> JsonObject:
    workspace = request.workspace
    method = methods.get(request.method)
    if method is None:
        raise ApiError("unknown_method", req_method=request.method)
    if request.parse_error:
        raise ApiError(request.parse_error)
    if not request.token:
        raise ApiError("not_authed")
    scopes = _token_scopes(request, method)
    headers["x-oauth-scopes"] = ",".join(scopes)
    if method.scope:
        headers["x-accepted-oauth-scopes"] = method.scope
        if method.scope not in scopes:
            raise ApiError("missing_scope", needed=method.scope, provided=",".join(scopes))
    channel = request.args.get("channel")
    retry_after = workspace.rate_limits.check(
        request.method, channel if isinstance(channel, str) else None, workspace.clock.now()
    )
    if retry_after is not None:
        raise RateLimitedError(retry_after)
    return await method.handler(request)


def _token_scopes(request: ApiRequest, method: Method) -> tuple[str, ...]:
    """The scopes of the request's token if it is the kind ``method`` takes; Slack's error otherwise."""
    workspace = request.workspace
    app_token = workspace.app_token
    if method.token == "app":
        if request.token == workspace.bot.token:
            raise ApiError("not_allowed_token_type")
        if app_token is None or request.token != app_token or not request.token_in_header:
            raise ApiError("invalid_auth")
        return workspace.app_token_scopes
    if app_token is not None and request.token == app_token:
        raise ApiError("not_allowed_token_type")
    if request.token != workspace.bot.token:
        raise ApiError("invalid_auth")
    return workspace.bot.scopes
