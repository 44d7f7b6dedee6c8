"""Helpers the Exchange, permissions and audit tests share (import them explicitly; no conftest magic).

Everything talks to the sandbox over TLS with the real httpx client that :func:`graph.http.build_http_client`
builds. :class:`CmdletLog` records which cmdlets the sandbox actually ran (the sandbox keeps no request log, so
the test setup wraps its ``ExchangeService.execute``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from graph.exchange import ExchangeAdmin
from graph.http import build_http_client
from plugin.settings import M365Settings
from sandbox.runtime import Sandbox


@dataclass
class RecordingSleep:
    """Records every wait the client asks for and waits ``scale`` times as long (the retry still happens later)."""

    scale: float = 0.0
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds * self.scale)


@dataclass
class CmdletLog:
    """The cmdlets the sandbox executed (after authentication and throttling), in order."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def record_cmdlets(sandbox: Sandbox) -> CmdletLog:
    log = CmdletLog()
    original: Callable[..., Any] = sandbox.exchange.execute

    def execute(claims: Any, raw_body: bytes, *args: Any, **kwargs: Any) -> Any:
        try:
            cmdlet = json.loads(raw_body or b"null")["CmdletInput"]
            log.calls.append((str(cmdlet["CmdletName"]), dict(cmdlet.get("Parameters") or {})))
        except (ValueError, KeyError, TypeError):
            log.calls.append(("<invalid>", {}))
        return original(claims, raw_body, *args, **kwargs)

    sandbox.exchange.execute = execute  # type: ignore[method-assign,assignment]
    return log


def settings_for(sandbox: Sandbox, timeout: float = 30.0) -> M365Settings:
    return M365Settings(ca_file=sandbox.ca_path, exchange_url=sandbox.urls.exchange, timeout=timeout)


@contextlib.asynccontextmanager
async def exchange_for(sandbox: Sandbox, **options: Any) -> AsyncIterator[ExchangeAdmin]:
    """An :class:`ExchangeAdmin` on the sandbox with the app's Exchange token (``Exchange.ManageAsApp``)."""
    token = sandbox.app_token("exchange")

    async def token_source() -> str:
        return token

    async with build_http_client(settings_for(sandbox)) as http:
        yield ExchangeAdmin(http, token_source, base_url=sandbox.urls.exchange, tenant_id=sandbox.tenant.id, **options)
