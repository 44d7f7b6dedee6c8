"""What every Microsoft Graph handler of the sandbox shares: the request, the reply, Graph's errors and
permission checks."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.state import App, Tenant, User
from sandbox.tokens import TokenClaims

USER_READ_APP = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All", "User.ReadBasic.All"}
)
USER_READ_DELEGATED = frozenset(
    {"User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.AccessAsUser.All"}
)
MAIL_READ_APP = frozenset({"Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"})
MAIL_READ_DELEGATED = frozenset({"Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"})
MAIL_READ_SHARED = frozenset({"Mail.Read.Shared", "Mail.ReadWrite.Shared"})
SETTINGS_READ = frozenset({"MailboxSettings.Read", "MailboxSettings.ReadWrite"})

RAOP_TEXT = "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
ACCESS_DENIED_TEXT = "Access is denied. Check credentials and try again."


@dataclass
class Call:
    """One Graph request (a real one, or one item of ``$batch``)."""

    method: str
    path: list[str]
    """Segments after ``/v1.0``."""
    query: Mapping[str, str]
    body: bytes
    headers: Mapping[str, str]
    base_url: str
    """``https://127.0.0.1:PORT`` as the client reached it."""
    claims: TokenClaims | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def client_request_id(self) -> str:
        return self.headers.get("client-request-id") or self.request_id


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def error_body(code: str, message: str, call: Call, now: datetime) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": call.request_id,
                "client-request-id": call.client_request_id,
            },
        }
    }


def error_reply(exc: GraphError, call: Call, now: datetime) -> Reply:
    return Reply(exc.status, error_body(exc.code, exc.message, call, now), exc.headers)


def require(claims: TokenClaims, app_roles: frozenset[str], delegated: frozenset[str], error: GraphError) -> None:
    granted = claims.roles if claims.app_only else claims.scopes
    if not granted & (app_roles if claims.app_only else delegated):
        raise error


def access_denied() -> GraphError:
    return GraphError(403, "ErrorAccessDenied", ACCESS_DENIED_TEXT)


def invalid_user(identifier: str) -> GraphError:
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{identifier}' is invalid.")


def signed_in_user(tenant: Tenant, claims: TokenClaims) -> User:
    user = tenant.users.get(claims.oid) if claims.oid else None
    if user is None or claims.app_only:
        raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    return user


def mailbox_for(tenant: Tenant, call: Call, segment: str) -> User:
    """The mailbox a mail request addresses (``me`` or ``users/{id}``), with Graph's mail errors."""
    assert call.claims is not None
    if segment == "me":
        user = signed_in_user(tenant, call.claims)
    else:
        found = tenant.user(segment)
        if found is None:
            raise invalid_user(segment)
        user = found
    if not user.has_mailbox or user.user_type == "Guest":
        raise GraphError(
            tenant.behaviour.graph_mailbox_not_enabled_status,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    if call.claims.app_only:
        app = tenant.app(call.claims.app_id)
        if app is not None and tenant.raop_blocks(app, user):
            raise GraphError(403, "ErrorAccessDenied", RAOP_TEXT)
    return user


def calling_app(tenant: Tenant, claims: TokenClaims) -> App | None:
    return tenant.app(claims.app_id)
