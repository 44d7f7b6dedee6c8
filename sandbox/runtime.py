"""The running sandbox: every service on 127.0.0.1 ephemeral ports, sharing one tenant.

async with Sandbox.running(workdir=tmp_path, clock=ManualClock()) as sandbox:
    sandbox.urls.graph, sandbox.ca_path, sandbox.settings_env(), sandbox.tenant …
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.admin import build_admin_app
from sandbox.clock import Clock, ManualClock, SystemClock
from sandbox.exchange_api import ExchangeService
from sandbox.faults import FaultBook
from sandbox.graph_api import GraphService
from sandbox.http import RunningSite, serve
from sandbox.identity import SignInService
from sandbox.loader import EXAMPLE_TENANT, load_tenant
from sandbox.managed_identity import (
    TOKEN_PATH,
    FederatedCredential,
    Federation,
    ManagedIdentityEndpoint,
    federation_routes,
)
from sandbox.slack import SlackClient, SlackSocketModeClient, SlackWorkspace, build_slack_app, load_workspace
from sandbox.smtp_server import SmtpService
from sandbox.state import App, Tenant
from sandbox.tls import SandboxTLS
from sandbox.tokens import Resource, TokenIssuer

EXAMPLE_DIRECTORY = EXAMPLE_TENANT.parent / "directory.yaml"
PRODUCT_APP = "emaildoctor"


@dataclass(frozen=True)
class SandboxUrls:
    login: str
    """The authority host, ``https://127.0.0.1:PORT`` (the authority is ``{login}/{tenant_id}``)."""
    graph: str
    """Graph's base URL without ``/v1.0``."""
    exchange: str
    """The Exchange admin API's base URL (``{exchange}/adminapi/beta/{tenant}/InvokeCommand``)."""
    admin: str
    """The sandbox admin API (``{admin}/_sandbox/…``)."""
    slack_api: str
    """Slack Web API base, ``https://127.0.0.1:PORT/api/`` (with the trailing slash slack_sdk wants)."""
    slack: str
    """Slack service root (response_urls, uploads)."""
    smtp_host: str
    smtp_starttls_port: int
    smtp_tls_port: int
    identity_endpoint: str = ""
    """The App Service managed identity endpoint (``IDENTITY_ENDPOINT``), plain HTTP on loopback as on the platform."""


