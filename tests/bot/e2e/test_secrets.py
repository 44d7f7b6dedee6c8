"""No password, client secret or token reaches Slack, the store or the logs, whatever the bot did."""

from __future__ import annotations

import json
import logging

import pytest

from tests.bot.e2e.conftest import APPROVALS, AUDIT, HANNAH, HELPDESK, IVAN, World


async def test_no_secret_anywhere_after_the_whole_story(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = world.sandbox.settings_env()
    secrets = [
        env["EMAILDOCTOR_M365__CLIENT_SECRET"],
        env["EMAILDOCTOR_SLACK__BOT_TOKEN"],
        env["EMAILDOCTOR_SLACK__SIGNING_SECRET"],
        env["ADMIN_SMTP_PASSWORD"],
        env["BOB_SMTP_PASSWORD"],
        env["SUPPORT_SMTP_PASSWORD"],
    ]
    for user, query in (("alice", "alice"), ("bob", "bob"), ("jack", "jack"), ("erin", "erin")):
        await world.command(HANNAH, "/emailtest", query)
        await world.top(HELPDESK, f"Testing outgoing email for *{user}*")
    parent = await world.top(HELPDESK, "Testing outgoing email for *alice*")
    report = await world.reply(parent, "Request fix")
    await world.slack.click(HANNAH, report, "request_fix")
    card = await world.top(APPROVALS, "asks to grant")
    await world.slack.click(IVAN, card, "approve_request")
    await world.command(IVAN, "/mailaudit", "run")
    await world.top(AUDIT, "Mailbox-rights audit")
    await world.settle()

    workspace = world.workspace
    outputs = [
        *(json.dumps(call.args, default=str) for call in workspace.calls() if call.method != "auth.test"),
        *(m.all_text() for m in workspace.all_messages()),
        *(json.dumps(p.payload, default=str) for p in workspace.response_posts()),
        *(f.content.decode(errors="replace") for f in workspace.files()),
        *(json.dumps([e.subject, e.detail]) for e in await world.ctx.store.audit_entries(limit=500)),
        caplog.text,
    ]
    assert len(outputs) > 20
    for output in outputs:
        for secret in secrets:
            assert secret not in output
        assert "eyJ0eXAi" not in output and "eyJhbGci" not in output  # no JWT (access token) either
