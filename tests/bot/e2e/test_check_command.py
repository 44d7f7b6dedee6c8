"""`/emaildoctor check` in Slack and the bot's /readyz: both run `emaildoctor check`'s providers on the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bot.server import READY_PATH
from sandbox.testing import SandboxFactory
from tests.bot.e2e.conftest import HANNAH, IVAN, World, start_world
from tests.bot.store.support import Database
from tests.cli.test_check import patch_app, slack_faulty_tenant


def answers(world: World) -> list[str]:
    return [json.dumps(post.payload, ensure_ascii=False) for post in world.workspace.response_posts()]


async def checklist(world: World, text: str) -> dict[str, object]:
    """The checklist the bot answered to IVAN's ``/emaildoctor {text}`` (the n-th one for the n-th command)."""
    seen = len([a for a in answers(world) if "emaildoctor check*" in a])
    await world.command(IVAN, "/emaildoctor", text)
    await world.wait(lambda: len([a for a in answers(world) if "emaildoctor check*" in a]) > seen, within=30)
    post = [p for p in world.workspace.response_posts() if "emaildoctor check*" in json.dumps(p.payload)][-1]
    assert post.status == 200 and post.payload["response_type"] == "ephemeral", post
    return dict(post.payload)


async def test_it_gets_the_checklist_others_are_refused_and_a_failure_shows_its_fix(world: World) -> None:
    await world.command(HANNAH, "/emaildoctor", "check")
    await world.wait(lambda: any("Only IT admins can run the setup checks" in a for a in answers(world)))
    await world.command(IVAN, "/emaildoctor", "verify")
    await world.wait(lambda: any("Usage: `/emaildoctor check`" in a for a in answers(world)))

    payload = await checklist(world, "check")
    text = json.dumps(payload["blocks"], ensure_ascii=False)
    assert payload["text"] == "All configured checks passed.", text
    for row in (
        "✓ *Entra sign-in*",
        "✓ *Exchange role covers Get-Mailbox*",
        "✓ *Slack bot token*",
        "✓ *store reachable*",
    ):
        assert row in text, (row, text.replace("\\n", "\n"))
    assert "✗" not in text and "– *Socket Mode app token*: not used" in text

    await patch_app(world.sandbox, entra_roles=["Exchange Recipient Administrator"], exchange_role_groups=[])
    payload = await checklist(world, "check exchange")
    text = json.dumps(payload["blocks"], ensure_ascii=False)
    assert payload["text"] == "2 check(s) failed: fix them, then run again.", text
    assert (
        "✗ *Exchange role covers Get-TransportConfig*: " in text and "not allowed to call Get-TransportConfig" in text
    )
    assert "fix: " in text and "View-Only Organization Management" in text
    assert "*Slack bot token*" not in text  # only the area asked for
    everything = " ".join(answers(world))
    for secret in world.ctx.secrets:
        assert secret not in everything


async def test_readyz_answers_from_the_deep_checks_cached_then_503_with_the_failing_rows(world: World) -> None:
    url = f"http://{world.server.host}:{world.server.port}{READY_PATH}"
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        names = {row["name"] for row in body["checks"]}
        assert body["ok"] is True and {"Entra sign-in", "Slack bot token", "store reachable"} <= names, body
        assert not any(row["name"].startswith("Exchange role covers") for row in body["checks"])

        await patch_app(world.sandbox, graph_permissions=[])
        assert (await client.get(url)).status_code == 200  # the cached answer: Microsoft is not asked again
        world.clock.advance(world.settings.slack.ready_cache_seconds)
        answer = await client.get(url)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["ok"] is False and body["checks"], body
        assert all(row["ok"] is False for row in body["checks"]), body
        assert any("Microsoft Graph" in row["name"] for row in body["checks"]), body
        assert all(secret not in answer.text for secret in world.ctx.secrets)
        assert not any(ord(c) < 32 for c in answer.text)


async def test_readyz_stays_ready_when_start_up_would_only_warn(
    sandbox_factory: SandboxFactory, tmp_path: Path, database: Database
) -> None:
    """A missing scope, channel or approver makes the bot half useful, not useless: listed, still 200."""
    async with (
        sandbox_factory(slack_faulty_tenant(tmp_path)) as sandbox,
        start_world(sandbox, tmp_path, database.url) as world,
    ):
        url = f"http://{world.server.host}:{world.server.port}{READY_PATH}"
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.get(url)
        assert answer.status_code == 200, answer.text
        rows = {row["name"]: row for row in answer.json()["checks"]}
        assert rows["IT approvers"]["ok"] is False and rows["Slack scopes"]["ok"] is False
        assert rows["Slack bot token"]["ok"] is True