class Sandbox:
    """Use :meth:`running`; the attributes are live (change ``sandbox.tenant`` and the services follow)."""

    def __init__(
        self,
        tenant: Tenant,
        faults: FaultBook,
        workdir: Path,
        tls: SandboxTLS,
        slack: SlackWorkspace | None,
        host: str,
    ) -> None:
        self.tenant = tenant
        self.clock: Clock = tenant.clock
        self.faults = faults
        self.workdir = workdir
        self.tls = tls
        self.ca_path = tls.ca_path
        self.slack = slack
        self.host = host
        self.issuer = TokenIssuer(tenant_id=tenant.id, issuer="", clock=tenant.clock)
        self.sign_in = SignInService(tenant, self.issuer, faults)
        self.graph = GraphService(tenant, self.issuer, faults)
        self.exchange = ExchangeService(tenant, self.issuer, faults)
        self.smtp = SmtpService(tenant, self.issuer, faults, tls.server_context, host=host)
        self.federation = Federation(tenant)
        self.sign_in.federation = self.federation
        self.managed_identity = ManagedIdentityEndpoint(tenant, self.issuer, faults, self.sign_in.resource)
        self._sites: list[RunningSite] = []
        self.urls: SandboxUrls
        self.app_certificate_path = workdir / "app-certificate.pem"
        self.directory_path = workdir / "directory.yaml"

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        tenant_path_or_state: Path | str | Tenant | None = None,
        *,
        workdir: Path,
        clock: Clock | None = None,
        faults: FaultBook | None = None,
        propagation_delay_seconds: float | None = None,
        host: str = "127.0.0.1",
    ) -> AsyncIterator[Sandbox]:
        """Start every service (default tenant: ``sandbox/examples/tenant.yaml``) and stop them on exit."""
        if isinstance(tenant_path_or_state, Tenant):
            tenant = tenant_path_or_state
            if clock is not None:
                tenant.clock = clock
        else:
            path = Path(tenant_path_or_state) if tenant_path_or_state is not None else EXAMPLE_TENANT
            tenant = load_tenant(path, clock or SystemClock())
        if propagation_delay_seconds is not None:
            tenant.propagation_delay_seconds = propagation_delay_seconds
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        slack = load_workspace(tenant.slack) if tenant.slack is not None else None
        sandbox = cls(tenant, faults or FaultBook(), workdir, SandboxTLS.create(workdir), slack, host)
        try:
            await sandbox._start()
            yield sandbox
        finally:
            await sandbox._stop()

    async def _start(self) -> None:
        context = self.tls.server_context
        login = await self._serve(self.sign_in.build_app(), context)
        self.issuer.issuer = f"{login.url}/{self.tenant.id}/v2.0"
        graph = await self._serve(self.graph.build_app(), context)
        exchange = await self._serve(self.exchange.build_app(), context)
        admin_app = build_admin_app(self.tenant, self.faults, self.sign_in)
        admin_app.add_routes(federation_routes(self.federation, self.workdir))
        admin = await self._serve(admin_app, context)
        identity = await self._serve(self.managed_identity.build_app(), None)  # plain HTTP, like the platform's
        if self.slack is not None:
            slack_url = (await self._serve(build_slack_app(self.slack, self.faults, self.tenant.clock), context)).url
        else:
            slack_url = admin.url
        await self.smtp.start()
        self.sign_in.resources.update({graph.url.lower(): "graph", exchange.url.lower(): "exchange"})
        self.urls = SandboxUrls(
            login=login.url,
            graph=graph.url,
            exchange=exchange.url,
            admin=admin.url,
            slack_api=f"{slack_url}/api/",
            slack=slack_url,
            smtp_host=self.host,
            smtp_starttls_port=self.smtp.starttls_port,
            smtp_tls_port=self.smtp.tls_port,
            identity_endpoint=f"{identity.url}{TOKEN_PATH}",
        )
        self._trust_product_app(admin.url)
        self._write_app_certificate()
        self._write_directory()

    async def _serve(self, app: Any, context: ssl.SSLContext | None) -> RunningSite:
        site = await serve(app, context, host=self.host)
        self._sites.append(site)
        return site

    async def _stop(self) -> None:
        await self.smtp.stop()
        for site in reversed(self._sites):
            await site.stop()
        self._sites = []

    def _trust_product_app(self, admin_url: str) -> None:
        """The product app is the platform's identity (system- and user-assigned) and federates with the sandbox's
        OIDC issuer for :data:`~sandbox.managed_identity.DEFAULT_SUBJECT`."""
        self.federation.issuer = f"{admin_url}/_sandbox/oidc"
        self.federation.credentials.append(FederatedCredential(self.app.client_id, self.federation.issuer))
        self.managed_identity.system_assigned = self.app.client_id
        self.managed_identity.user_assigned.add(self.app.client_id)

    # --- what clients need ------------------------------------------------------------------------
    @property
    def authority(self) -> str:
        return f"{self.urls.login}/{self.tenant.id}"

    @property
    def app(self) -> App:
        """The product's own app registration (``emaildoctor``)."""
        found = next((a for a in self.tenant.apps.values() if a.name == PRODUCT_APP), None)
        if found is None:
            found = next(iter(self.tenant.apps.values()))
        return found

    def advance(self, seconds: float) -> None:
        """Move a :class:`ManualClock` forward (e.g. past the propagation delay)."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("the sandbox runs on the system clock; start it with clock=ManualClock()")
        self.clock.advance(seconds)

    def app_token(self, resource: Resource, app: App | None = None) -> str:
        """An app-only access token as the sign-in service would issue it (roles = the app's consented permissions)."""
        app = app or self.app
        return self.issuer.app_token(
            resource=resource,
            app_id=app.client_id,
            sp_object_id=app.service_principal_id,
            roles=sorted(app.graph_roles if resource == "graph" else app.exchange_roles),
            lifetime_s=self.tenant.behaviour.token_lifetime_seconds,
        )

    def user_token(self, resource: Resource, upn: str, scopes: list[str], app: App | None = None) -> str:
        """A delegated access token for ``upn`` with ``scopes`` (e.g. ``["SMTP.Send"]``)."""
        app = app or self.app
        user = self.tenant.user(upn)
        if user is None:
            raise LookupError(f"no user {upn!r}")
        return self.issuer.user_token(
            resource=resource,
            app_id=app.client_id,
            user_id=user.id,
            upn=user.upn,
            name=user.display_name,
            scopes=scopes,
            lifetime_s=self.tenant.behaviour.token_lifetime_seconds,
        )

    def slack_client(self, bot_url: str, **options: Any) -> SlackClient:
        """A :class:`SlackClient` that plays Slack towards the bot at ``bot_url`` for this sandbox's workspace."""
        if self.slack is None:
            raise LookupError("this tenant file has no slack: section")
        return SlackClient(self.slack, bot_url=bot_url, slack_base_url=self.urls.slack, **options)

    def socket_mode_client(self, **options: Any) -> SlackSocketModeClient:
        """A :class:`SlackSocketModeClient` that plays Slack towards the app connected over Socket Mode."""
        if self.slack is None:
            raise LookupError("this tenant file has no slack: section")
        return SlackSocketModeClient(self.slack, slack_base_url=self.urls.slack, **options)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the sandbox CA (for httpx, aiohttp, aiosmtplib)."""
        return self.tls.client_context()

    def settings_env(self) -> dict[str, str]:
        """The ``EMAILDOCTOR_…`` settings (and the directory's password variables) that point emaildoctor here."""
        app = self.app
        slack = self.tenant.slack or {}
        env = {
            "EMAILDOCTOR_M365__TENANT_ID": self.tenant.id,
            "EMAILDOCTOR_M365__CLIENT_ID": app.client_id,
            "EMAILDOCTOR_M365__CLIENT_SECRET": app.secrets[0] if app.secrets else "",
            "EMAILDOCTOR_M365__AUTHORITY_HOST": self.urls.login,
            "EMAILDOCTOR_M365__GRAPH_URL": self.urls.graph,
            "EMAILDOCTOR_M365__EXCHANGE_URL": self.urls.exchange,
            "EMAILDOCTOR_M365__INSTANCE_DISCOVERY": "false",
            "EMAILDOCTOR_M365__CA_FILE": str(self.ca_path),
            "EMAILDOCTOR_M365__PROPAGATION_MINUTES": _number(self.tenant.propagation_delay_seconds / 60),
            "EMAILDOCTOR_SMTP__CA_FILE": str(self.ca_path),
            "EMAILDOCTOR_DIRECTORY__PATH": str(self.directory_path),
            "EMAILDOCTOR_SLACK__BOT_TOKEN": str(_get(slack, "bot", "token")),
            "EMAILDOCTOR_SLACK__SIGNING_SECRET": str(slack.get("signing_secret", "")),
            "EMAILDOCTOR_SLACK__API_URL": self.urls.slack_api,
            "EMAILDOCTOR_SLACK__CA_FILE": str(self.ca_path),
            "EMAILDOCTOR_SLACK__IT_USERGROUP_ID": _find_id(slack.get("usergroups"), "handle", "it-admins"),
            "EMAILDOCTOR_SLACK__APPROVALS_CHANNEL": _find_id(slack.get("channels"), "name", "it-approvals"),
            "EMAILDOCTOR_SLACK__AUDIT_CHANNEL": _find_id(slack.get("channels"), "name", "mail-audit"),
        }
        if slack.get("app_token"):
            env["EMAILDOCTOR_SLACK__APP_TOKEN"] = str(slack["app_token"])  # Socket Mode, with MODE=socket
        env.update(self._password_env())
        return env

    def secretless_env(self, credential: str, *, token_file: Path | None = None) -> dict[str, str]:
        """:meth:`settings_env` signing in with ``managed_identity`` (add :meth:`identity_endpoint_env` to the
        process environment) or ``workload_identity`` (``token_file``: see :meth:`write_federated_token`)."""
        env = {k: v for k, v in self.settings_env().items() if k != "EMAILDOCTOR_M365__CLIENT_SECRET"}
        env["EMAILDOCTOR_M365__CREDENTIAL"] = credential
        if token_file is not None:
            env["EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE"] = str(token_file)
        return env

    def identity_endpoint_env(self, header: str | None = None) -> dict[str, str]:
        """``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` as App Service sets them for the process."""
        return {
            "IDENTITY_ENDPOINT": self.urls.identity_endpoint,
            "IDENTITY_HEADER": header or self.managed_identity.header,
        }

    def write_federated_token(self, path: Path | None = None, **options: Any) -> Path:
        """Mint a service-account token into ``path`` (default ``{workdir}/federated-token``) as the kubelet would;
        ``options``: ``subject``, ``audience``, ``lifetime_seconds`` (negative: expired), ``issuer`` (untrusted)."""
        return self.federation.write_token_file(path or self.workdir / "federated-token", **options)

    def write_env_file(self, path: Path) -> Path:
        """Write :meth:`settings_env` as a ``.env`` file readable only by its owner (it holds secrets)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            "# emaildoctor sandbox settings: secrets for the local sandbox only. Regenerated on every start.",
            *(f"{key}={_quote(value)}" for key, value in self.settings_env().items()),
        ]
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def _password_env(self) -> dict[str, str]:
        """``ADMIN_SMTP_PASSWORD`` and friends: each ``password_env`` the directory names, from the tenant."""
        try:
            directory = yaml.safe_load(EXAMPLE_DIRECTORY.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return {}
        servers = [_get(directory, "system", "server")]
        servers += [e.get("server") for e in directory.get("employees", []) if isinstance(e, dict)]
        env: dict[str, str] = {}
        for server in servers:
            if not isinstance(server, dict) or not server.get("password_env") or not server.get("user"):
                continue
            user = self.tenant.user_by_address(str(server["user"]))
            if user is not None and user.smtp_password:
                env[str(server["password_env"])] = user.smtp_password
        return env

    def _write_app_certificate(self) -> None:
        cert = next((c for c in self.app.certificates if c.private_key_pem), None)
        if cert is None:
            return
        assert cert.private_key_pem is not None
        self.app_certificate_path.write_text(cert.private_key_pem + cert.pem, encoding="utf-8")
        self.app_certificate_path.chmod(0o600)

    def _write_directory(self) -> None:
        text = EXAMPLE_DIRECTORY.read_text(encoding="utf-8")
        text = re.sub(r"(?m)^(\s*host:\s*)smtp\.office365\.com\b", rf"\g<1>{self.host}", text)
        text = re.sub(r"(?m)^(\s*port:\s*)587\b", rf"\g<1>{self.urls.smtp_starttls_port}", text)
        text = re.sub(r"(?m)^(\s*port:\s*)465\b", rf"\g<1>{self.urls.smtp_tls_port}", text)
        header = (
            "# Written by the emaildoctor sandbox: sandbox/examples/directory.yaml with smtp.office365.com replaced by the\n"
            "# sandbox's SMTP submission service. Regenerated on every start.\n"
        )
        self.directory_path.write_text(header + text, encoding="utf-8")


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if data is not None else ""


def _find_id(items: Any, key: str, value: str) -> str:
    for item in items or []:
        if isinstance(item, dict) and item.get(key) == value:
            return str(item.get("id", ""))
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(round(value, 6))


def _quote(value: str) -> str:
    if re.fullmatch(r"[\w@%+=:,./~-]*", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
