"""The Slack app manifest's scopes are enough for every Web API call the bot makes (tests/manifests checks the rest)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from tests.bot.e2e.conftest import APPROVALS, AUDIT, HANNAH, HELPDESK, IVAN, World

SLACK = yaml.safe_load((Path(__file__).resolve().parents[3] / "manifests" / "slack-app.yaml").read_text())


async def test_the_manifest_scopes_are_enough_for_everything_the_bot_does(world: World) -> None:
    scopes = set(SLACK["oauth_config"]["scopes"]["bot"]) - {"commands"}
    world.workspace.bot = dataclasses.replace(world.workspace.bot, scopes=tuple(sorted(scopes)))
    for command, text in (
        ("/emailtest", "alice"),
        ("/emailtest", "<@U0ALICE|alice>"),
        ("/sendas", "show sales@business.com"),
    ):
        delivery = await world.command(HANNAH, command, text)
        assert delivery.status == 200 and "unhandled" not in delivery.body.casefold()
    parent = await world.top(HELPDESK, "Testing outgoing email for *alice*")
    report = await world.reply(parent, "Request fix")
    await world.slack.click(HANNAH, report, "request_fix")
    card = await world.top(APPROVALS, "asks to grant")
    await world.slack.click(HANNAH, card, "approve_request")  # refused: ephemeral message
    await world.slack.click(IVAN, card, "approve_request")
    await world.command(IVAN, "/mailaudit", "run")
    await world.top(AUDIT, "Mailbox-rights audit")
    await world.settle()
    methods = {call.method for call in world.workspace.calls()}
    assert {"chat.postMessage", "chat.update", "chat.postEphemeral", "users.info", "usergroups.users.list"} <= methods
    assert {"files.getUploadURLExternal", "files.completeUploadExternal"} <= methods
    refused = [
        (c.method, (c.response or {}).get("needed"))
        for c in world.workspace.calls()
        if (c.response or {}).get("error") == "missing_scope"
    ]
    assert refused == []
