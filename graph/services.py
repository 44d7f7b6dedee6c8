"""Microsoft 365 assembled from settings: one sign-in, one HTTP client, Graph, the Exchange admin API, the
permissions service and the tenant audit. Implements :class:`plugin.interfaces.Microsoft365`.

Nothing here does I/O until first used; :meth:`M365Services.aclose` releases the connections.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType

from graph.audit import TenantAudit
from graph.auth import app_token_provider, exchange_scope, graph_scope
from graph.exchange import ExchangeAdmin
from graph.graph_client import GraphClient
from graph.http import build_http_client
from graph.mail import GraphMailer
from graph.permissions import PermissionService
from graph.token_lint import GRAPH_SEND_ROLE, SMTP_APP_ROLE, exchange_audiences, graph_audiences, lint_token
from graph.users import GraphUserDirectory
from plugin.clock import Clock
from plugin.errors import ConfigError, EmailDoctorError
from plugin.probe_request import TokenSource
from plugin.settings import M365Settings


class M365Services:
    def __init__(
        self,
        settings: M365Settings,
        *,
        clock: Clock | None = None,
        audit_concurrency: int = 8,
        exchange_token_source: TokenSource | None = None,
    ) -> None:
        """``exchange_token_source``: act in Exchange as a signed-in admin (device code) instead of as the app."""
        if not settings.configured or settings.tenant_id is None:
            raise ConfigError(
                "Microsoft 365 is not configured: set EMAILDOCTOR_M365__TENANT_ID, EMAILDOCTOR_M365__CLIENT_ID and a "
                "credential (see README.md, 'Connect a real tenant')"
            )
        self.settings = settings
        self.tokens = app_token_provider(settings)
        self._http = build_http_client(settings)
        self.graph = GraphClient(settings, self.tokens.credential())
        self.exchange = ExchangeAdmin(
            self._http,
            exchange_token_source or self.tokens.token_source(exchange_scope(settings)),
            base_url=settings.exchange_url,
            tenant_id=settings.tenant_id,
            timeout=settings.timeout,
            on_token_rejected=None if exchange_token_source else lambda: self.tokens.forget(exchange_scope(settings)),
        )
        self.permissions = PermissionService(self.exchange, clock=clock, readback_timeout=settings.readback_seconds)
        self.directory = GraphUserDirectory(
            self.graph, self.permissions.smtp_auth, exchange_kind=self.permissions.mailbox_kind
        )
        self.graph_mailer = GraphMailer(self.graph, confirm_delivery=settings.read_mail_to_confirm)
        self.audit = TenantAudit(self.exchange, self.directory, clock=clock, concurrency=audit_concurrency)

    # plugin.interfaces.Microsoft365
    @property
    def users(self) -> GraphUserDirectory:
        return self.directory

    @property
    def rights(self) -> PermissionService:
        return self.permissions

    @property
    def mailer(self) -> GraphMailer:
        return self.graph_mailer

    def smtp_token_source(self) -> TokenSource:
        return self.tokens.token_source(exchange_scope(self.settings))

    async def explain_token(self, for_smtp: bool) -> tuple[str, ...]:
        settings = self.settings
        if for_smtp:
            scope, audiences, role = exchange_scope(settings), exchange_audiences(settings), SMTP_APP_ROLE
        else:
            scope, audiences, role = graph_scope(settings), graph_audiences(settings), GRAPH_SEND_ROLE
        try:
            token = (await self.tokens.token(scope)).token
        except EmailDoctorError as exc:
            return (f"Sign-in failed before any token was issued: {exc}",)
        lint = lint_token(
            token,
            expected_audience=audiences,
            needed_role=role,
            needed_scope=None,
            now=datetime.now(UTC),
            expected_tenant=settings.tenant_id,
        )
        hint = (
            ()
            if not for_smtp
            else (
                "A valid token is still refused when the app's service principal is not registered in Exchange "
                "(New-ServicePrincipal) or lacks Full Access on the mailbox it signs in as.",
            )
        )
        return (*lint.evidence(), *hint)

    @property
    def secrets(self) -> list[str]:
        return self.tokens.secrets

    async def aclose(self) -> None:
        await self.graph.aclose()
        await self._http.aclose()
        await self.tokens.aclose()

    async def __aenter__(self) -> M365Services:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
