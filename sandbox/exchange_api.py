"""The Exchange Online admin API: ``POST /adminapi/{beta|v1.0}/{tenant}/InvokeCommand`` and ``$batch``,
and the v2.0 ``/adminapi/v2.0/{tenant}/Mailbox`` endpoint.

Token checks (audience, Exchange.ManageAsApp, an Entra role or Exchange role group), paging with
``Prefer: odata.maxpagesize`` and ``@odata.nextLink`` (the client re-POSTs the same body), warnings,
Exchange's error shape, and throttling as the real service does it: a per-tenant concurrency limit
and a token bucket behind the ``Rate-Limit-*`` headers.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from graph.exchange_roles import allows
from sandbox.exchange_apps import register_app_cmdlets
from sandbox.exchange_cmdlets import Cmdlets
from sandbox.exchange_errors import CmdletError, not_allowed
from sandbox.exchange_groups import register_group_cmdlets
from sandbox.exchange_paging import PAGE_EXPIRED_TEXT, decode_skiptoken, encode_skiptoken, page_still_valid
from sandbox.faults import FaultBook
from sandbox.http import fault_middleware
from sandbox.state import Tenant
from sandbox.tokens import InvalidTokenError, TokenClaims, TokenIssuer, bearer

CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
CONCURRENCY_TEXT = "You have reached the maximum number of concurrent requests per tenant. Please wait and try again."
NO_ROLE_BODY = b"\x00" * 4096
"""Live answer to an app with Exchange.ManageAsApp but no directory role at all: 403 and 4,096 NUL bytes."""
V2_MAILBOX_CMDLETS = {"get-mailbox", "set-mailbox"}
_PAGE_SIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
_DIAGNOSTICS = {
    "empty": ('2000000;reason="The token is missing.";error_category="invalid_token"'),
    "expired": '2000001;reason="The token has expired.";error_category="invalid_token"',
    "audience": '2000003;reason="The audience claim value is invalid for current resource.";error_category="invalid_resource"',
}


class UnauthorizedError(Exception):
    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics


class NoRoleError(UnauthorizedError):
    """A valid token, but the caller holds no Entra role or Exchange role group at all."""


@dataclass
class TokenBucket:
    """``Rate-Limit-Limit`` tokens refilled evenly over ``window`` seconds of real (monotonic) time."""

    tokens: float = -1.0
    last: float = field(default_factory=time.monotonic)

    def take(self, cost: int, capacity: int, window: float) -> tuple[bool, int]:
        """(allowed, retry_after_seconds)."""
        self._refill(capacity, window)
        if self.tokens >= cost:
            self.tokens -= cost
            return True, 0
        rate = capacity / window
        return False, max(1, math.ceil((cost - self.tokens) / rate))

    def _refill(self, capacity: int, window: float) -> None:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = float(capacity)
        self.tokens = min(float(capacity), self.tokens + (now - self.last) * capacity / window)
        self.last = now

    def headers(self, capacity: int, window: float) -> dict[str, str]:
        self._refill(capacity, window)
        seconds = (capacity - self.tokens) * window / capacity
        reset = datetime.now(UTC) + timedelta(seconds=seconds)
        return {
            "Rate-Limit-Limit": str(capacity),
            "Rate-Limit-Remaining": str(max(0, int(self.tokens))),
            "Rate-Limit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }


@dataclass
class Result:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ExchangeService:
    tenant: Tenant
    issuer: TokenIssuer
    faults: FaultBook
    bucket: TokenBucket = field(default_factory=TokenBucket)
    in_flight: int = 0

    def __post_init__(self) -> None:
        self.cmdlets = Cmdlets(self.tenant)
        register_group_cmdlets(self.cmdlets)
        register_app_cmdlets(self.cmdlets)

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                self._headers,
                self._concurrency,
                fault_middleware("exchange", self.faults, self._fault_response),
            ]
        )
        app.router.add_post("/adminapi/{version}/{tenant}/InvokeCommand", self.invoke_command)
        app.router.add_post("/adminapi/{version}/{tenant}/$batch", self.batch)
        app.router.add_post("/adminapi/v2.0/{tenant}/Mailbox", self.v2_mailbox)
        return app

    # --- HTTP ------------------------------------------------------------------------------------
    async def invoke_command(self, request: web.Request) -> web.StreamResponse:
        version, tenant_segment = request.match_info["version"], request.match_info["tenant"]
        if version not in ("beta", "v1.0"):
            return _json(_error_result(404, "NotFound", f"Unknown API version '{version}'."))
        try:
            claims = self._authenticate(request, tenant_segment, v2=False)
        except UnauthorizedError as exc:
            return _unauthorized(exc)
        allowed, retry = self._take(1)
        if not allowed:
            return _json(_throttled(retry))
        body = await request.read()
        base = f"https://{request.host}/adminapi/{version}/{tenant_segment}"
        result = self.execute(
            claims, body, dict(request.query), request.headers.get("Prefer", ""), base, None,
            anchor=request.headers.get("X-AnchorMailbox", ""),
        )  # fmt: skip
        return _json(result)

    async def batch(self, request: web.Request) -> web.StreamResponse:
        version, tenant_segment = request.match_info["version"], request.match_info["tenant"]
        try:
            claims = self._authenticate(request, tenant_segment, v2=False)
        except UnauthorizedError as exc:
            return _unauthorized(exc)
        try:
            payload = json.loads(await request.read() or b"null")
        except ValueError:
            payload = None
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            return _json(_error_result(400, "BadRequest", "The batch request body is not valid."))
        limit = self.tenant.behaviour.exchange_batch_max
        if len(requests) > limit:
            return _json(
                _error_result(400, "BadRequest", f"The batch request exceeds the maximum of {limit} requests.")
            )
        responses = []
        for item in requests:
            item_id = str(item.get("id", ""))
            url = urlsplit(str(item.get("url", "")))
            query = dict(parse_qsl(url.query))
            raw_headers = item.get("headers")
            headers = {str(k).lower(): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, dict) else {}
            base = f"https://{request.host}{url.path.rsplit('/', 1)[0]}" if url.path else ""
            allowed, retry = self._take(1)
            if not url.path.endswith("/InvokeCommand") or str(item.get("method", "POST")).upper() != "POST":
                result = _error_result(400, "BadRequest", "Only POST to InvokeCommand is supported in a batch.")
            elif not allowed:
                result = _throttled(retry)
            elif self.faults.take_throttle("exchange"):
                result = _throttled(self.faults.get("exchange").retry_after_s)
            else:
                raw = json.dumps(item.get("body")).encode()
                prefer, anchor = headers.get("prefer", ""), headers.get("x-anchormailbox", "")
                result = self.execute(claims, raw, query, prefer, base, None, anchor=anchor)
            responses.append({"id": item_id, "status": result.status, "headers": result.headers, "body": result.body})
        del version
        return web.json_response({"responses": responses}, content_type="application/json")

    async def v2_mailbox(self, request: web.Request) -> web.StreamResponse:
        tenant_segment = request.match_info["tenant"]
        try:
            claims = self._authenticate(request, tenant_segment, v2=True)
        except UnauthorizedError as exc:
            return _unauthorized(exc)
        allowed, retry = self._take(1)
        if not allowed:
            return _json(_throttled(retry))
        base = f"https://{request.host}/adminapi/v2.0/{tenant_segment}"
        result = self.execute(
            claims,
            await request.read(),
            dict(request.query),
            request.headers.get("Prefer", ""),
            base,
            V2_MAILBOX_CMDLETS,
            anchor=request.headers.get("X-AnchorMailbox", ""),
        )
        return _json(result)

    # --- one cmdlet ------------------------------------------------------------------------------
    def execute(
        self,
        claims: TokenClaims,
        raw_body: bytes,
        query: Mapping[str, str],
        prefer: str,
        base: str,
        only: set[str] | None,
        *,
        anchor: str = "",
    ) -> Result:
        try:
            payload = json.loads(raw_body or b"null")
            cmdlet_input = payload["CmdletInput"]
            name = str(cmdlet_input["CmdletName"])
            params = cmdlet_input.get("Parameters") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            params = None
        if not isinstance(params, dict):
            return _error_result(
                400,
                "BadRequest",
                'The request body is not valid: {"CmdletInput":{"CmdletName","Parameters"}} expected.',
            )
        if only is not None and name.lower() not in only:
            return _error_result(400, "BadRequest", f"The cmdlet '{name}' isn't supported by this endpoint.")
        if (
            only is not None
            and name.lower() == "set-mailbox"
            and set(map(str.lower, params)) - {"identity", "grantsendonbehalfto", "confirm"}
        ):
            return _error_result(400, "BadRequest", "Only GrantSendOnBehalfTo can be set through this endpoint.")
        try:
            if name.lower() in self.cmdlets.handlers:  # an unknown cmdlet is "not recognized", whatever the role
                self._authorize(self._roles(claims), name)
            outcome = self.cmdlets.run(name, params)
        except CmdletError as exc:
            return Result(exc.status, exc.body(), {"x-ExceptionType": exc.short_class})
        items = outcome.items
        now = self.tenant.now().timestamp()
        try:
            offset = decode_skiptoken(query.get("$skiptoken"), raw_body)
        except ValueError:
            return _error_result(
                400,
                "BadRequest",
                "The $skiptoken is not valid for this request: re-POST the same body to @odata.nextLink.",
            )
        if offset and not page_still_valid(query["$skiptoken"], anchor, now, self.tenant.behaviour):
            # The skip token is bound to the backend the first page's anchor routed to (live, 2026).
            return _error_result(400, "BadRequest", PAGE_EXPIRED_TEXT)
        match = _PAGE_SIZE.search(prefer)
        headers: dict[str, str] = {}
        end = len(items)
        if match:
            size = max(1, min(int(match.group(1)), self.tenant.behaviour.exchange_max_page_size))
            headers["Preference-Applied"] = f"odata.maxpagesize={size}"
            end = min(len(items), offset + size)
        page = [outcome.render(item) for item in items[offset:end]]
        selected = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
        if selected:
            page = [_project(row, selected) for row in page]
        body: dict[str, Any] = {
            "@odata.context": f"{base}/$metadata#Collection(Exchange.GenericHashTable)",
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": outcome.warnings,
            "value": page,
        }
        if end < len(items):
            next_query = {k: v for k, v in query.items() if k != "$skiptoken"}
            next_query["$skiptoken"] = encode_skiptoken(end, raw_body, anchor, now)
            body["@odata.nextLink"] = (
                f"{base}/InvokeCommand?{urlencode(next_query)}"
                if "/v2.0/" not in base
                else f"{base}/Mailbox?{urlencode(next_query)}"
            )
        return Result(200, body, headers)

    # --- security --------------------------------------------------------------------------------
    def _authenticate(self, request: web.Request, tenant_segment: str, v2: bool) -> TokenClaims:
        try:
            claims = self.issuer.validate(bearer(request.headers.get("Authorization")), "exchange")
        except InvalidTokenError as exc:
            raise UnauthorizedError(
                _DIAGNOSTICS.get(exc.problem, '2000002;reason="The token is invalid.";error_category="invalid_token"')
            ) from exc
        if not self.tenant.knows_tenant(tenant_segment):
            raise UnauthorizedError(
                '2000004;reason="The tenant in the request URL does not match the token.";error_category="invalid_tenant"'
            )
        behaviour = self.tenant.behaviour
        if claims.app_only:
            accepted = {"Exchange.ManageAsAppV2"} if v2 else {"Exchange.ManageAsApp"}
            if v2 and behaviour.exchange_v2_accept_manage_as_app:
                accepted.add("Exchange.ManageAsApp")
            if not v2 and behaviour.exchange_accept_manage_as_app_v2:
                accepted.add("Exchange.ManageAsAppV2")
            granted = claims.roles
        else:
            accepted = {"Exchange.ManageV2"} if v2 else {"Exchange.Manage"}
            if v2 and behaviour.exchange_v2_accept_manage_as_app:
                accepted.add("Exchange.Manage")
            granted = claims.scopes
        if not granted & accepted:
            raise UnauthorizedError(
                f'2000008;reason="The token does not contain the permission {" or ".join(sorted(accepted))}.";'
                'error_category="insufficient_claims"'
            )
        if not self._roles(claims):
            raise NoRoleError("no role")
        return claims

    def _roles(self, claims: TokenClaims) -> set[str]:
        """The Entra roles and Exchange role groups of the caller (graph/exchange_roles.py says what each covers)."""
        if claims.app_only:
            app = self.tenant.app(claims.app_id)
            if app is None:
                return set()
            return set(app.entra_roles) | (app.exchange_role_groups if app.exchange_service_principal else set())
        user = self.tenant.users.get(claims.oid)
        return set(user.entra_roles) if user else set()

    def _authorize(self, roles: set[str], cmdlet: str) -> None:
        if not allows(roles, cmdlet):
            raise not_allowed(cmdlet)

    # --- throttling ------------------------------------------------------------------------------
    def _take(self, cost: int) -> tuple[bool, int]:
        behaviour = self.tenant.behaviour
        return self.bucket.take(cost, behaviour.exchange_rate_limit, behaviour.exchange_rate_window_seconds)

    @web.middleware
    async def _concurrency(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.in_flight >= self.tenant.behaviour.exchange_max_concurrent_requests:
            return web.Response(
                status=429, text=CONCURRENCY_TEXT, content_type="text/plain", headers={"Retry-After": "1"}
            )
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        behaviour = self.tenant.behaviour
        response.headers.update(
            self.bucket.headers(behaviour.exchange_rate_limit, behaviour.exchange_rate_window_seconds)
        )
        response.headers["Request-Id"] = str(uuid.uuid4())
        response.headers["X-CalculatedBETarget"] = "EURP195MB1234.EURP195.PROD.OUTLOOK.COM"
        return response

    def _fault_response(self, status: int, retry_after: int) -> web.Response:
        result = (
            _throttled(retry_after)
            if status == 429
            else _error_result(
                status,
                "InternalServerError" if status == 500 else "ServiceUnavailable",
                "The service is temporarily unavailable.",
            )
        )
        if status == 503:
            result.headers["Retry-After"] = str(retry_after)
        return _json(result)


def _json(result: Result) -> web.Response:
    return web.Response(
        status=result.status, text=json.dumps(result.body), headers={"Content-Type": CONTENT_TYPE, **result.headers}
    )


def _unauthorized(exc: UnauthorizedError) -> web.Response:
    if isinstance(exc, NoRoleError):
        return web.Response(status=403, body=NO_ROLE_BODY)
    return web.Response(
        status=401,
        headers={
            "WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
            'trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 '
            'service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            'error="invalid_token"',
            "x-ms-diagnostics": exc.diagnostics,
        },
    )


def _error_result(status: int, code: str, text: str) -> Result:
    error = CmdletError(status, code, "Ex0B4C8D", "Microsoft.Exchange.Admin.OData.Core.ODataServiceException", text)
    return Result(status, error.body(message=text), {"x-ExceptionType": error.short_class})


def _throttled(retry_after: int) -> Result:
    result = _error_result(429, "TooManyRequests", f"Rate limit exceeded. Retry after {retry_after} seconds.")
    result.headers["Retry-After"] = str(retry_after)
    return result


def _project(row: dict[str, Any], selected: list[str]) -> dict[str, Any]:
    wanted = {s.lower() for s in selected}
    return {k: v for k, v in row.items() if k.split("@", 1)[0].lower() in wanted}
