"""The sandbox admin API, and faults set through it taking effect on every service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from graph.token_lint import decode_claims
from sandbox.clock import SystemClock
from sandbox.runtime import Sandbox
from sandbox.testing import SandboxFactory
from tests.sandbox.helpers import bearer, http, invoke


def smtp(sandbox: Sandbox, timeout: float = 5) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=sandbox.urls.smtp_host,
        port=sandbox.urls.smtp_starttls_port,
        start_tls=True,
        tls_context=sandbox.client_ssl_context(),
        timeout=timeout,
    )


async def test_faults_are_read_and_changed_through_the_admin_api(sandbox: Sandbox) -> None:
    admin = f"{sandbox.urls.admin}/_sandbox"
    async with http(sandbox) as client:
        everything = (await client.get(f"{admin}/faults")).json()
        patched = await client.patch(
            f"{admin}/faults/graph", json={"error_rate": 1.0, "error_status": 503, "retry_after_s": 4}
        )
        failing = await client.get(f"{sandbox.urls.graph}/v1.0/users", headers=bearer(sandbox.app_token("graph")))
        reset = await client.post(f"{admin}/faults/reset")
        working = await client.get(f"{sandbox.urls.graph}/v1.0/users", headers=bearer(sandbox.app_token("graph")))
        bad_value = await client.patch(f"{admin}/faults/graph", json={"error_rate": 2})
        bad_field = await client.patch(f"{admin}/faults/graph", json={"colour": "red"})
        bad_service = await client.patch(f"{admin}/faults/fax", json={})
        bad_json = await client.patch(f"{admin}/faults/graph", content=b"{nope")
    assert set(everything) == {"login", "graph", "exchange", "smtp", "slack"}
    assert patched.json()["error_rate"] == 1.0
    assert failing.status_code == 503
    assert failing.headers["Retry-After"] == "4"
    assert failing.json()["error"]["code"] == "serviceNotAvailable"
    assert reset.status_code == 200 and working.status_code == 200
    assert bad_value.status_code == 400 and "error_rate must be between 0 and 1" in bad_value.json()["error"]
    assert bad_field.status_code == 400 and "colour" in bad_field.json()["error"]
    assert bad_service.status_code == 404
    assert bad_json.status_code == 400
    assert sandbox.faults.get("graph").error_rate == 0.0


async def test_graph_throttle_burst_has_retry_after(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        await client.patch(
            f"{sandbox.urls.admin}/_sandbox/faults/graph", json={"throttle_burst": 2, "retry_after_s": 9}
        )
        responses = [
            await client.get(
                f"{sandbox.urls.graph}/v1.0/users/bob@business.com", headers=bearer(sandbox.app_token("graph"))
            )
            for _ in range(3)
        ]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == "9,120"  # a list, as live Graph sends it
    assert responses[0].json()["error"]["code"] == "ApplicationThrottled"


async def test_exchange_drop_and_latency(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        await client.patch(f"{sandbox.urls.admin}/_sandbox/faults/exchange", json={"drop_rate": 1.0})
        with pytest.raises(httpx.TransportError):
            await invoke(client, sandbox, "Get-TransportConfig")
        await client.patch(f"{sandbox.urls.admin}/_sandbox/faults/exchange", json={"drop_rate": 0.0, "latency_ms": 400})
    async with http(sandbox, timeout=0.2) as client:
        with pytest.raises(httpx.TimeoutException):
            await invoke(client, sandbox, "Get-TransportConfig")


async def test_smtp_slow_stage_makes_the_client_time_out(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        await client.patch(
            f"{sandbox.urls.admin}/_sandbox/faults/smtp", json={"slow_stage": "mail", "slow_stage_ms": 800}
        )
    connection = smtp(sandbox, timeout=0.3)
    await connection.connect()
    await connection.login("bob@business.com", "sandbox-bob-Pa55")
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await connection.mail("bob@business.com")
    connection.close()


async def test_smtp_banner_delay_and_drop(sandbox: Sandbox) -> None:
    sandbox.faults.set("smtp", slow_stage="banner", slow_stage_ms=800)
    slow = smtp(sandbox, timeout=0.3)
    with pytest.raises((aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectTimeoutError)):
        await slow.connect()
    slow.close()
    sandbox.faults.reset("smtp")
    sandbox.faults.set("smtp", drop_rate=1.0)
    dropped = smtp(sandbox)
    with pytest.raises((aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError)):
        await dropped.connect()
    dropped.close()


async def test_smtp_throttle_bursts(sandbox: Sandbox) -> None:
    sandbox.faults.set("smtp", throttle_burst=1)
    connection = smtp(sandbox)
    await connection.connect()
    await connection.login("bob@business.com", "sandbox-bob-Pa55")
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
        await connection.mail("bob@business.com")
    assert (caught.value.code, caught.value.message) == (
        432,
        "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
    )
    connection.close()
    sandbox.faults.set("smtp", throttle_burst=1, throttle_reply="421 4.7.0 Too many connections, try again later")
    refused = smtp(sandbox)
    with pytest.raises(aiosmtplib.SMTPConnectError) as refusal:
        await refused.connect()
    refused.close()
    assert "421" in str(refusal.value)
    sandbox.faults.set("smtp", error_rate=1.0)
    failing = smtp(sandbox)
    with pytest.raises(aiosmtplib.SMTPConnectError, match="421"):
        await failing.connect()
    failing.close()


async def test_tenant_switches_and_mailbox_patch(sandbox: Sandbox) -> None:
    admin = f"{sandbox.urls.admin}/_sandbox"
    async with http(sandbox) as client:
        switched = await client.patch(
            f"{admin}/tenant", json={"security_defaults": True, "propagation_delay_seconds": 30}
        )
        bad = await client.patch(f"{admin}/tenant", json={"security_defaults": "yes"})
        unknown = await client.patch(f"{admin}/tenant", json={"wifi": True})
        mailbox = await client.patch(f"{admin}/mailboxes/alice@business.com", json={"smtp_auth_disabled": False})
        bad_mailbox = await client.patch(f"{admin}/mailboxes/alice@business.com", json={"smtp_auth_disabled": "no"})
        missing = await client.patch(f"{admin}/mailboxes/ghost@business.com", json={"smtp_auth_disabled": None})
        settings = await client.patch(f"{admin}/settings", json={"smtp_send_as_check": "both"})
        bad_settings = await client.patch(f"{admin}/settings", json={"smtp_send_as_check": "sometimes"})
    assert switched.json()["security_defaults"] is True and sandbox.tenant.propagation_delay_seconds == 30
    assert bad.status_code == 400 and unknown.status_code == 400
    assert mailbox.json() == {"mailbox": "alice@business.com", "smtp_auth_disabled": False}
    assert bad_mailbox.status_code == 400 and missing.status_code == 404
    assert settings.json()["smtp_send_as_check"] == "both" and sandbox.tenant.behaviour.smtp_send_as_check == "both"
    assert bad_settings.status_code == 400
    assert sandbox.tenant.security_defaults is True


async def test_clock_advance_and_messages(sandbox: Sandbox) -> None:
    admin = f"{sandbox.urls.admin}/_sandbox"
    before = sandbox.clock.now()
    async with http(sandbox) as client:
        advanced = await client.post(f"{admin}/clock/advance", json={"seconds": 90})
        bad = await client.post(f"{admin}/clock/advance", json={"seconds": "soon"})
        await client.post(
            f"{sandbox.urls.graph}/v1.0/users/erin@business.com/sendMail",
            json={"message": {"subject": "hi", "toRecipients": [{"emailAddress": {"address": "bob@business.com"}}]}},
            headers=bearer(sandbox.app_token("graph")),
        )
        messages = await client.get(f"{admin}/mailboxes/bob@business.com/messages")
    assert advanced.status_code == 200
    assert (sandbox.clock.now() - before).total_seconds() == 90
    assert bad.status_code == 400
    [received] = messages.json()["messages"]
    assert (received["subject"], received["from"], received["via"]) == ("hi", "erin@business.com", "graph")


async def test_clock_advance_needs_a_manual_clock(sandbox_factory: SandboxFactory) -> None:
    async with sandbox_factory(clock=SystemClock()) as sandbox, http(sandbox) as client:
        response = await client.post(f"{sandbox.urls.admin}/_sandbox/clock/advance", json={"seconds": 5})
    assert response.status_code == 409


async def test_sandbox_files_and_settings_env(sandbox: Sandbox, tmp_path: Path) -> None:
    env = sandbox.settings_env()
    assert set(env) == {
        "EMAILDOCTOR_M365__TENANT_ID", "EMAILDOCTOR_M365__CLIENT_ID", "EMAILDOCTOR_M365__CLIENT_SECRET",
        "EMAILDOCTOR_M365__AUTHORITY_HOST", "EMAILDOCTOR_M365__GRAPH_URL", "EMAILDOCTOR_M365__EXCHANGE_URL",
        "EMAILDOCTOR_M365__INSTANCE_DISCOVERY", "EMAILDOCTOR_M365__CA_FILE", "EMAILDOCTOR_M365__PROPAGATION_MINUTES",
        "EMAILDOCTOR_SMTP__CA_FILE", "EMAILDOCTOR_DIRECTORY__PATH", "EMAILDOCTOR_SLACK__BOT_TOKEN",
        "EMAILDOCTOR_SLACK__SIGNING_SECRET", "EMAILDOCTOR_SLACK__APP_TOKEN", "EMAILDOCTOR_SLACK__API_URL",
        "EMAILDOCTOR_SLACK__CA_FILE",
        "EMAILDOCTOR_SLACK__IT_USERGROUP_ID", "EMAILDOCTOR_SLACK__APPROVALS_CHANNEL", "EMAILDOCTOR_SLACK__AUDIT_CHANNEL",
        "ADMIN_SMTP_PASSWORD", "BOB_SMTP_PASSWORD", "SUPPORT_SMTP_PASSWORD",
    }  # fmt: skip
    assert env["EMAILDOCTOR_M365__TENANT_ID"] == "7c4d0e52-3b1a-4f7e-9a51-2d7b8e6f1c90"
    assert env["EMAILDOCTOR_M365__CLIENT_ID"] == "3f6e8a4b-9d2c-4e1f-8b7a-5c6d4e3f2a10"
    assert env["EMAILDOCTOR_M365__INSTANCE_DISCOVERY"] == "false"
    assert env["EMAILDOCTOR_M365__PROPAGATION_MINUTES"] == "0"
    assert env["EMAILDOCTOR_SLACK__API_URL"].endswith("/api/")
    assert env["EMAILDOCTOR_SLACK__IT_USERGROUP_ID"] == "S0ITADMINS"
    assert (env["EMAILDOCTOR_SLACK__APPROVALS_CHANNEL"], env["EMAILDOCTOR_SLACK__AUDIT_CHANNEL"]) == (
        "C0ITAPPROVE",
        "C0MAILAUDIT",
    )
    assert env["ADMIN_SMTP_PASSWORD"] == "sandbox-admin-Pa55"
    ca = await asyncio.to_thread(Path(env["EMAILDOCTOR_M365__CA_FILE"]).read_text)
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    directory = await asyncio.to_thread(Path(env["EMAILDOCTOR_DIRECTORY__PATH"]).read_text)
    assert "host: smtp.office365.com" not in directory and f"host: {sandbox.urls.smtp_host}" in directory
    assert f"port: {sandbox.urls.smtp_starttls_port}" in directory and "port: 587" not in directory
    pem = sandbox.app_certificate_path.read_text()
    assert "PRIVATE KEY" in pem and "BEGIN CERTIFICATE" in pem
    written = sandbox.write_env_file(tmp_path / "sandbox.env")
    assert written.stat().st_mode & 0o777 == 0o600
    assert "EMAILDOCTOR_M365__CLIENT_SECRET=sandbox-emaildoctor-client-secret-Qm9v" in written.read_text()


async def test_an_apps_consents_and_service_principal_change_through_the_admin_api(sandbox: Sandbox) -> None:
    url = f"{sandbox.urls.admin}/_sandbox/apps/emaildoctor"
    async with http(sandbox) as client:
        for bad in ({"exchange_service_principal": "no"}, {"graph_permissions": "Mail.Send"}, {"roles": []}):
            answer = await client.patch(url, json=bad)
            assert answer.status_code == 400 and "error" in answer.json(), bad
        assert sandbox.app.exchange_service_principal and "Mail.Send" in sandbox.app.graph_roles  # unchanged

        listed = await invoke(client, sandbox, "Get-ServicePrincipal", Identity=sandbox.app.client_id)
        assert listed.status_code == 200 and listed.json()["value"][0]["AppId"] == sandbox.app.client_id
        answer = await client.patch(
            url, json={"graph_permissions": ["User.Read.All"], "exchange_service_principal": False}
        )
        assert answer.status_code == 200, answer.text
        assert (
            answer.json()["graph_permissions"] == ["User.Read.All"] and not answer.json()["exchange_service_principal"]
        )
        assert decode_claims(sandbox.app_token("graph"))["roles"] == ["User.Read.All"]  # type: ignore[index]
        await client.patch(url, json={"entra_roles": ["Exchange Administrator"]})
        missing = await invoke(client, sandbox, "Get-ServicePrincipal", Identity=sandbox.app.client_id)
        assert missing.status_code == 404 and "ManagementObjectNotFoundException" in missing.text
