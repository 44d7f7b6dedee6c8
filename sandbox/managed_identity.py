"""Signing in without a secret, as Azure does it, on loopback.

* **The App Service / Container Apps managed identity endpoint**: ``GET {IDENTITY_ENDPOINT}?resource=…&
  api-version=2019-08-01`` with the header ``X-IDENTITY-HEADER: {IDENTITY_HEADER}``, served over plain HTTP on
  127.0.0.1 as the platform serves it. It answers ``{"access_token","expires_on","resource","token_type",
  "client_id"}`` (``expires_on`` in epoch seconds, as a string), tokens the sandbox's Graph and Exchange accept
  with the identity's roles. A wrong or missing header gets 401 with a plain-text body (not JSON); an unknown
  resource or a user-assigned identity not assigned here gets 400 ``{"statusCode","message","correlationId"}``.
  The identity is an app of the tenant: by default the product app is both the system-assigned identity and
  the only user-assigned one (``client_id=`` its client ID).
* **Workload identity federation**: a Kubernetes-like OIDC issuer (discovery document and keys under
  ``/_sandbox/oidc`` of the admin API) mints service-account tokens (:meth:`Federation.mint`, or
  ``POST /_sandbox/federated-token``, which also writes the token file as the kubelet would). The sign-in
  service accepts one as a client assertion for an app with a matching federated credential (issuer, subject,
  audience ``api://AzureADTokenExchange``), with Entra's refusals otherwise (AADSTS700211/700212/700213,
  700024 expired, 700027 bad signature).
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.entra_errors import EntraError
from sandbox.faults import FaultBook
from sandbox.http import fault_middleware
from sandbox.state import App, Tenant
from sandbox.tokens import TokenIssuer

API_VERSION = "2019-08-01"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
DEFAULT_SUBJECT = "system:serviceaccount:emaildoctor:emaildoctor"
TOKEN_PATH = "/msi/token"


@functools.cache
def _issuer_key(purpose: str) -> rsa.RSAPrivateKey:
    """One key per purpose and process, made on first use (most tests never federate)."""
    del purpose
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- workload identity federation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential of an app registration (Certificates & secrets > Federated credentials)."""

    app_client_id: str
    issuer: str
    subject: str = DEFAULT_SUBJECT
    audiences: tuple[str, ...] = (FEDERATED_AUDIENCE,)
    name: str = "kubernetes"


@dataclass
class Federation:
    """The sandbox's OIDC issuer (like an AKS cluster's) and the federated credentials apps have for it.

    The sign-in service trusts the keys of :attr:`issuer` only; a token minted for any other issuer is signed
    with a key nobody trusts."""

    tenant: Tenant
    issuer: str = ""
    """Set when the admin API starts: ``{admin}/_sandbox/oidc``."""
    credentials: list[FederatedCredential] = field(default_factory=list)
    minted: int = 0

    @property
    def kid(self) -> str:
        return "sandbox-oidc-1"

    def mint(
        self,
        *,
        subject: str = DEFAULT_SUBJECT,
        audience: str = FEDERATED_AUDIENCE,
        lifetime_seconds: int = 3600,
        issuer: str | None = None,
    ) -> str:
        """A projected service-account token, times from the sandbox clock (``lifetime_seconds`` < 0: expired)."""
        now = int(self.tenant.now().timestamp())
        issuer = issuer or self.issuer
        trusted = issuer == self.issuer
        claims = {
            "iss": issuer,
            "sub": subject,
            "aud": [audience],
            "iat": min(now, now + lifetime_seconds),
            "nbf": min(now, now + lifetime_seconds),
            "exp": now + lifetime_seconds,
            "kubernetes.io": {"namespace": subject.split(":")[2] if subject.count(":") >= 3 else "default"},
        }
        self.minted += 1
        key = _issuer_key("federation" if trusted else "untrusted")
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def write_token_file(self, path: Path, **options: Any) -> Path:
        """Write a minted token where the platform would project it (mode 0600)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(self.mint(**options), encoding="utf-8")
        return path

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(_issuer_key("federation").public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def check(self, app: App, assertion: str) -> None:
        """Entra's checks of a federated client assertion for ``app``, in its order; raise its refusal."""
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from exc
        issuer, subject = str(unverified.get("iss", "")), str(unverified.get("sub", ""))
        audiences = unverified.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else [str(a) for a in audiences or []]
        mine = [c for c in self.credentials if c.app_client_id == app.client_id and c.issuer == issuer]
        if not mine:
            raise EntraError(
                400,
                "invalid_client",
                700211,
                f"No matching federated identity record found for presented assertion issuer '{issuer}'. Please note "
                "that the matching is done using a case-sensitive comparison. Check your federated identity "
                "credential Subject, Audience and Issuer against the presented assertion.",
            )
        try:
            jwt.decode(
                assertion,
                _issuer_key("federation").public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise EntraError(401, "invalid_client", 700027, "Client assertion failed signature validation.") from exc
        now = self.tenant.now()
        stamp = now.strftime("%m/%d/%Y %H:%M:%S")
        if float(unverified.get("exp", 0)) <= now.timestamp() or float(unverified.get("nbf", 0)) > now.timestamp():
            expiry = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(float(unverified.get("exp", 0))))
            raise EntraError(
                400,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: {stamp}, expiry time of "
                f"assertion {expiry}.",
            )
        if not any(a in c.audiences for c in mine for a in audiences):
            raise EntraError(
                400,
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented assertion audience "
                f"'{','.join(audiences)}'. Please note that the matching is done using a case-sensitive comparison.",
            )
        if not any(c.subject == subject for c in mine):
            raise EntraError(
                400,
                "invalid_client",
                700213,
                f"No matching federated identity record found for presented assertion subject '{subject}'. Please "
                "note that the matching is done using a case-sensitive comparison.",
            )


