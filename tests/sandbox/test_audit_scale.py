"""A tenant-wide audit of 10,000 mailboxes the way CIPP does it: paged tenant-wide Get-Mailbox and
Get-RecipientPermission, then Get-MailboxPermission in $batch calls of 10."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from sandbox.bulk import build_large_tenant
from sandbox.testing import SandboxFactory, manual_clock
from tests.sandbox.helpers import bearer, cmdlet, http


async def paged(client: httpx.AsyncClient, url: str, body: dict[str, Any], token: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = await client.post(next_url, json=body, headers={**bearer(token), "Prefer": "odata.maxpagesize=1000"})
        assert response.status_code == 200, response.text
        rows += response.json()["value"]
        next_url = response.json().get("@odata.nextLink")
    return rows


async def test_audit_of_ten_thousand_mailboxes(sandbox_factory: SandboxFactory) -> None:
    tenant = build_large_tenant(10_000, seed=1, clock=manual_clock())
    async with sandbox_factory(tenant) as sandbox, http(sandbox, timeout=60) as client:
        token = sandbox.app_token("exchange")
        invoke = f"{sandbox.urls.exchange}/adminapi/beta/{sandbox.tenant.id}/InvokeCommand"
        mailboxes = await paged(
            client,
            invoke + "?$select=Identity,PrimarySmtpAddress,GrantSendOnBehalfTo",
            cmdlet("Get-Mailbox", ResultSize="Unlimited"),
            token,
        )
        send_as = await paged(client, invoke, cmdlet("Get-RecipientPermission", ResultSize="Unlimited"), token)
        full_access: list[dict[str, Any]] = []
        gate = asyncio.Semaphore(4)

        async def batch(addresses: list[str]) -> None:
            requests = [
                {
                    "id": str(i),
                    "method": "POST",
                    "url": invoke,
                    "body": cmdlet("Get-MailboxPermission", Identity=a, IncludeUnresolvedPermissions=True),
                }
                for i, a in enumerate(addresses)
            ]
            async with gate:
                response = await client.post(
                    f"{sandbox.urls.exchange}/adminapi/beta/{sandbox.tenant.id}/$batch",
                    json={"requests": requests},
                    headers=bearer(token),
                )
            assert response.status_code == 200
            for item in response.json()["responses"]:
                assert item["status"] == 200
                full_access.extend(
                    r for r in item["body"]["value"] if not r["IsInherited"] and r["User"] != "NT AUTHORITY\\SELF"
                )

        addresses = [m["PrimarySmtpAddress"] for m in mailboxes]
        await asyncio.gather(*(batch(addresses[i : i + 10]) for i in range(0, len(addresses), 10)))

    expected = dict.fromkeys(("SendAs", "SendOnBehalf", "FullAccess"), 0)
    for grant in tenant.rights.records():
        expected[grant.right] += 1
    assert len(mailboxes) == len(tenant.mailboxes()) > 10_000
    assert len([r for r in send_as if r["Trustee"] != "NT AUTHORITY\\SELF"]) == expected["SendAs"]
    assert sum(len(m["GrantSendOnBehalfTo"]) for m in mailboxes) == expected["SendOnBehalf"]
    assert len(full_access) == expected["FullAccess"]
