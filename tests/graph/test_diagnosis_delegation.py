"""`emaildoctor test` when the right is held in a less obvious way: through a nested group, or as Send on Behalf over
SMTP (which the sandbox, like the reference's reading of Exchange Online, does not honour by default)."""

from __future__ import annotations

from pathlib import Path

from plugin.diagnosis import Code, Right
from sandbox.runtime import Sandbox
from sandbox.testing import SandboxFactory
from tests.graph.doctor_support import doctor_for

FRANK_OVER_SMTP = {  # admin@ holds Send on Behalf on frank@ in the example tenant, all along
    "name": "Fran Foster",
    "login": "fran",
    "email": "frank@business.com",
    "delegation": "send_on_behalf",
}
ALICE_ON_BEHALF = {"name": "Alice on behalf", "login": "alio", "email": "alice@business.com", "delegation": "send_on_behalf"}  # fmt: skip


async def test_send_as_through_a_nested_group_passes_and_names_the_group(sandbox: Sandbox, tmp_path: Path) -> None:
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        report = await doctor.diagnose("kim")
    assert report.ok and report.diagnosis is None
    right = next(c for c in report.checks if c.name == "right")
    assert right.ok is True
    assert right.detail == "admin@business.com holds Send As on kim@business.com through the group Mail Senders"
    assert report.smtp is not None and report.smtp.ok


async def test_the_group_check_fails_when_the_member_leaves_the_nested_group(sandbox: Sandbox, tmp_path: Path) -> None:
    operators = next(g for g in sandbox.tenant.groups.values() if g.display_name == "Mail Operators")
    operators.members.clear()
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        report = await doctor.diagnose("kim")
    assert not report.ok and report.diagnosis is not None and report.diagnosis.code is Code.SEND_AS_DENIED
    right = next(c for c in report.checks if c.name == "right")
    assert right.ok is False and "does not hold Send As" in right.detail


async def test_send_on_behalf_held_over_smtp_gets_its_own_diagnosis(sandbox: Sandbox, tmp_path: Path) -> None:
    async with doctor_for(sandbox, tmp_path, [FRANK_OVER_SMTP]) as (_, doctor):
        report = await doctor.diagnose("fran")
    assert not report.ok and not report.pending
    diagnosis = report.diagnosis
    assert diagnosis is not None and diagnosis.code is Code.SEND_ON_BEHALF_NOT_HONOURED
    assert diagnosis.fix_action is None
    assert "admin@business.com holds Send on Behalf on frank@business.com" in diagnosis.cause
    assert "may not honour Send on Behalf" in diagnosis.cause
    assert "Waiting will not help" in diagnosis.fix and "wait and test again" not in diagnosis.fix
    assert "emaildoctor grant SendAs --mailbox frank@business.com --trustee admin@business.com" in diagnosis.fix
    assert "Microsoft Graph" in diagnosis.fix
    assert report.smtp is not None and report.smtp.reply is not None and report.smtp.reply.code in (550, 554)
    assert {c.name: c.ok for c in report.checks}["right"] is True


async def test_send_on_behalf_over_smtp_passes_where_the_server_honours_it(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(smtp_send_on_behalf=True)
    async with doctor_for(sandbox, tmp_path, [FRANK_OVER_SMTP]) as (_, doctor):
        report = await doctor.diagnose("fran")
    assert report.ok, report.diagnosis


async def test_send_on_behalf_missing_over_smtp_says_it_is_missing(sandbox: Sandbox, tmp_path: Path) -> None:
    async with doctor_for(sandbox, tmp_path, [ALICE_ON_BEHALF]) as (_, doctor):
        report = await doctor.diagnose("alio")
    diagnosis = report.diagnosis
    assert diagnosis is not None and diagnosis.code is Code.SEND_AS_DENIED and not report.pending
    assert "admin@business.com does not hold Send on Behalf on alice@business.com" in diagnosis.cause
    assert diagnosis.fix_action is not None and diagnosis.fix_action.right is Right.SEND_ON_BEHALF


async def test_a_fresh_grant_to_a_group_waits_names_the_group_then_passes(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    async with (
        sandbox_factory(propagation_delay_seconds=600) as sandbox,
        doctor_for(sandbox, tmp_path) as (m365, doctor),
    ):
        granted = await m365.permissions.grant("SendAs", "alice@business.com", "mail-senders@business.com")
        assert granted.ok and granted.verified
        waiting = await doctor.diagnose("alice")
        assert waiting.pending and waiting.diagnosis is not None and waiting.diagnosis.fix_action is None
        assert (
            "admin@business.com already holds Send As on alice@business.com's mailbox through the group Mail Senders"
            in waiting.diagnosis.cause
        )
        sandbox.advance(601)
        passed = await doctor.diagnose("alice")
    assert passed.ok
    assert "through the group Mail Senders" in next(c.detail for c in passed.checks if c.name == "right")
