"""A right granted through the Exchange admin API shows at once in Exchange's reads but changes what SMTP and
Graph accept only after the propagation delay (a ManualClock makes that exact)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import httpx

from sandbox.runtime import Sandbox
from sandbox.testing import SandboxFactory
from tests.sandbox.helpers import bearer, http, invoke

DELAY = 20


async def smtp_send_as_alice(sandbox: Sandbox) -> tuple[int, str]:
    message = EmailMessage()
    message["From"] = "alice@business.com"
    message["To"] = "alice@business.com"
    message["Subject"] = "emaildoctor test"
    message.set_content("test")
    try:
        _, reply = await aiosmtplib.send(
            message,
            hostname=sandbox.urls.smtp_host,
            port=sandbox.urls.smtp_starttls_port,
            start_tls=True,
            tls_context=sandbox.client_ssl_context(),
            username="admin@business.com",
            password="sandbox-admin-Pa55",
            timeout=5,
        )
    except aiosmtplib.SMTPDataError as exc:
        return exc.code, exc.message
    return 250, reply


async def graph_send_as_alice(client: httpx.AsyncClient, sandbox: Sandbox) -> int:
    response = await client.post(
        f"{sandbox.urls.graph}/v1.0/users/admin@business.com/sendMail",
        json={
            "message": {
                "subject": "emaildoctor test",
                "from": {"emailAddress": {"address": "alice@business.com"}},
                "toRecipients": [{"emailAddress": {"address": "alice@business.com"}}],
            }
        },
        headers=bearer(sandbox.app_token("graph")),
    )
    return response.status_code


async def trustees(client: httpx.AsyncClient, sandbox: Sandbox) -> list[str]:
    response = await invoke(client, sandbox, "Get-RecipientPermission", Identity="alice@business.com")
    return [row["Trustee"] for row in response.json()["value"]]


async def test_grant_applies_after_the_delay_and_removal_too(sandbox_factory: SandboxFactory) -> None:
    async with sandbox_factory(propagation_delay_seconds=DELAY) as sandbox, http(sandbox) as client:
        assert (await smtp_send_as_alice(sandbox))[0] == 554
        grant = {"Identity": "alice@business.com", "Trustee": "admin@business.com", "AccessRights": ["SendAs"]}
        assert (await invoke(client, sandbox, "Add-RecipientPermission", **grant)).status_code == 200

        assert await trustees(client, sandbox) == ["NT AUTHORITY\\SELF"]  # reads lag a change (live)
        sandbox.advance(1)  # past the read lag (exchange_read_lag_seconds), long before the propagation delay
        assert await trustees(client, sandbox) == ["NT AUTHORITY\\SELF", "admin@business.com"]
        code, text = await smtp_send_as_alice(sandbox)
        assert (code, text.split(";")[0]) == (554, "5.2.252 SendAsDenied")
        assert await graph_send_as_alice(client, sandbox) == 403
        rights = (
            await client.get(f"{sandbox.urls.admin}/_sandbox/rights", params={"mailbox": "alice@business.com"})
        ).json()
        assert [(r["right"], r["trustee"], r["state"]) for r in rights["rights"]] == [
            ("SendAs", "admin@business.com", "pending_grant")
        ]

        sandbox.advance(DELAY - 2)
        assert (await smtp_send_as_alice(sandbox))[0] == 554
        sandbox.advance(1)
        assert (await smtp_send_as_alice(sandbox))[0] == 250
        assert await graph_send_as_alice(client, sandbox) == 202

        assert (await invoke(client, sandbox, "Remove-RecipientPermission", **grant)).status_code == 200
        assert await trustees(client, sandbox) == ["NT AUTHORITY\\SELF", "admin@business.com"]  # read lag
        sandbox.advance(1)
        assert await trustees(client, sandbox) == ["NT AUTHORITY\\SELF"]
        assert (await smtp_send_as_alice(sandbox))[0] == 250  # still effective
        pending = (
            await client.get(f"{sandbox.urls.admin}/_sandbox/rights", params={"state": "pending_removal"})
        ).json()
        assert [r["mailbox"] for r in pending["rights"]] == ["alice@business.com"]
        sandbox.advance(DELAY - 1)
        assert (await smtp_send_as_alice(sandbox))[0] == 554
        assert await graph_send_as_alice(client, sandbox) == 403


async def test_send_on_behalf_grant_through_set_mailbox_reaches_graph(sandbox_factory: SandboxFactory) -> None:
    async with sandbox_factory(propagation_delay_seconds=DELAY) as sandbox, http(sandbox) as client:
        await invoke(
            client,
            sandbox,
            "Set-Mailbox",
            Identity="alice@business.com",
            GrantSendOnBehalfTo={"@odata.type": "#Exchange.GenericHashTable", "Add": "admin@business.com"},
        )
        assert await graph_send_as_alice(client, sandbox) == 403
        sandbox.advance(DELAY)
        assert await graph_send_as_alice(client, sandbox) == 202
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    [sent] = [m for m in sandbox.tenant.messages[alice.id] if m.folder == "inbox"]
    assert (sent.from_address, sent.sender_address) == ("alice@business.com", "admin@business.com")


async def test_full_access_for_the_app_governs_xoauth2(sandbox_factory: SandboxFactory) -> None:
    async with sandbox_factory(propagation_delay_seconds=DELAY) as sandbox, http(sandbox) as client:
        sp = sandbox.app.service_principal_id
        await invoke(
            client,
            sandbox,
            "Add-MailboxPermission",
            Identity="support@business.com",
            User=sp,
            AccessRights=["FullAccess"],
        )

        async def xoauth2() -> int:
            connection = aiosmtplib.SMTP(
                hostname=sandbox.urls.smtp_host,
                port=sandbox.urls.smtp_tls_port,
                use_tls=True,
                tls_context=sandbox.client_ssl_context(),
                timeout=5,
            )
            await connection.connect()
            try:
                await connection.auth_xoauth2("support@business.com", sandbox.app_token("exchange"))
            except aiosmtplib.SMTPAuthenticationError as exc:
                return exc.code
            finally:
                connection.close()
            return 235

        assert await xoauth2() == 535
        sandbox.advance(DELAY)
        assert await xoauth2() == 235
