"""Sign-in: a Microsoft Entra ID v2.0 authority at ``https://127.0.0.1:PORT/{tenant}``.

OpenID configuration, instance discovery, JWKS, and the token endpoint for client credentials (client
secret, certificate assertion, or a federated assertion: :mod:`sandbox.managed_identity`), device code and
refresh tokens, with Entra's error bodies.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from sandbox.client_assertion import check_client_assertion
from sandbox.entra_errors import EntraError, error_body, missing_parameter
from sandbox.faults import FaultBook
from sandbox.http import fault_middleware
from sandbox.managed_identity import Federation, is_federated
from sandbox.state import App, Tenant
from sandbox.tokens import GRAPH_APP_ID, RESOURCE_APP_IDS, Resource, TokenIssuer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
CANONICAL_RESOURCES: dict[str, Resource] = {
    "https://graph.microsoft.com": "graph",
    GRAPH_APP_ID: "graph",
    "https://outlook.office365.com": "exchange",
    "https://outlook.office.com": "exchange",
    RESOURCE_APP_IDS["exchange"]: "exchange",
}


@dataclass
class DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    resource: Resource
    scopes: list[str]
    expires_at: datetime
    approved_upn: str | None = None


@dataclass
class RefreshGrant:
    client_id: str
    user_id: str
    resource: Resource
    scopes: list[str]


@dataclass
class SignInService:
    tenant: Tenant
    issuer: TokenIssuer
    faults: FaultBook
    resources: dict[str, Resource] = field(default_factory=dict)
    """The sandbox's own service base URLs, accepted as ``{url}/.default`` besides the canonical ones."""
    device_flows: dict[str, DeviceFlow] = field(default_factory=dict)
    refresh_grants: dict[str, RefreshGrant] = field(default_factory=dict)
    federation: Federation | None = None
    """Workload identity federation: the OIDC issuer whose tokens apps with a federated credential accept."""

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[fault_middleware("login", self.faults, self._fault_response)])
        app.router.add_get("/common/discovery/instance", self.instance_discovery)
        app.router.add_get("/{tenant}/discovery/instance", self.instance_discovery)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self.keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.token)
        app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", self.devicecode)
        return app

    # --- discovery -------------------------------------------------------------------------------
    async def instance_discovery(self, request: web.Request) -> web.Response:
        host = request.host
        return web.json_response(
            {
                "tenant_discovery_endpoint": f"https://{host}/{self.tenant.id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    async def openid_configuration(self, request: web.Request) -> web.Response:
        try:
            self._check_tenant(request.match_info["tenant"])
        except EntraError as exc:
            return self._error(exc)
        base = f"https://{request.host}/{self.tenant.id}"
        return web.json_response(
            {
                "issuer": f"{base}/v2.0",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "userinfo_endpoint": f"https://{request.host}/oidc/userinfo",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "name", "oid", "tid", "preferred_username"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def keys(self, request: web.Request) -> web.Response:
        return web.json_response(self.issuer.jwks())

    # --- token -----------------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            self._check_tenant(request.match_info["tenant"])
            body = self._grant(request, form)
        except EntraError as exc:
            return self._error(exc)
        return web.json_response(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _grant(self, request: web.Request, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if grant_type == "client_credentials":
            return self._client_credentials(request, form)
        if grant_type == DEVICE_CODE_GRANT:
            return self._device_code_grant(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        if not grant_type:
            raise missing_parameter("grant_type")
        raise EntraError(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )

    def _client_credentials(self, request: web.Request, form: dict[str, str]) -> dict[str, Any]:
        app = self._app(form)
        self._authenticate_client(request, app, form)
        scope = form.get("scope", "").strip()
        if not scope:
            raise missing_parameter("scope")
        parts = scope.split()
        if len(parts) != 1 or not parts[0].endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                70011,
                f"The provided request must include a 'scope' input parameter. The provided value for the input "
                f"parameter 'scope' is not valid. The scope {scope} is not valid. Client credential flows must have "
                f"a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = self.resource(parts[0].removesuffix("/.default"))
        roles = app.graph_roles if resource == "graph" else app.exchange_roles
        lifetime = self.tenant.behaviour.token_lifetime_seconds
        token = self.issuer.app_token(
            resource=resource,
            app_id=app.client_id,
            sp_object_id=app.service_principal_id,
            roles=sorted(roles),
            lifetime_s=lifetime,
        )
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}

    def _authenticate_client(self, request: web.Request, app: App, form: dict[str, str]) -> None:
        if "client_secret" in form:
            if form["client_secret"] not in app.secrets:
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                    f"value, not the client secret ID, for a secret added to app '{app.client_id}'.",
                )
            return
        if "client_assertion" in form:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise EntraError(
                    400, "invalid_request", 50027, "JWT token is invalid or malformed: client_assertion_type."
                )
            if self.federation is not None and is_federated(app, form["client_assertion"]):
                self.federation.check(app, form["client_assertion"])
            else:
                check_client_assertion(request, self.tenant.id, app, form["client_assertion"])
            return
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    # --- device code -----------------------------------------------------------------------------
    async def devicecode(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            self._check_tenant(request.match_info["tenant"])
            app = self._public_app(form)
            resource, scopes = self._delegated_scopes(form.get("scope", ""))
        except EntraError as exc:
            return self._error(exc)
        behaviour = self.tenant.behaviour
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        flow = DeviceFlow(
            device_code=secrets.token_urlsafe(48),
            user_code=user_code,
            client_id=app.client_id,
            resource=resource,
            scopes=scopes,
            expires_at=self.tenant.now() + timedelta(seconds=behaviour.device_code_lifetime_seconds),
        )
        self.device_flows[user_code] = flow
        url = "https://microsoft.com/devicelogin"
        return web.json_response(
            {
                "user_code": user_code,
                "device_code": flow.device_code,
                "verification_uri": url,
                "expires_in": behaviour.device_code_lifetime_seconds,
                "interval": behaviour.device_code_interval_seconds,
                "message": f"To sign in, use a web browser to open the page {url} and enter the code {user_code} "
                "to authenticate.",
            }
        )

    def approve(self, user_code: str, upn: str) -> DeviceFlow:
        """Sign a user in for a pending device code (what the person would do in the browser)."""
        flow = self.device_flows.get(user_code.strip().upper())
        if flow is None:
            raise LookupError(f"no pending device code {user_code!r}")
        user = self.tenant.user(upn)
        if user is None or not user.account_enabled or user.user_type != "Member":
            raise LookupError(f"{upn!r} is not an enabled member user of the tenant")
        flow.approved_upn = user.upn
        return flow

    def _device_code_grant(self, form: dict[str, str]) -> dict[str, Any]:
        app = self._app(form)
        flow = next((f for f in self.device_flows.values() if f.device_code == form.get("device_code")), None)
        if flow is None or flow.client_id != app.client_id:
            raise EntraError(400, "invalid_grant", 70000, "The provided value for the 'device_code' is not valid.")
        if self.tenant.now() >= flow.expires_at:
            raise EntraError(
                400, "expired_token", 70020, "The provided value for the input parameter 'device_code' is expired."
            )
        if flow.approved_upn is None:
            raise EntraError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        del self.device_flows[flow.user_code]
        user = self.tenant.user(flow.approved_upn)
        assert user is not None
        return self._user_tokens(app, user.id, flow.resource, flow.scopes)

    def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        app = self._app(form)
        grant = self.refresh_grants.pop(form.get("refresh_token", ""), None)
        if grant is None or grant.client_id != app.client_id:
            raise EntraError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        resource, scopes = grant.resource, grant.scopes
        if form.get("scope"):
            resource, scopes = self._delegated_scopes(form["scope"])
        return self._user_tokens(app, grant.user_id, resource, scopes)

    def _user_tokens(self, app: App, user_id: str, resource: Resource, scopes: list[str]) -> dict[str, Any]:
        user = self.tenant.users[user_id]
        missing = [s for s in scopes if s not in app.delegated_scopes]
        if missing:
            raise EntraError(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID '{app.client_id}' named "
                f"'{app.name}'. Send an interactive authorization request for this user and resource.",
            )
        lifetime = self.tenant.behaviour.token_lifetime_seconds
        access = self.issuer.user_token(
            resource=resource,
            app_id=app.client_id,
            user_id=user.id,
            upn=user.upn,
            name=user.display_name,
            scopes=scopes,
            lifetime_s=lifetime,
        )
        refresh = secrets.token_urlsafe(48)
        self.refresh_grants[refresh] = RefreshGrant(app.client_id, user.id, resource, scopes)
        prefix = "https://graph.microsoft.com/" if resource == "graph" else "https://outlook.office.com/"
        client_info = base64.urlsafe_b64encode(json.dumps({"uid": user.id, "utid": self.tenant.id}).encode()).decode()
        return {
            "token_type": "Bearer",
            "scope": " ".join(prefix + s for s in scopes),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": self.issuer.id_token(
                client_id=app.client_id, user_id=user.id, upn=user.upn, name=user.display_name
            ),
            "client_info": client_info.rstrip("="),
        }

    # --- helpers ---------------------------------------------------------------------------------
    def _delegated_scopes(self, scope: str) -> tuple[Resource, list[str]]:
        resources: set[Resource] = set()
        names: list[str] = []
        for item in scope.split():
            if item in OIDC_SCOPES:
                continue
            if "/" in item:
                base, _, name = item.rpartition("/")
                resources.add(self.resource(base))
            else:
                base, name = "", item
                resources.add("graph")
            if name != ".default":
                names.append(name)
        if len(resources) != 1:
            raise EntraError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
            )
        return resources.pop(), names

    def resource(self, identifier: str) -> Resource:
        """The service a resource identifier (URL or app ID) names; :class:`EntraError` 500011 if none."""
        key = identifier.rstrip("/")
        found = CANONICAL_RESOURCES.get(key.lower()) or self.resources.get(key.lower())
        if found is None:
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {identifier} was not found in the tenant named {self.tenant.name}. "
                "This can happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
            )
        return found

    def _app(self, form: dict[str, str]) -> App:
        client_id = form.get("client_id", "")
        if not client_id:
            raise missing_parameter("client_id")
        app = self.tenant.app(client_id)
        if app is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant.name}'. "
                "This can happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        return app

    def _public_app(self, form: dict[str, str]) -> App:
        app = self._app(form)
        if not app.public_client:
            raise EntraError(
                400,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        return app

    def _check_tenant(self, value: str) -> None:
        if not self.tenant.knows_tenant(value):
            raise EntraError(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{value}' not found. Check to make sure you have the correct tenant ID and are signing into "
                "the correct cloud. Check with your subscription administrator, this may happen if there are no active "
                "subscriptions for the tenant.",
            )

    def _error(self, exc: EntraError, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(error_body(exc, self.tenant.now()), status=exc.status, headers=headers)

    def _fault_response(self, status: int, retry_after: int) -> web.Response:
        exc = EntraError(status, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
        headers = {"Retry-After": str(retry_after)} if status in (429, 503) else None
        return self._error(exc, headers)
