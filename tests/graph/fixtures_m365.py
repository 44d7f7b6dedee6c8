"""Helpers for the Microsoft 365 tests (imported explicitly; no conftest): settings that point at a running
sandbox, the real msal / msgraph-sdk stack built from them, and a request log for what reached the sandbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
from pydantic import SecretStr

from graph.auth import AppTokenProvider
from graph.graph_client import GraphClient
from graph.http import build_http_client
from plugin.interfaces import SmtpAuthState
from plugin.settings import M365Settings
from sandbox.runtime import Sandbox
from sandbox.state import App


def m365_settings(
    sandbox: Sandbox, app: App | None = None, *, certificate: bool = False, **changes: Any
) -> M365Settings:
    """The settings ``emaildoctor sandbox`` would write, for ``app`` (default: the emaildoctor app)."""
    app = app or sandbox.app
    values: dict[str, Any] = {
        "tenant_id": sandbox.tenant.id,
        "client_id": app.client_id,
        "authority_host": sandbox.urls.login,
        "graph_url": sandbox.urls.graph,
        "exchange_url": sandbox.urls.exchange,
        "instance_discovery": False,
        "ca_file": sandbox.ca_path,
        "timeout": 10.0,
    }
    if certificate or "certificate_path" in changes:
        values["certificate_path"] = sandbox.app_certificate_path
    else:
        values["client_secret"] = SecretStr(app.secrets[0])
    values.update(changes)
    return M365Settings(**values)


def app_named(sandbox: Sandbox, name: str) -> App:
    return next(a for a in sandbox.tenant.apps.values() if a.name == name)


@dataclass
class RequestLog:
    """What a client sent: ``(method, url)`` pairs, recorded by an event hook on our own HTTP client."""

    requests: list[tuple[str, httpx.URL]] = field(default_factory=list)

    async def record(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url))

    def paths(self, method: str | None = None) -> list[str]:
        return [url.path for m, url in self.requests if method is None or m == method]

    def params(self, path_suffix: str, name: str) -> list[str]:
        return [url.params[name] for _, url in self.requests if url.path.endswith(path_suffix) and name in url.params]


class CountingSession(requests.Session):
    """msal's HTTP session for tests: trusts the sandbox CA only, ignores the environment, counts token POSTs."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = str(sandbox.ca_path)
        self.token_requests = 0
        self.hooks["response"].append(self._count)

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "POST" and response.url.endswith("/oauth2/v2.0/token"):
            self.token_requests += 1


@contextlib.asynccontextmanager
async def graph_stack(
    sandbox: Sandbox, settings: M365Settings | None = None, *, retry_delay: float = 0.0, max_retries: int = 3
) -> AsyncIterator[tuple[GraphClient, RequestLog]]:
    """A GraphClient on the real msal + msgraph-sdk stack, with a log of every request it sent."""
    settings = settings or m365_settings(sandbox)
    log = RequestLog()
    http = build_http_client(settings)
    http.event_hooks["request"].append(log.record)
    provider = AppTokenProvider(settings)
    try:
        async with GraphClient(
            settings, provider.credential(), http_client=http, retry_delay=retry_delay, max_retries=max_retries
        ) as graph:
            yield graph, log
    finally:
        await provider.aclose()


async def smtp_auth_enabled(mailbox: str) -> SmtpAuthState:
    """Stands in for the Exchange client's SMTP AUTH lookup (another module's job)."""
    return SmtpAuthState(tenant_disabled=True, mailbox_disabled=False)
