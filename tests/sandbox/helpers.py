"""Small helpers the sandbox tests share (real clients only; no mocks)."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.runtime import Sandbox


def http(sandbox: Sandbox, timeout: float = 10, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that trusts the sandbox CA."""
    return httpx.AsyncClient(verify=sandbox.client_ssl_context(), timeout=timeout, **kwargs)


def invoke_url(sandbox: Sandbox) -> str:
    return f"{sandbox.urls.exchange}/adminapi/beta/{sandbox.tenant.id}/InvokeCommand"


def cmdlet(name: str, **parameters: Any) -> dict[str, Any]:
    return {"CmdletInput": {"CmdletName": name, "Parameters": parameters}}


async def invoke(
    client: httpx.AsyncClient, sandbox: Sandbox, name: str, token: str | None = None, **parameters: Any
) -> httpx.Response:
    token = token or sandbox.app_token("exchange")
    return await client.post(
        invoke_url(sandbox), json=cmdlet(name, **parameters), headers={"Authorization": f"Bearer {token}"}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
