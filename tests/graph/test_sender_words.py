"""The full diagnosis against the sandbox says what is really wrong when the server's refusal alone would mislead:
several people match (directory or Microsoft 365), a From address outside the tenant or without a mailbox, a
disabled account. The JSON and the Slack report carry the same code and words."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from bot.blocks import report_blocks
from plugin.diagnosis import Code
from plugin.doctor import Report
from sandbox.runtime import Sandbox
from sandbox.state import User
from tests.graph.doctor_support import doctor_for

GIL_SMTP = {"name": "Gil Gomez", "login": "gil", "email": "gil@gmail.com"}
GIL_GRAPH = {**GIL_SMTP, "server": {"type": "microsoft365", "user": "admin@business.com", "oauth": True}}


def _words(report: Report) -> str:
    assert report.diagnosis is not None, report.checks
    return " ".join([report.diagnosis.cause, report.diagnosis.fix, *report.diagnosis.evidence])


def _slack(report: Report) -> str:
    text, blocks = report_blocks(report)
    return text + repr(blocks)


def _tenant_user(sandbox: Sandbox, address: str) -> User:
    user = sandbox.tenant.user_by_address(address)
    assert user is not None
    return user


async def test_two_employees_sharing_an_address_are_ambiguous_everywhere(sandbox: Sandbox, tmp_path: Path) -> None:
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        report = await doctor.diagnose("sales@business.com")  # Ivy and Jack both send from sales@
    assert not report.ok and report.diagnosis is not None and report.diagnosis.code is Code.AMBIGUOUS_USER
    assert re.fullmatch(
        r"'sales@business\.com' matches 2 users: Ivy Irwin \(login ivy\) <sales@business\.com>, from directory\.yaml:\d+; "
        r"Jack Jones \(login jack\) <sales@business\.com>, from directory\.yaml:\d+\.",
        report.diagnosis.cause,
    ), report.diagnosis.cause
    assert "emaildoctor test <login>" in report.diagnosis.fix and report.diagnosis.fix_action is None
    data = report.to_json()
    assert data["diagnosis"]["code"] == "ambiguous_user" and "User not found" not in str(data)  # type: ignore[index]
    slack = _slack(report)
    assert "Several users match" in slack and "ambiguous_user" in slack and "Jack Jones (login jack)" in slack


async def test_two_microsoft_365_users_with_the_from_address_are_ambiguous(sandbox: Sandbox, tmp_path: Path) -> None:
    for name in ("Dana One", "Dana Two"):
        user = User(id=str(uuid.uuid4()), upn=f"{name.replace(' ', '.').lower()}@business.com", display_name=name)
        user.mail = "dana@business.com"
        sandbox.tenant.add_user(user)
    dana = {"name": "Dana Doe", "login": "dana", "email": "dana@business.com"}
    async with doctor_for(sandbox, tmp_path, [dana]) as (_, doctor):
        report = await doctor.diagnose("dana")
    assert report.diagnosis is not None and report.diagnosis.code is Code.AMBIGUOUS_USER, _words(report)
    assert report.diagnosis.cause.startswith("'dana@business.com' matches 2 users in Microsoft 365: ")
    assert "Dana One <dana@business.com>, from Microsoft 365" in report.diagnosis.cause
    assert "Dana Two <dana@business.com>, from Microsoft 365" in report.diagnosis.cause
    assert report.diagnosis.fix_action is None


@pytest.mark.parametrize(
    ("employee", "may_read_domains"),
    [(GIL_SMTP, False), (GIL_GRAPH, True)],
    ids=["SMTP, no permission to read the domains", "Graph, Domain.Read.All"],
)
async def test_a_from_address_outside_the_tenant_gets_a_fix_that_can_work(
    sandbox: Sandbox, tmp_path: Path, employee: dict[str, object], may_read_domains: bool
) -> None:
    if may_read_domains:
        sandbox.app.graph_roles.add("Domain.Read.All")
    async with doctor_for(sandbox, tmp_path, [employee]) as (_, doctor):
        report = await doctor.diagnose("gil")
    words = _words(report)
    assert report.diagnosis is not None and report.diagnosis.code is Code.FROM_OUTSIDE_TENANT, words
    diagnosis = report.diagnosis
    assert diagnosis.fix_action is None and "emaildoctor grant" not in words  # no Run: line that cannot work
    assert "gmail.com is not a domain of this Microsoft 365 organisation" in diagnosis.cause
    assert "Microsoft 365 will not send as an address it does not host" in diagnosis.cause
    assert diagnosis.fix.startswith("Use an address in business.com as the email address on Gil Gomez's Employee")
    assert "the provider that hosts gmail.com" in diagnosis.fix
    if may_read_domains:
        assert "the organisation's domains are business.com, businesscom.onmicrosoft.com" in words
        assert "may not read" not in diagnosis.cause
    else:
        assert "may not read the organisation's domains" in diagnosis.cause and "Domain.Read.All" in words
    slack = _slack(report)
    assert "From address outside the organisation" in slack and "Request fix" not in slack


async def test_a_from_address_without_a_mailbox_is_mailbox_not_found(sandbox: Sandbox, tmp_path: Path) -> None:
    _tenant_user(sandbox, "grace@business.com").mailbox = "none"
    employees = [{"name": "Nora Nobody", "login": "nora", "email": "nora@business.com"}]
    async with doctor_for(sandbox, tmp_path, employees) as (_, doctor):
        nobody = await doctor.diagnose("nora")
        unlicensed = await doctor.diagnose("grace")
    assert nobody.diagnosis is not None and nobody.diagnosis.code is Code.MAILBOX_NOT_FOUND, _words(nobody)
    assert nobody.diagnosis.cause == (
        "nora@business.com has no Exchange Online mailbox: no user, shared mailbox or group in Microsoft 365 has "
        "this address."
    )
    assert "spelled right on Nora Nobody's Employee record" in nobody.diagnosis.fix
    assert unlicensed.diagnosis is not None and unlicensed.diagnosis.code is Code.MAILBOX_NOT_FOUND
    assert "the account Grace Green exists" in unlicensed.diagnosis.cause
    assert unlicensed.diagnosis.fix_action is None


async def test_disabled_accounts_are_named_in_the_diagnosis(sandbox: Sandbox, tmp_path: Path) -> None:
    oscar = {"name": "Oscar Olsen", "login": "oscar", "email": "oscar@business.com"}  # left; account disabled
    async with doctor_for(sandbox, tmp_path, [oscar]) as (_, doctor):
        report = await doctor.diagnose("oscar")
        _tenant_user(sandbox, "admin@business.com").account_enabled = False
        blocked = await doctor.diagnose("alice")
    assert report.diagnosis is not None and report.diagnosis.code is Code.SEND_AS_DENIED
    assert "the account of oscar@business.com (the From mailbox) is disabled in Microsoft 365" in report.diagnosis.cause
    assert report.diagnosis.fix_action is not None  # the grant still applies; the note only warns
    assert blocked.diagnosis is not None and blocked.diagnosis.code is Code.AUTH_FAILED
    assert "the account of admin@business.com, which signs in, is disabled in Microsoft 365" in blocked.diagnosis.cause
