"""The whole loop through the real bot over HTTP: /emailtest fails with Send As denied → Request fix →
Approve → grant (read back) → re-test until Exchange applies the right → passes."""

from __future__ import annotations

from datetime import timedelta

from tests.bot.e2e.conftest import APPROVALS, HANNAH, HELPDESK, IVAN, PROPAGATION_SECONDS, World

SEND_AS = ("SendAs", "alice@business.com", "admin@business.com")


async def test_send_as_denied_request_approve_grant_retest(world: World) -> None:
    tenant = world.sandbox.tenant
    assert tenant.grant_record(*SEND_AS) is None

    delivery = await world.command(HANNAH, "/emailtest", "alice")
    assert delivery.acked_in_time

    parent = await world.top(HELPDESK, "Testing outgoing email for *alice*")
    summary = await world.wait(lambda: "failed: Send As denied" in world.latest(parent).text and world.latest(parent))
    assert f"<@{HANNAH}>" in summary.text
    report = await world.reply(parent, "Send As denied")
    text = report.all_text()
    assert "*Who signs in:* admin@business.com" in text and "*From:* alice@business.com" in text
    assert "admin@business.com does not hold Send As on alice@business.com" in text
    assert "Request fix" in text and report.action_ids() == ["request_fix"]
    transcript = await world.reply(parent, "SMTP transcript (secrets redacted)")
    assert "554 5.2.252 SendAsDenied" in transcript.all_text()

    await world.slack.click(HANNAH, report, "request_fix")
    card = await world.top(APPROVALS, "asks to grant *admin@business.com* Send As on *alice@business.com*")
    assert card.action_ids() == ["approve_request", "deny_request"]
    await world.wait(lambda: "request_fix" not in world.latest(report).action_ids())  # cannot be pressed twice
    await world.reply(parent, "waiting for IT approval")

    await world.slack.click(IVAN, card, "approve_request")
    await world.wait(lambda: "read back from Exchange" in world.latest(card).all_text())
    granted = tenant.grant_record(*SEND_AS)
    assert granted is not None and granted.granted_at is not None
    await world.reply(parent, f"<@{IVAN}> approved")

    await world.settle()
    passed = await world.reply(parent, "email test passes now")
    assert "re-test 2" in passed.text  # the first re-test came before Exchange applied the right
    attempts = [
        m for m in world.workspace.replies(HELPDESK, parent.ts) if m.all_text().startswith(":white_check_mark: alice")
    ]
    assert attempts
    await world.wait(lambda: "passes after the fix" in world.latest(parent).text)
    await world.settle()
    pending = [
        v for m in world.workspace.replies(HELPDESK, parent.ts) for v in world.workspace.versions(HELPDESK, m.ts)
    ]
    assert any("Granted, waiting for Exchange to apply it" in v.text for v in pending)

    entries = await world.ctx.store.audit_entries(limit=50)
    actions = [(e.action, e.result, e.actor, e.approved_by) for e in entries]
    assert ("grant.requested", "ok", HANNAH, None) in actions
    assert ("grant.started", "started", HANNAH, IVAN) in actions
    assert ("grant", "ok", HANNAH, IVAN) in actions
    assert ("retest", "ok", "emaildoctor", None) in actions
    assert (await world.ctx.store.verify_audit_chain()).ok
    assert world.clock.now() - granted.granted_at >= timedelta(seconds=PROPAGATION_SECONDS)
