"""Access tokens: RS256 JWTs signed with the sandbox's key, issued by the sign-in service and checked by
Graph, the Exchange admin API and SMTP XOAUTH2."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.clock import Clock
from sandbox.tls import signing_key

GRAPH_AUDIENCE = "https://graph.microsoft.com"
EXCHANGE_AUDIENCE = "https://outlook.office365.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
Resource = Literal["graph", "exchange"]
AUDIENCES: dict[Resource, str] = {"graph": GRAPH_AUDIENCE, "exchange": EXCHANGE_AUDIENCE}
RESOURCE_APP_IDS: dict[Resource, str] = {"graph": GRAPH_APP_ID, "exchange": EXCHANGE_APP_ID}

TokenProblem = Literal["empty", "malformed", "signature", "expired", "audience", "tenant"]


@dataclass(frozen=True)
class TokenClaims:
    raw: dict[str, Any]

    @property
    def app_only(self) -> bool:
        return self.raw.get("idtyp") == "app"

    @property
    def app_id(self) -> str:
        return str(self.raw.get("appid", ""))

    @property
    def roles(self) -> set[str]:
        return set(self.raw.get("roles", []))

    @property
    def scopes(self) -> set[str]:
        return set(str(self.raw.get("scp", "")).split())

    @property
    def upn(self) -> str | None:
        value = self.raw.get("upn")
        return str(value) if value else None

    @property
    def oid(self) -> str:
        return str(self.raw.get("oid", ""))


class InvalidTokenError(Exception):
    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem)
        self.problem: TokenProblem = problem


@dataclass
class TokenIssuer:
    """Issues and validates the sandbox's tokens; time comes from the injected clock."""

    tenant_id: str
    issuer: str
    clock: Clock
    key: rsa.RSAPrivateKey = field(default_factory=signing_key)

    @property
    def kid(self) -> str:
        numbers = self.key.public_key().public_numbers()
        return (
            base64.urlsafe_b64encode(hashlib.sha1(str(numbers.n).encode(), usedforsecurity=False).digest())
            .decode()
            .rstrip("=")
        )

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "x5t": self.kid, "alg": "RS256", "issuer": self.issuer})
        return {"keys": [jwk]}

    def issue(self, claims: dict[str, Any], lifetime_s: int) -> str:
        now = int(self.clock.now().timestamp())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "tid": self.tenant_id,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "uti": uuid.uuid4().hex[:22],
            "ver": "2.0",
        }
        payload.update(claims)
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid})

    def app_token(
        self, *, resource: Resource, app_id: str, sp_object_id: str, roles: list[str], lifetime_s: int
    ) -> str:
        claims: dict[str, Any] = {
            "aud": AUDIENCES[resource],
            "appid": app_id,
            "azp": app_id,
            "oid": sp_object_id,
            "sub": sp_object_id,
            "idtyp": "app",
        }
        if roles:
            claims["roles"] = sorted(roles)
        return self.issue(claims, lifetime_s)

    def user_token(
        self, *, resource: Resource, app_id: str, user_id: str, upn: str, name: str, scopes: list[str], lifetime_s: int
    ) -> str:
        claims = {
            "aud": AUDIENCES[resource],
            "appid": app_id,
            "azp": app_id,
            "oid": user_id,
            "sub": user_id,
            "upn": upn,
            "unique_name": upn,
            "name": name,
            "scp": " ".join(sorted(scopes)),
            "idtyp": "user",
        }
        return self.issue(claims, lifetime_s)

    def id_token(self, *, client_id: str, user_id: str, upn: str, name: str) -> str:
        claims = {
            "aud": client_id,
            "oid": user_id,
            "sub": user_id,
            "preferred_username": upn,
            "name": name,
        }
        return self.issue(claims, 3600)

    def validate(self, token: str | None, resource: Resource) -> TokenClaims:
        """The token's claims, or :class:`InvalidTokenError` naming what is wrong."""
        if not token:
            raise InvalidTokenError("empty")
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError as exc:
            raise InvalidTokenError("signature") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("malformed") from exc
        if claims.get("aud") not in (AUDIENCES[resource], RESOURCE_APP_IDS[resource]):
            raise InvalidTokenError("audience")
        if int(claims.get("exp", 0)) <= self.clock.now().timestamp():
            raise InvalidTokenError("expired")
        if claims.get("tid") != self.tenant_id:
            raise InvalidTokenError("tenant")
        return TokenClaims(claims)


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
