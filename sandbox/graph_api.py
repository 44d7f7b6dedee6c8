"""Microsoft Graph v1.0 at ``https://127.0.0.1:PORT/v1.0``: users, the tenant's domains, mail and ``$batch``.

Every request is turned into a :class:`~sandbox.graph_core.Call` and dispatched by
:meth:`GraphService.dispatch`, the same path ``$batch`` items take.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from aiohttp import web

from sandbox.faults import FaultBook
from sandbox.graph_core import (
    USER_READ_APP,
    USER_READ_DELEGATED,
    Call,
    GraphError,
    Reply,
    error_body,
    error_reply,
    require,
    signed_in_user,
)
from sandbox.graph_domains import list_domains
from sandbox.graph_mail import list_messages, mailbox_settings, send_mail
from sandbox.http import fault_middleware
from sandbox.odata import FilterSyntaxError, Schema, UnsupportedQueryError, parse_filter
from sandbox.state import Tenant, User
from sandbox.tokens import InvalidTokenError, TokenIssuer, bearer

BATCH_MAX = 20
DEFAULT_USER_FIELDS = [
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
]  # fmt: skip
USER_FIELDS = [*DEFAULT_USER_FIELDS, "accountEnabled", "proxyAddresses", "userType", "mailNickname", "otherMails"]
TOKEN_PROBLEMS = {
    "empty": "Access token is empty.",
    "expired": "Lifetime validation failed, the token is expired.",
    "audience": "Access token validation failure. Invalid audience.",
}
MAIL_SEGMENTS = {"sendmail", "messages", "mailboxsettings", "mailfolders"}


def user_json(user: User) -> dict[str, Any]:
    return {
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": user.given_name,
        "jobTitle": user.job_title,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": user.surname,
        "userPrincipalName": user.upn,
        "id": user.id,
        "accountEnabled": user.account_enabled,
        "proxyAddresses": list(user.proxy_addresses),
        "userType": user.user_type,
        "mailNickname": user.alias,
        "otherMails": [],
    }


def _user_value(user: User, prop: str) -> Any:
    return user_json(user).get(prop)


USER_SCHEMA = Schema(
    entity="User",
    operators={
        "mail": frozenset({"eq", "startswith"}),
        "userPrincipalName": frozenset({"eq", "startswith"}),
        "displayName": frozenset({"eq", "startswith"}),
        "givenName": frozenset({"eq", "startswith"}),
        "surname": frozenset({"eq", "startswith"}),
        "mailNickname": frozenset({"eq", "startswith"}),
        "id": frozenset({"eq"}),
        "accountEnabled": frozenset({"eq"}),
        "userType": frozenset({"eq"}),
        "jobTitle": frozenset({"eq", "startswith"}),
    },
    collections={"proxyAddresses": frozenset({"eq", "startswith"}), "otherMails": frozenset({"eq", "startswith"})},
    getter=_user_value,
)


@dataclass
class GraphService:
    tenant: Tenant
    issuer: TokenIssuer
    faults: FaultBook
    in_flight: dict[tuple[str, str], int] = field(default_factory=dict)

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                self._mailbox_concurrency,
                fault_middleware(
                    "graph", self.faults, self._fault_response, burst_exempt=lambda r: r.path.endswith("/$batch")
                ),
            ],
            client_max_size=200 * 1024 * 1024,
        )
        app.router.add_route("*", "/v1.0/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        call = Call(
            method=request.method,
            path=[p for p in request.match_info["tail"].split("/") if p],
            query=dict(request.query),
            body=await request.read(),
            headers={k.lower(): v for k, v in request.headers.items()},
            base_url=f"https://{request.host}",
        )
        reply = self.dispatch(call, token=bearer(request.headers.get("Authorization")))
        return self._response(reply, call)

    def _response(self, reply: Reply, call: Call) -> web.Response:
        headers = {"request-id": call.request_id, "client-request-id": call.client_request_id, **reply.headers}
        if reply.body is None:
            return web.Response(status=reply.status, headers=headers)
        return web.Response(
            status=reply.status,
            text=json.dumps(reply.body),
            content_type="application/json",
            charset="utf-8",
            headers=headers,
        )

    def dispatch(self, call: Call, token: str | None) -> Reply:
        now = self.tenant.now()
        try:
            if call.claims is None:
                call.claims = self._authenticate(token)
            return self._route(call, token)
        except GraphError as exc:
            return error_reply(exc, call, now)

    def _authenticate(self, token: str | None) -> Any:
        try:
            return self.issuer.validate(token, "graph")
        except InvalidTokenError as exc:
            message = TOKEN_PROBLEMS.get(exc.problem, "Access token validation failure.")
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                message,
                {
                    "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                    'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
                },
            ) from exc

    def _route(self, call: Call, token: str | None) -> Reply:
        path = call.path
        lowered = [p.lower() for p in path]
        if lowered == ["$batch"] and call.method == "POST":
            return self._batch(call, token)
        if lowered[:1] == ["me"]:
            target, rest = "me", lowered[1:]
        elif lowered[:1] == ["users"] and len(path) >= 2:
            target, rest = path[1], lowered[2:]
        elif lowered == ["users"] and call.method == "GET":
            return self._list_users(call)
        elif lowered == ["domains"] and call.method == "GET":
            return list_domains(self.tenant, call)
        else:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{path[0] if path else ''}'.")
        if not rest and call.method == "GET":
            return self._get_user(call, target)
        if rest == ["sendmail"] and call.method == "POST":
            return send_mail(self.tenant, call, target)
        if rest == ["messages"] and call.method == "GET":
            return list_messages(self.tenant, call, target, None)
        if len(rest) == 3 and rest[0] == "mailfolders" and rest[2] == "messages" and call.method == "GET":
            return list_messages(self.tenant, call, target, path[-2] if target != "me" else path[2])
        if rest == ["mailboxsettings"] and call.method == "GET":
            return mailbox_settings(self.tenant, call, target)
        if rest and rest[0] in MAIL_SEGMENTS:
            raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0] if rest else target}'.")

    # --- users -----------------------------------------------------------------------------------
    def _check_user_read(self, call: Call, own: bool) -> None:
        assert call.claims is not None
        delegated = USER_READ_DELEGATED | ({"User.Read"} if own else set())
        require(
            call.claims,
            USER_READ_APP,
            frozenset(delegated),
            GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
        )

    def _get_user(self, call: Call, target: str) -> Reply:
        assert call.claims is not None
        if target == "me":
            user = signed_in_user(self.tenant, call.claims)
        else:
            found = self.tenant.user(target)
            if found is None:
                self._check_user_read(call, own=False)
                raise GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{target}' does not exist or one of its queried reference-property objects are not present.",
                )
            user = found
        self._check_user_read(call, own=call.claims.oid == user.id and not call.claims.app_only)
        fields = self._select(call)
        body = {"@odata.context": f"{call.base_url}/v1.0/$metadata#users/$entity"}
        body.update(_project(user, fields))
        return Reply(200, body)

    def _list_users(self, call: Call) -> Reply:
        self._check_user_read(call, own=False)
        fields = self._select(call)
        users = list(self.tenant.users.values())
        if call.query.get("$filter"):
            try:
                node = parse_filter(call.query["$filter"])
                USER_SCHEMA.check(node)
            except FilterSyntaxError as exc:
                raise GraphError(400, "BadRequest", f"Invalid filter clause: {exc}") from exc
            except UnsupportedQueryError as exc:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"UnsupportedQueryError or invalid query filter clause specified for property '{exc.prop}' of resource 'User'.",
                ) from exc
            users = [u for u in users if USER_SCHEMA.matches(node, u)]
        top = self._top(call)
        offset = _decode_skiptoken(call.query.get("$skiptoken"))
        page = users[offset : offset + top]
        body: dict[str, Any] = {
            "@odata.context": f"{call.base_url}/v1.0/$metadata#users"
            + (f"({','.join(fields)})" if call.query.get("$select") else ""),
            "value": [_project(u, fields) for u in page],
        }
        if offset + top < len(users):
            query = {k: v for k, v in call.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = _encode_skiptoken(offset + top)
            body["@odata.nextLink"] = f"{call.base_url}/v1.0/users?{urlencode(query)}"
        return Reply(200, body)

    def _select(self, call: Call) -> list[str]:
        raw = call.query.get("$select")
        if not raw:
            return DEFAULT_USER_FIELDS
        fields = [f.strip() for f in raw.split(",") if f.strip()]
        for name in fields:
            if name not in USER_FIELDS:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Could not find a property named '{name}' on type 'Microsoft.DirectoryServices.User'.",
                )
        return fields

    def _top(self, call: Call) -> int:
        raw = call.query.get("$top")
        if raw is None:
            return self.tenant.behaviour.graph_default_page_size
        if not raw.isdigit() or not 1 <= int(raw) <= 999:
            raise GraphError(
                400, "Request_BadRequest", f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive."
            )
        return int(raw)

    # --- $batch ----------------------------------------------------------------------------------
    def _batch(self, call: Call, token: str | None) -> Reply:
        try:
            payload = json.loads(call.body or b"null")
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.") from exc
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > BATCH_MAX:
            raise GraphError(
                400, "BadRequest", f"The number of batch requests exceeds the maximum limit of {BATCH_MAX}."
            )
        ids = [str(r.get("id", "")) for r in requests]
        if any(not i for i in ids) or len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique and not empty.")
        statuses: dict[str, int] = {}
        responses = []
        for item, item_id in zip(requests, ids, strict=True):
            depends = item.get("dependsOn") or []
            if not isinstance(depends, list) or any(str(d) not in statuses for d in depends):
                raise GraphError(
                    400, "BadRequest", f"Request '{item_id}' depends on a request that does not precede it."
                )
            if any(statuses[str(d)] >= 400 for d in depends):
                reply = error_reply(GraphError(424, "FailedDependency", "Dependency failed."), call, self.tenant.now())
            else:
                reply = self._batch_item(call, item, token)
            statuses[item_id] = reply.status
            entry: dict[str, Any] = {"id": item_id, "status": reply.status, "headers": dict(reply.headers)}
            if reply.body is not None:
                entry["headers"]["Content-Type"] = "application/json; charset=utf-8"
                entry["body"] = reply.body
            responses.append(entry)
        return Reply(200, {"responses": responses})

    def _batch_item(self, outer: Call, item: dict[str, Any], token: str | None) -> Reply:
        url = str(item.get("url", ""))
        method = str(item.get("method", "GET")).upper()
        parts = urlsplit(url)
        if parts.scheme or not parts.path:
            return error_reply(
                GraphError(400, "BadRequest", "Invalid request URL in batch item."), outer, self.tenant.now()
            )
        path = [p for p in parts.path.split("/") if p]
        if path[:1] == ["v1.0"]:
            path = path[1:]
        body = item.get("body")
        sub = Call(
            method=method,
            path=path,
            query=dict(parse_qsl(parts.query)),
            body=json.dumps(body).encode() if body is not None else b"",
            headers={str(k).lower(): str(v) for k, v in _mapping(item.get("headers")).items()},
            base_url=outer.base_url,
            claims=outer.claims,
            request_id=outer.request_id,
        )
        faults = self.faults.get("graph")
        if self.faults.take_throttle("graph"):
            return Reply(
                429,
                error_body(
                    "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", sub, self.tenant.now()
                ),
                {"Retry-After": retry_after_header(faults.retry_after_s)},
            )
        return self.dispatch(sub, token)

    # --- throttling and faults -------------------------------------------------------------------
    @web.middleware
    async def _mailbox_concurrency(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Graph's Outlook limit: a few concurrent requests per app per mailbox, then 429 ApplicationThrottled."""
        key = _mailbox_key(request)
        if key is None:
            return await handler(request)
        limit = self.tenant.behaviour.graph_mailbox_concurrency
        if self.in_flight.get(key, 0) >= limit:
            return self._fault_response(429, self.tenant.behaviour.graph_retry_after_seconds)
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        try:
            return await handler(request)
        finally:
            self.in_flight[key] -= 1

    def _fault_response(self, status: int, retry_after: int) -> web.Response:
        codes = {
            429: ("ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
            500: ("generalException", "General exception while processing."),
            502: ("BadGateway", "Bad gateway."),
            503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry later."),
            504: ("GatewayTimeout", "Gateway timeout."),
        }
        code, message = codes.get(status, ("UnknownError", "An unknown error occurred."))
        call = Call("GET", [], {}, b"", {}, "")
        headers = {"request-id": call.request_id}
        if status in (429, 503):
            headers["Retry-After"] = retry_after_header(retry_after) if status == 429 else str(retry_after)
        return web.json_response(error_body(code, message, call, self.tenant.now()), status=status, headers=headers)


def retry_after_header(seconds: int) -> str:
    """Graph's live ``Retry-After`` is a list, e.g. ``30,120`` (msgraph-sdk-python #1159): clients take the first."""
    return f"{seconds},120"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _project(user: User, fields: list[str]) -> dict[str, Any]:
    data = user_json(user)
    return {name: data[name] for name in fields}


def _encode_skiptoken(offset: int) -> str:
    return "RFNwdAIA" + base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.removeprefix("RFNwdAIA") + "==").decode()
        return max(0, int(raw.removeprefix("offset:")))
    except ValueError as exc:
        raise GraphError(
            400,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your request.",
        ) from exc


def _mailbox_key(request: web.Request) -> tuple[str, str] | None:
    parts = [p.lower() for p in request.path.split("/") if p]
    if len(parts) < 4 or parts[:2] != ["v1.0", "users"] or parts[3] not in MAIL_SEGMENTS:
        return None
    token = bearer(request.headers.get("Authorization"))
    if not token:
        return None
    try:
        app_id = str(jwt.decode(token, options={"verify_signature": False}).get("appid", ""))
    except jwt.PyJWTError:
        return None
    return (app_id, parts[2])