def is_federated(app: App, assertion: str) -> bool:
    """A client assertion the app did not sign itself (``iss`` is not its client ID): a federated one."""
    try:
        issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return False
    return isinstance(issuer, str) and issuer != app.client_id


def federation_routes(federation: Federation, workdir: Path) -> web.RouteTableDef:
    """Admin routes: the issuer's OIDC documents, and minting a token file as the kubelet would."""
    routes = web.RouteTableDef()

    @routes.get("/_sandbox/oidc/.well-known/openid-configuration")
    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(federation.openid_configuration())

    @routes.get("/_sandbox/oidc/openid/v1/jwks")
    async def keys(request: web.Request) -> web.Response:
        return web.json_response(federation.jwks())

    @routes.post("/_sandbox/federated-token")
    async def federated_token(request: web.Request) -> web.Response:
        """Body (all optional): ``subject``, ``audience``, ``lifetime_seconds``, ``issuer``, ``file`` (a name in
        the sandbox's workdir). Answers ``{"path","token","issuer","subject","audience","expires_on"}``."""
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        unknown = set(body) - {"subject", "audience", "lifetime_seconds", "issuer", "file"}
        name = body.get("file", "federated-token")
        lifetime = body.get("lifetime_seconds", 3600)
        texts = [body.get(k, "x") for k in ("subject", "audience", "issuer")]
        if unknown or not isinstance(lifetime, int) or not all(isinstance(t, str) and t for t in texts):
            return web.json_response(
                {"error": "expected subject, audience, issuer (strings), lifetime_seconds (integer), file"}, status=400
            )
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            return web.json_response({"error": "file must be a plain file name"}, status=400)
        options: dict[str, Any] = {k: body[k] for k in ("subject", "audience", "issuer") if k in body}
        path = federation.write_token_file(workdir / name, lifetime_seconds=lifetime, **options)
        token = path.read_text(encoding="utf-8")
        claims = jwt.decode(token, options={"verify_signature": False})
        return web.json_response(
            {
                "path": str(path),
                "token": token,
                "issuer": claims["iss"],
                "subject": claims["sub"],
                "audience": claims["aud"][0],
                "expires_on": claims["exp"],
            }
        )

    return routes


# --- the App Service / Container Apps endpoint ---------------------------------------------------------------


@dataclass
class ManagedIdentityEndpoint:
    """``IDENTITY_ENDPOINT`` for one app on the platform; :attr:`header` is its ``IDENTITY_HEADER``."""

    tenant: Tenant
    issuer: TokenIssuer
    faults: FaultBook
    resource_of: Any
    """``(identifier) -> Resource``: the sign-in service's resource lookup (raises :class:`EntraError`)."""
    system_assigned: str | None = None
    """Client ID of the app acting as the system-assigned identity (None: the platform has none turned on)."""
    user_assigned: set[str] = field(default_factory=set)
    header: str = field(default_factory=lambda: secrets.token_hex(16).upper())
    requests: list[dict[str, str]] = field(default_factory=list)
    """What reached the endpoint (query parameters and whether the header matched), for tests."""

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[fault_middleware("login", self.faults, self._fault_response)])
        app.router.add_get(TOKEN_PATH, self.token)
        return app

    async def token(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        sent = request.headers.get("X-IDENTITY-HEADER", "")
        header_ok = bool(sent) and hmac.compare_digest(sent, self.header)
        self.requests.append({**query, "header_ok": str(header_ok).lower()})
        if not header_ok:
            return web.Response(status=401, text="Invalid secret token header.", content_type="text/plain")
        if query.get("api-version") != API_VERSION:
            return self._refusal(400, f"The api-version '{query.get('api-version', '')}' is not supported.")
        identifier = query.get("resource", "")
        if not identifier:
            return self._refusal(400, "The 'resource' parameter is required.")
        app = self._identity(query)
        if app is None:
            return self._refusal(400, "Unable to load the proper Managed Identity.")
        try:
            resource = self.resource_of(identifier)
        except EntraError as exc:
            return self._refusal(400, f"AADSTS{exc.code}: {exc.description}")
        lifetime = self.tenant.behaviour.token_lifetime_seconds
        access = self.issuer.app_token(
            resource=resource,
            app_id=app.client_id,
            sp_object_id=app.service_principal_id,
            roles=sorted(app.graph_roles if resource == "graph" else app.exchange_roles),
            lifetime_s=lifetime,
        )
        return web.json_response(
            {
                "access_token": access,
                "expires_on": str(int(self.tenant.now().timestamp()) + lifetime),
                "resource": identifier,
                "token_type": "Bearer",
                "client_id": app.client_id,
            }
        )

    def _identity(self, query: dict[str, str]) -> App | None:
        """The identity asked for: ``client_id`` / ``principal_id`` / ``mi_res_id`` select a user-assigned one,
        none of them the system-assigned one."""
        chosen = query.get("client_id") or query.get("principal_id") or query.get("mi_res_id")
        if chosen is None:
            return self.tenant.app(self.system_assigned) if self.system_assigned else None
        for app in self.tenant.apps.values():
            if app.client_id in self.user_assigned and chosen in (app.client_id, app.service_principal_id):
                return app
        return None

    def _refusal(self, status: int, message: str) -> web.Response:
        return web.json_response(
            {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}, status=status
        )

    def _fault_response(self, status: int, retry_after: int) -> web.Response:
        response = self._refusal(status, "A transient error has occurred. Please try again.")
        if status in (429, 503):
            response.headers["Retry-After"] = str(retry_after)
        return response
