"""The sandbox's own admin API (HTTPS, paths under ``/_sandbox/``), for tests and the demo.

=======  ==========================================  =================================================
GET      /_sandbox/faults                            every service's faults
GET      /_sandbox/faults/{service}                  one service's faults
PATCH    /_sandbox/faults/{service}                  change some fields, e.g. ``{"latency_ms": 200}``
POST     /_sandbox/faults/reset                      clear every service's faults (``?service=smtp``: one)
GET      /_sandbox/clock                             the sandbox time
POST     /_sandbox/clock/advance                     ``{"seconds": 60}`` (ManualClock only, else 409)
GET      /_sandbox/tenant                            the tenant switches and propagation delay
PATCH    /_sandbox/tenant                            change switches, e.g. ``{"security_defaults": true}``
PATCH    /_sandbox/mailboxes/{address}               ``{"smtp_auth_disabled": null|true|false}``
GET      /_sandbox/mailboxes/{address}/messages      messages delivered to a mailbox
GET      /_sandbox/settings                          behaviour settings (sandbox/settings.py)
PATCH    /_sandbox/settings                          change some settings
GET      /_sandbox/rights                            every right: ``?mailbox=``, ``?trustee=``, ``?state=``
PATCH    /_sandbox/apps/{name}                       an app's roles and consents: ``{"entra_roles": [...],
                                                     "exchange_role_groups": [...], "graph_permissions":
                                                     [...], "exchange_permissions": [...]}`` (``[]`` for
                                                     none), ``"exchange_service_principal": false``
POST     /_sandbox/devicecode/approve                ``{"user_code": "…", "upn": "erin@business.com"}``
=======  ==========================================  =================================================

Bad input gets 400 with ``{"error": "<what is wrong>"}`` and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.clock import ManualClock
from sandbox.faults import SERVICES, FaultBook
from sandbox.identity import SignInService
from sandbox.smtp_policy import OUTBOUND_BLOCKS
from sandbox.state import Tenant

TENANT_SWITCHES = (
    "smtp_client_authentication_disabled",
    "security_defaults",
    "conditional_access_block_legacy_auth",
    "basic_auth_disabled",
    "basic_auth_retired",
)


class BadInputError(ValueError):
    pass


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise BadInputError("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise BadInputError("the body must be a JSON object")
    return body


_APP_FIELDS = {
    "entra_roles": "entra_roles",
    "exchange_role_groups": "exchange_role_groups",
    "graph_permissions": "graph_roles",
    "exchange_permissions": "exchange_roles",
}
"""PATCH /_sandbox/apps/{name} field → App attribute (the names tenant.yaml uses)."""


def _names(value: Any, key: str) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadInputError(f"{key} must be a list of role names")
    return {v.strip() for v in value}


def build_admin_app(tenant: Tenant, faults: FaultBook, sign_in: SignInService) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/_sandbox/faults")
    async def all_faults(request: web.Request) -> web.Response:
        return web.json_response(faults.to_json())

    @routes.get("/_sandbox/faults/{service}")
    async def one_fault(request: web.Request) -> web.Response:
        service = request.match_info["service"]
        if service not in SERVICES:
            return _bad(f"unknown service {service!r}; one of {', '.join(SERVICES)}", 404)
        return web.json_response(faults.to_json()[service])

    @routes.patch("/_sandbox/faults/{service}")
    async def patch_fault(request: web.Request) -> web.Response:
        service = request.match_info["service"]
        if service not in SERVICES:
            return _bad(f"unknown service {service!r}; one of {', '.join(SERVICES)}", 404)
        try:
            changes = await _object(request)
            updated = faults.set(service, **changes)
        except (BadInputError, ValueError, TypeError) as exc:
            return _bad(str(exc))
        del updated
        return web.json_response(faults.to_json()[service])

    @routes.post("/_sandbox/faults/reset")
    async def reset_faults(request: web.Request) -> web.Response:
        service = request.query.get("service")
        if service is not None and service not in SERVICES:
            return _bad(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        faults.reset(service)
        return web.json_response(faults.to_json())

    @routes.get("/_sandbox/clock")
    async def clock(request: web.Request) -> web.Response:
        return web.json_response({"now": tenant.now().isoformat(), "manual": isinstance(tenant.clock, ManualClock)})

    @routes.post("/_sandbox/clock/advance")
    async def advance(request: web.Request) -> web.Response:
        if not isinstance(tenant.clock, ManualClock):
            return _bad("the sandbox runs on the system clock; only a ManualClock can be advanced", 409)
        try:
            body = await _object(request)
        except BadInputError as exc:
            return _bad(str(exc))
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 366 * 86400:
            return _bad("'seconds' must be a number between 0 and 31622400")
        tenant.clock.advance(float(seconds))
        return web.json_response({"now": tenant.now().isoformat(), "manual": True})

    @routes.get("/_sandbox/tenant")
    async def get_tenant(request: web.Request) -> web.Response:
        return web.json_response(_tenant_json(tenant))

    @routes.patch("/_sandbox/tenant")
    async def patch_tenant(request: web.Request) -> web.Response:
        try:
            body = await _object(request)
        except BadInputError as exc:
            return _bad(str(exc))
        problem = _tenant_patch_problem(body)
        if problem:
            return _bad(problem)
        for key, value in body.items():
            setattr(tenant, key, float(value) if key == "propagation_delay_seconds" else value)
        tenant.changes += 1
        return web.json_response(_tenant_json(tenant))

    @routes.patch("/_sandbox/mailboxes/{address}")
    async def patch_mailbox(request: web.Request) -> web.Response:
        user = tenant.user_by_address(request.match_info["address"])
        if user is None or not user.has_mailbox:
            return _bad(f"no mailbox {request.match_info['address']!r}", 404)
        try:
            body = await _object(request)
        except BadInputError as exc:
            return _bad(str(exc))
        if set(body) != {"smtp_auth_disabled"} or body["smtp_auth_disabled"] not in (None, True, False):
            return _bad('expected {"smtp_auth_disabled": null | true | false}')
        user.smtp_auth_disabled = body["smtp_auth_disabled"]
        tenant.changes += 1
        return web.json_response({"mailbox": user.upn, "smtp_auth_disabled": user.smtp_auth_disabled})

    @routes.get("/_sandbox/mailboxes/{address}/messages")
    async def messages(request: web.Request) -> web.Response:
        user = tenant.user_by_address(request.match_info["address"])
        if user is None or not user.has_mailbox:
            return _bad(f"no mailbox {request.match_info['address']!r}", 404)
        return web.json_response(
            {"mailbox": user.upn, "messages": [_message_json(m) for m in tenant.messages.get(user.id, [])]}
        )

    @routes.get("/_sandbox/settings")
    async def get_settings(request: web.Request) -> web.Response:
        return web.json_response(tenant.behaviour.to_json())

    @routes.patch("/_sandbox/settings")
    async def patch_settings(request: web.Request) -> web.Response:
        try:
            tenant.behaviour = tenant.behaviour.changed(**await _object(request))
        except (BadInputError, ValueError) as exc:
            return _bad(str(exc))
        return web.json_response(tenant.behaviour.to_json())

    @routes.patch("/_sandbox/apps/{name}")
    async def patch_app(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        app = next((a for a in tenant.apps.values() if name in (a.name, a.client_id)), None)
        if app is None:
            return _bad(f"no app {name!r}", 404)
        try:
            body = await _object(request)
            changes: dict[str, object] = {
                _APP_FIELDS[key]: _names(body[key], key) for key in _APP_FIELDS if key in body
            }
        except BadInputError as exc:
            return _bad(str(exc))
        if "exchange_service_principal" in body:
            if not isinstance(body["exchange_service_principal"], bool):
                return _bad("exchange_service_principal must be true or false")
            changes["exchange_service_principal"] = body["exchange_service_principal"]
        unknown = set(body) - set(_APP_FIELDS) - {"exchange_service_principal"}
        if unknown:
            return _bad(f"unknown field(s): {', '.join(sorted(unknown))}")
        for attribute, value in changes.items():
            setattr(app, attribute, value)
        return web.json_response(
            {
                "name": app.name,
                **{key: sorted(getattr(app, attribute)) for key, attribute in _APP_FIELDS.items()},
                "exchange_service_principal": app.exchange_service_principal,
            }
        )

    @routes.get("/_sandbox/rights")
    async def rights(request: web.Request) -> web.Response:
        mailbox_filter = request.query.get("mailbox")
        trustee_filter = request.query.get("trustee")
        state_filter = request.query.get("state")
        mailbox = tenant.user_by_address(mailbox_filter) if mailbox_filter else None
        if mailbox_filter and mailbox is None:
            return _bad(f"no mailbox {mailbox_filter!r}", 404)
        trustee = tenant.trustee(trustee_filter) if trustee_filter else None
        if trustee_filter and trustee is None:
            return _bad(f"no trustee {trustee_filter!r}", 404)
        now, delay = tenant.now(), tenant.delay
        rows = []
        for grant in tenant.rights.records():
            if (mailbox and grant.mailbox_id != mailbox.id) or (trustee and grant.trustee != trustee):
                continue
            state = grant.state(now, delay)
            if state_filter and state != state_filter:
                continue
            start, end = grant.effective_from(delay), grant.effective_until(delay)
            rows.append(
                {
                    "right": grant.right,
                    "mailbox": tenant.users[grant.mailbox_id].upn,
                    "trustee": tenant.trustee_label(grant.trustee),
                    "trustee_kind": grant.trustee.kind,
                    "state": state,
                    "granted_at": grant.granted_at.isoformat() if grant.granted_at else None,
                    "effective_from": start.isoformat() if start else None,
                    "removed_at": grant.removed_at.isoformat() if grant.removed_at else None,
                    "effective_until": end.isoformat() if end else None,
                }
            )
        return web.json_response(
            {"now": now.isoformat(), "propagation_delay_seconds": tenant.propagation_delay_seconds, "rights": rows}
        )

    @routes.post("/_sandbox/devicecode/approve")
    async def approve(request: web.Request) -> web.Response:
        try:
            body = await _object(request)
        except BadInputError as exc:
            return _bad(str(exc))
        user_code, upn = body.get("user_code"), body.get("upn")
        if not isinstance(user_code, str) or not isinstance(upn, str):
            return _bad('expected {"user_code": "...", "upn": "user@domain"}')
        try:
            flow = sign_in.approve(user_code, upn)
        except LookupError as exc:
            return _bad(str(exc).strip("'\""), 404)
        return web.json_response({"user_code": flow.user_code, "upn": flow.approved_upn, "approved": True})

    app = web.Application()
    app.add_routes(routes)
    return app


def _tenant_patch_problem(body: dict[str, Any]) -> str | None:
    for key, value in body.items():
        if key in TENANT_SWITCHES:
            if not isinstance(value, bool):
                return f"{key} must be true or false"
        elif key == "outbound_block":
            if value is not None and value not in OUTBOUND_BLOCKS:
                return f"outbound_block must be null or one of {', '.join(OUTBOUND_BLOCKS)}"
        elif key == "propagation_delay_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                return "propagation_delay_seconds must be a number >= 0"
        else:
            return (
                f"unknown tenant setting {key!r}; one of "
                f"{', '.join((*TENANT_SWITCHES, 'outbound_block', 'propagation_delay_seconds'))}"
            )
    return None


def _tenant_json(tenant: Tenant) -> dict[str, Any]:
    data: dict[str, Any] = {key: getattr(tenant, key) for key in TENANT_SWITCHES}
    data["outbound_block"] = tenant.outbound_block
    data["propagation_delay_seconds"] = tenant.propagation_delay_seconds
    data["id"] = tenant.id
    data["domains"] = tenant.domains
    return data


def _message_json(message: Any) -> dict[str, Any]:
    return {
        "id": message.id,
        "internet_message_id": message.internet_message_id,
        "folder": message.folder,
        "subject": message.subject,
        "from": message.from_address,
        "sender": message.sender_address,
        "to": message.to,
        "cc": message.cc,
        "received": message.received.isoformat(),
        "via": message.via,
        "body": message.body,
    }
