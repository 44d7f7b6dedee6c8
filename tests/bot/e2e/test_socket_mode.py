"""`emaildoctor bot` in Socket Mode, as users run it, against the sandbox workspace: it opens its WebSocket with
the app-level token, acknowledges /emailtest within 3 seconds, posts the report with *Request fix*, turns the click
into an approval card, follows Slack's refresh to a new connection, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from sandbox.runtime import Sandbox
from sandbox.slack import SlackMessage, SlackWorkspace
from tests.commands import run, sandbox_env_file, start

HELPDESK, APPROVALS = "C0HELPDESK", "C0ITAPPROVE"
HANNAH, IVAN = "U0HANNAH", "U0IVAN"
SEND_AS = ("SendAs", "alice@business.com", "admin@business.com")
WAIT = 20.0


async def _message(workspace: SlackWorkspace, pool: Callable[[], list[SlackMessage]], needle: str) -> SlackMessage:
    def find() -> SlackMessage | None:
        return next((m for m in pool() if needle in m.all_text()), None)

    message: SlackMessage = await workspace.wait_for(find, timeout=WAIT)
    return message


async def test_the_bot_serves_emailtest_and_request_fix_over_socket_mode(sandbox: Sandbox, tmp_path: Path) -> None:
    workspace = sandbox.slack
    assert workspace is not None and workspace.app_token is not None
    env_file = sandbox_env_file(sandbox, tmp_path, EMAILDOCTOR_SLACK__MODE="socket", EMAILDOCTOR_SLACK__PORT="0")
    process = await start("--env-file", str(env_file), "bot")
    assert process.stdout is not None and process.stderr is not None
    hub = workspace.socket_mode
    slack = sandbox.socket_mode_client()
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "connecting to Slack over Socket Mode" in line, line + (await process.stderr.read(2000)).decode()
        first = await hub.wait_for_connection(timeout=WAIT)

        command = await slack.slash_command(HANNAH, "/emailtest", "alice", HELPDESK)
        assert command.status == 200 and command.acked_in_time, (command.status, command.error)

        parent = await _message(workspace, lambda: workspace.messages(HELPDESK), "Testing outgoing email for *alice*")
        report = await _message(workspace, lambda: workspace.replies(HELPDESK, parent.ts), "Send As denied")
        assert "admin@business.com does not hold Send As on alice@business.com" in report.all_text()
        assert report.action_ids() == ["request_fix"]

        click = await slack.click(HANNAH, report, "request_fix")
        assert click.status == 200 and click.acked_in_time, (click.status, click.error)
        card = await _message(
            workspace,
            lambda: workspace.messages(APPROVALS),
            "asks to grant *admin@business.com* Send As on *alice@business.com*",
        )
        assert card.action_ids() == ["approve_request", "deny_request"]
        await _message(workspace, lambda: workspace.replies(HELPDESK, parent.ts), "waiting for IT approval")

        # A payload whose response_url leads away from Slack (here: the sandbox under another name) is refused
        # and its response_url never followed, over Socket Mode too.
        envelope = json.loads(command.request_body)
        port = urlsplit(slack.slack_base_url).port
        forged_url = f"http://localhost:{port}/response/FORGED"
        payload = {**envelope["payload"], "text": "bob", "response_url": forged_url, "trigger_id": "1.FORGED"}
        refused = await hub.deliver("slash_commands", payload, accepts_response_payload=True, ack_timeout_s=WAIT)
        assert refused.acked

        # Slack refreshes the connection; the bot opens a new one and goes on answering there.
        await hub.disconnect("refresh_requested")
        second = await hub.wait_for_connection(newer_than=first, timeout=WAIT)
        deny = await slack.click(IVAN, card, "deny_request")
        assert deny.status == 200 and deny.url == second.url
        await workspace.wait_for(lambda: "Denied by" in workspace.latest(card).all_text(), timeout=WAIT)

        # No inbound port for Slack, but one for the operator: health, readiness and metrics.
        metrics_url = line.split("metrics: ", 1)[1].split(")", 1)[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(metrics_url) as got:
                assert got.status == 200
                exposition = await got.text()
            async with http.post(metrics_url.replace("/metrics", "/slack/events"), data=b"{}") as events:
                assert events.status == 404  # Slack's events do not come in over HTTP in Socket Mode
        assert 'emaildoctor_slack_requests_total{kind="command",outcome="ok"}' in exposition
        assert 'emaildoctor_slack_requests_total{kind="action",outcome="ok"} 2.0' in exposition
        assert 'emaildoctor_diagnoses_total{code="send_as_denied"} 1.0' in exposition
    finally:
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 0, err.decode()[-2000:]
    assert "emaildoctor bot: stopped" in out.decode()
    assert hub.connections() == []
    assert sandbox.tenant.grant_record(*SEND_AS) is None  # requested and denied: nothing granted
    opened = workspace.calls("apps.connections.open")
    # The bot's token check at start, its first connection, the reconnection after the refresh.
    assert len(opened) == 3 and all(c.ok and c.token == workspace.app_token for c in opened)
    assert [d.kind for d in workspace.deliveries()] == ["slash_command", "block_actions", "block_actions"]
    assert not any("FORGED" in r.path for r in workspace.requests())
    assert not any("Bob Baker" in m.all_text() for m in workspace.all_messages(include_deleted=True))
    assert all(d.envelope_id is not None for d in workspace.deliveries())
    secrets = [v for k, v in sandbox.settings_env().items() if "SECRET" in k or "TOKEN" in k or "PASSWORD" in k]
    assert workspace.app_token in secrets
    for secret in secrets:
        assert secret not in out.decode() + err.decode()


async def test_a_refused_app_token_stops_the_bot_with_a_clear_message(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(
        sandbox,
        tmp_path,
        EMAILDOCTOR_SLACK__MODE="socket",
        EMAILDOCTOR_SLACK__APP_TOKEN="xapp-1-A0EMAILDOC-0000-not-the-token",
    )
    code, out, err = await run("--env-file", str(env_file), "bot", within=30)
    assert code == 2, (out, err)
    assert "Slack refused the app-level token (EMAILDOCTOR_SLACK__APP_TOKEN): invalid_auth" in err
    assert "not-the-token" not in out + err
