"""Explain an access token in plain words: who it is for, what it allows, when it expires.

The diagnosis uses :func:`lint_token` to say *why* Microsoft 365 rejected a token (``oauth_token_invalid``):
wrong audience, a missing ``SMTP.SendAsApp`` role or ``Mail.Send`` scope, expired. It decodes the claims
without checking the signature: it explains, it does not authorise. Nothing here ever returns or prints the
token itself, only claims that are safe to show (audience, roles, tenant, expiry, UPN, app id).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from plugin.settings import M365Settings

GRAPH_AUDIENCES = frozenset({"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"})
"""What Entra writes in ``aud`` for Microsoft Graph (v2 tokens: the URL; v1 tokens: the app id)."""
EXCHANGE_AUDIENCES = frozenset(
    {"https://outlook.office365.com", "https://outlook.office.com", "00000002-0000-0ff1-ce00-000000000000"}
)
"""Office 365 Exchange Online: the admin API and SMTP XOAUTH2 accept tokens for this resource."""

SMTP_APP_ROLE = "SMTP.SendAsApp"
SMTP_DELEGATED_SCOPE = "SMTP.Send"
EXCHANGE_ADMIN_APP_ROLE = "Exchange.ManageAsApp"
GRAPH_SEND_ROLE = "Mail.Send"
CLOCK_SKEW = timedelta(minutes=5)


def graph_audiences(settings: M365Settings) -> set[str]:
    """Audiences a Graph token may carry for these settings (a national cloud's URL included)."""
    return {settings.graph_url, *GRAPH_AUDIENCES}


def exchange_audiences(settings: M365Settings) -> set[str]:
    """Audiences an Exchange Online token (admin API, SMTP XOAUTH2) may carry for these settings."""
    return {settings.exchange_url, *EXCHANGE_AUDIENCES}


@dataclass(frozen=True)
class TokenLint:
    """What a token says about itself, and what is wrong with it for the use at hand."""

    is_jwt: bool
    audience: str | None = None
    app_only: bool = False
    roles: tuple[str, ...] = field(default=())
    scopes: tuple[str, ...] = field(default=())
    tenant_id: str | None = None
    expires_at: datetime | None = None
    upn: str | None = None
    app_id: str | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line describing the token (never the token itself)."""
        if not self.is_jwt:
            return "not a JWT access token"
        who = "app-only" if self.app_only else f"delegated for {self.upn or 'a user'}"
        grants = (
            f"roles {', '.join(self.roles) or 'none'}"
            if self.app_only
            else f"scopes {', '.join(self.scopes) or 'none'}"
        )
        expiry = f", expires {self.expires_at:%Y-%m-%d %H:%M:%S} UTC" if self.expires_at else ""
        return f"token for {self.audience or 'no audience'} ({who}, app {self.app_id or '?'}; {grants}{expiry})"

    def evidence(self) -> tuple[str, ...]:
        """Lines for a diagnosis: the summary, then each problem."""
        return (f"Token: {self.summary()}", *(f"Token problem: {problem}" for problem in self.problems))

    def to_json(self) -> dict[str, object]:
        return {
            "is_jwt": self.is_jwt,
            "audience": self.audience,
            "app_only": self.app_only,
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "tenant_id": self.tenant_id,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "upn": self.upn,
            "app_id": self.app_id,
            "problems": list(self.problems),
        }


def decode_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (unverified), or None when ``token`` is not a JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def lint_token(
    token: str,
    *,
    expected_audience: set[str],
    needed_role: str | None,
    needed_scope: str | None,
    now: datetime,
    expected_tenant: str | None = None,
) -> TokenLint:
    """Decode ``token`` and list its problems for a service that accepts ``expected_audience`` and needs
    ``needed_role`` (app-only tokens) or ``needed_scope`` (delegated tokens)."""
    claims = decode_claims(token)
    if claims is None:
        return TokenLint(
            is_jwt=False,
            problems=(
                "This is not a JWT access token (expected three base64url parts separated by dots); Microsoft 365 "
                "rejects it. Check that the token source returns the access token, not an id or refresh token.",
            ),
        )
    audience = _text(claims.get("aud"))
    roles = tuple(sorted(str(r) for r in _strings(claims.get("roles"))))
    scopes = tuple(sorted(str(claims.get("scp") or "").split()))
    app_only = claims.get("idtyp") == "app" or ("scp" not in claims and "upn" not in claims)
    expires_at = _when(claims.get("exp"))
    not_before = _when(claims.get("nbf"))
    lint = TokenLint(
        is_jwt=True,
        audience=audience,
        app_only=app_only,
        roles=roles,
        scopes=scopes,
        tenant_id=_text(claims.get("tid")),
        expires_at=expires_at,
        upn=_text(claims.get("upn")) or _text(claims.get("preferred_username")),
        app_id=_text(claims.get("appid")) or _text(claims.get("azp")),
    )
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    problems = [
        *_audience_problems(audience, expected_audience),
        *_grant_problems(lint, needed_role, needed_scope),
        *_time_problems(expires_at, not_before, now),
    ]
    if expected_tenant and lint.tenant_id and lint.tenant_id.lower() != expected_tenant.lower():
        problems.append(
            f"The token was issued by tenant {lint.tenant_id}, not {expected_tenant}: check "
            "EMAILDOCTOR_M365__TENANT_ID."
        )
    return replace(lint, problems=tuple(problems))


def _audience_problems(audience: str | None, expected: set[str]) -> list[str]:
    wanted = {_normal(a) for a in expected}
    if audience is not None and _normal(audience) in wanted:
        return []
    resource = next((a for a in sorted(expected) if a.startswith("https://")), None) or next(iter(sorted(expected)), "")
    return [
        f"The token is for {audience or 'no audience'}, but this service only accepts tokens for {resource}: "
        f"request the scope {resource}/.default."
    ]


def _grant_problems(lint: TokenLint, needed_role: str | None, needed_scope: str | None) -> list[str]:
    if lint.app_only:
        if needed_role and needed_role not in lint.roles:
            held = ", ".join(lint.roles) or "no roles at all"
            return [
                f"The app's token has no {needed_role} role (it has {held}): add the application permission "
                f"{needed_role} to the app registration and grant admin consent, then get a new token."
            ]
        if needed_role is None and needed_scope:
            return [f"This is an app-only token, but a user's (delegated) token with {needed_scope} is needed."]
        return []
    if needed_scope and needed_scope not in lint.scopes:
        held = ", ".join(lint.scopes) or "nothing"
        return [
            f"The token does not grant {needed_scope} (it grants {held}): add the delegated permission "
            f"{needed_scope}, have the user consent, and sign in again."
        ]
    if needed_scope is None and needed_role:
        return [
            f"This is a delegated token for {lint.upn or 'a user'}, but an app-only token with the role "
            f"{needed_role} is needed (client credentials)."
        ]
    return []


def _time_problems(expires_at: datetime | None, not_before: datetime | None, now: datetime) -> list[str]:
    problems = []
    if expires_at is None:
        problems.append("The token has no expiry (exp) claim; Microsoft 365 rejects it.")
    elif expires_at <= now:
        problems.append(
            f"The token expired at {expires_at:%Y-%m-%d %H:%M:%S} UTC, {_ago(now - expires_at)} ago: get a new one "
            "(token sources renew automatically; a cached copy was used past its lifetime)."
        )
    if not_before is not None and not_before > now + CLOCK_SKEW:
        problems.append(
            f"The token is not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC: this machine's clock is probably wrong."
        )
    return problems


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    return f"{seconds // 3600} hours"


def _when(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _normal(audience: str) -> str:
    return audience.strip().rstrip("/").lower()
