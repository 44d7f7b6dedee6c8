"""The full diagnosis (`emaildoctor test`, `/emailtest`) against the sandbox with the real msal, msgraph-sdk, httpx and
aiosmtplib: each catalogue code that Microsoft 365 can produce, reached from a tenant state that produces it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from graph.services import M365Services
from plugin.diagnosis import Code
from plugin.doctor import Report
from plugin.settings import load_settings
from sandbox.runtime import Sandbox
from sandbox.state import App, Tenant
from sandbox.testing import SandboxFactory
from tests.graph.doctor_support import doctor_for

Setup = Callable[[Tenant], None]


def _app(tenant: Tenant) -> App:
    return next(app for app in tenant.apps.values() if app.name == "emaildoctor")


def _user(tenant: Tenant, address: str) -> object:
    user = tenant.user_by_address(address)
    assert user is not None
    return user


def smtp_auth_off_for_admin(t: Tenant) -> None:
    _user(t, "admin@business.com").smtp_auth_disabled = True  # type: ignore[attr-defined]


def smtp_auth_off_for_tenant(t: Tenant) -> None:
    t.smtp_client_authentication_disabled = True
    _user(t, "admin@business.com").smtp_auth_disabled = None  # type: ignore[attr-defined]


def security_defaults(t: Tenant) -> None:
    t.security_defaults = True


def basic_auth_retired(t: Tenant) -> None:
    t.basic_auth_retired = True


def app_without_smtp_role(t: Tenant) -> None:
    _app(t).exchange_roles.discard("SMTP.SendAsApp")


def sp_not_registered(t: Tenant) -> None:
    _app(t).exchange_service_principal = False


def app_without_mail_send(t: Tenant) -> None:
    _app(t).graph_roles.discard("Mail.Send")


def erin_without_mailbox(t: Tenant) -> None:
    _user(t, "erin@business.com").mailbox = "none"  # type: ignore[attr-defined]


def tenant_over_threshold(t: Tenant) -> None:
    t.outbound_block = "threshold"


def daily_quota_used(t: Tenant) -> None:
    t.behaviour = t.behaviour.changed(smtp_daily_recipient_limit=1)  # the first test message uses it up


def nothing(t: Tenant) -> None:
    return None


CASES: dict[str, tuple[str, Setup, Code | None, tuple[str, ...]]] = {
    "option 3 without Send As": ("alice", nothing, Code.SEND_AS_DENIED, ("admin@business.com does not hold Send As",)),
    "option 1 passes": ("bob", nothing, None, ()),
    "shared account passes": ("carol", nothing, None, ()),
    "Graph as self passes": ("erin", nothing, None, ()),
    "Graph on behalf passes": ("frank", nothing, None, ()),
    "XOAUTH2 as a shared mailbox passes": ("jack", nothing, None, ()),
    "no email on record": ("dave", nothing, Code.MISSING_EMAIL_ADDRESS, ()),
    "not in the directory": ("zoe", nothing, Code.USER_NOT_FOUND, ()),
    "wrong password (401)": ("bob", nothing, Code.AUTH_FAILED, ("Status 401: Unauthorized",)),
    "SMTP AUTH off for the mailbox": (
        "alice",
        smtp_auth_off_for_admin,
        Code.SMTP_AUTH_DISABLED,
        ("for the mailbox admin@business.com",),
    ),
    "SMTP AUTH off for the tenant": (
        "alice",
        smtp_auth_off_for_tenant,
        Code.SMTP_AUTH_DISABLED,
        ("whole organisation",),
    ),
    "security defaults": ("bob", security_defaults, Code.BASIC_AUTH_BLOCKED, ("security defaults",)),
    "basic auth retired": ("bob", basic_auth_retired, Code.BASIC_AUTH_BLOCKED, ()),
    "XOAUTH2 without SMTP.SendAsApp": ("jack", app_without_smtp_role, Code.OAUTH_TOKEN_INVALID, ("SMTP.SendAsApp",)),
    "XOAUTH2, service principal not registered": (
        "jack",
        sp_not_registered,
        Code.OAUTH_TOKEN_INVALID,
        ("New-ServicePrincipal",),
    ),
    "Graph without Mail.Send": ("erin", app_without_mail_send, Code.GRAPH_ACCESS_DENIED, ()),
    "Graph, no mailbox": ("erin", erin_without_mailbox, Code.MAILBOX_NOT_FOUND, ()),
    "tenant blocked for outbound mail": ("bob", tenant_over_threshold, Code.TENANT_BLOCKED, ("5.7.705",)),
    "daily sending quota used up": ("bob", daily_quota_used, Code.QUOTA_EXCEEDED, ("SubmissionQuotaExceeded",)),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_full_diagnosis(name: str, sandbox: Sandbox, tmp_path: Path) -> None:
    user, setup, code, phrases = CASES[name]
    setup(sandbox.tenant)
    environ = {"BOB_SMTP_PASSWORD": "an old password"} if name == "wrong password (401)" else None
    async with doctor_for(sandbox, tmp_path, environ=environ) as (_, doctor):
        if setup is daily_quota_used:
            assert (await doctor.diagnose(user)).ok
        report = await doctor.diagnose(user)
    assert report.ok is (code is None), _explain(report)
    if code is None:
        return
    assert report.diagnosis is not None and report.diagnosis.code is code, _explain(report)
    words = " ".join([report.diagnosis.cause, report.diagnosis.fix, *report.diagnosis.evidence])
    for phrase in phrases:
        assert phrase in words, (phrase, words)


def _explain(report: Report) -> str:
    return f"{report.diagnosis} {[(c.name, c.ok, c.detail) for c in report.checks]}"


async def test_send_as_denied_carries_the_fix_and_the_checks_agree(sandbox: Sandbox, tmp_path: Path) -> None:
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        report = await doctor.diagnose("grace")
    assert report.diagnosis is not None and report.diagnosis.fix_action is not None
    assert report.diagnosis.fix_action.to_json() == {
        "right": "SendAs",
        "mailbox": "grace@business.com",
        "trustee": "admin@business.com",
    }
    checks = {c.name: c.ok for c in report.checks}
    assert checks == {
        "email_on_record": True,
        "principal_account": True,
        "from_mailbox": True,
        "smtp_auth": True,
        "right": False,
        "server_tls": True,
        "test_send": False,
    }


async def test_a_fresh_grant_is_reported_as_waiting_then_passes(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    async with (
        sandbox_factory(propagation_delay_seconds=600) as sandbox,
        doctor_for(sandbox, tmp_path) as (m365, doctor),
    ):
        assert (await m365.permissions.grant("SendAs", "alice@business.com", "admin@business.com")).ok
        waiting = await doctor.diagnose("alice")
        assert waiting.pending and waiting.diagnosis is not None
        assert waiting.diagnosis.code is Code.SEND_AS_DENIED and waiting.diagnosis.fix_action is None
        assert "already holds Send As" in waiting.diagnosis.cause and "about 10 minutes" in waiting.diagnosis.fix
        sandbox.advance(601)
        assert (await doctor.diagnose("alice")).ok


async def test_a_shared_mailbox_cannot_sign_in_with_a_password(sandbox: Sandbox, tmp_path: Path) -> None:
    sales = {
        "name": "Sam Sales",
        "login": "sam",
        "email": "sales@business.com",
        "server": {
            "type": "smtp",
            "host": sandbox.urls.smtp_host,
            "port": sandbox.urls.smtp_starttls_port,
            "user": "sales@business.com",
            "password_env": "ADMIN_SMTP_PASSWORD",
        },
    }
    async with doctor_for(sandbox, tmp_path, [sales]) as (_, doctor):
        report = await doctor.diagnose("sam")
    assert report.diagnosis is not None and report.diagnosis.code is Code.AUTH_FAILED
    assert any(c.name == "principal_account" and c.ok is False and "cannot sign in" in c.detail for c in report.checks)


async def test_throttled_graph_is_retried_and_then_reported(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.faults.set("graph", throttle_burst=1, retry_after_s=1)
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        assert (await doctor.diagnose("erin")).ok  # one 429 is honoured and retried
        sandbox.faults.set("graph", throttle_burst=50, retry_after_s=1)
        report = await doctor.diagnose("erin")
    assert report.diagnosis is not None and report.diagnosis.code is Code.THROTTLED


async def test_mailbox_kinds_come_from_exchange_exactly(sandbox: Sandbox, tmp_path: Path) -> None:
    """A disabled user's own mailbox is a user mailbox (not shared), which Graph alone could only guess."""
    from plugin.interfaces import MailboxKind

    settings = load_settings(sandbox.write_env_file(tmp_path / ".env"))
    async with M365Services(settings.m365, clock=sandbox.clock) as m365:
        kinds = {}
        for address in ("oscar@business.com", "sales@business.com", "alice@business.com", "partner@fabrikam.com"):
            record = await m365.directory.find_user(address)
            assert record is not None, address
            kinds[address] = record.mailbox
    assert kinds == {
        "oscar@business.com": MailboxKind.USER,
        "sales@business.com": MailboxKind.SHARED,
        "alice@business.com": MailboxKind.USER,
        "partner@fabrikam.com": MailboxKind.NONE,
    }
