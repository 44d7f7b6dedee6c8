"""What an operator sees of the real `emaildoctor bot` process after the Send As story (/emailtest fails →
Request fix → Approve → grant → re-test passes): its /metrics counts exactly that story, and its log is one
JSON object per line, with a line per Slack request, diagnosis, change and scheduled run, and no secret, even at
debug level with the SDKs' own loggers on."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sandbox.slack import SlackClient, SlackMessage
from sandbox.testing import SandboxFactory
from tests.bot.conftest import _sqlite
from tests.bot.e2e.bot_process import BotProcess

HANNAH, IVAN, HELPDESK, APPROVALS = "U0HANNAH", "U0IVAN", "C0HELPDESK", "C0ITAPPROVE"
WITHIN = 60.0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_and_json_logs_after_the_send_as_story(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    async with _sqlite(tmp_path) as db, sandbox_factory() as sandbox:
        assert sandbox.slack is not None
        workspace = sandbox.slack
        env = sandbox.settings_env()
        secrets = [env[name] for name in env if name.endswith(("SECRET", "TOKEN", "PASSWORD"))]
        assert len(secrets) >= 4
        bot = BotProcess(sandbox, tmp_path, db.url, global_args=("--log-format", "json", "--log-level", "debug"))
        try:
            url = await bot.start()
            slack = SlackClient(workspace, bot_url=url, slack_base_url=sandbox.urls.slack)
            delivery = await slack.slash_command(HANNAH, "/emailtest", "alice", HELPDESK)
            assert delivery.status == 200, delivery.body

            def report() -> SlackMessage | None:
                parents = [m for m in workspace.messages(HELPDESK) if "alice" in m.all_text().casefold()]
                replies = [r for p in parents for r in workspace.replies(HELPDESK, p.ts)]
                return next((r for r in replies if "request_fix" in r.action_ids()), None)

            fix = await workspace.wait_for(report, timeout=WITHIN)
            assert (await slack.click(HANNAH, fix, "request_fix")).status == 200

            def card() -> SlackMessage | None:
                return next((m for m in workspace.messages(APPROVALS) if "approve_request" in m.action_ids()), None)

            assert (
                await slack.click(IVAN, await workspace.wait_for(card, timeout=WITHIN), "approve_request")
            ).status == 200

            def passed() -> bool | None:
                texts = [m.all_text() for p in workspace.messages(HELPDESK) for m in workspace.replies(HELPDESK, p.ts)]
                return True if any("email test passes now" in t for t in texts) else None

            await workspace.wait_for(passed, timeout=WITHIN)
            async with aiohttp.ClientSession() as http, http.get(url.rsplit("/slack/events", 1)[0] + "/metrics") as got:
                assert got.status == 200
                assert got.headers["Content-Type"].startswith("text/plain; version=")
                exposition = await got.text()
        finally:
            await bot.stop()

    metrics = _samples(exposition)
    assert metrics[("emaildoctor_slack_requests_total", (("kind", "command"), ("outcome", "ok")))] == 1
    assert metrics[("emaildoctor_slack_requests_total", (("kind", "action"), ("outcome", "ok")))] == 2
    assert metrics[("emaildoctor_slack_ack_seconds_count", (("kind", "command"),))] == 1
    assert metrics[("emaildoctor_diagnoses_total", (("code", "send_as_denied"),))] == 1
    assert metrics[("emaildoctor_diagnoses_total", (("code", "ok"),))] >= 1  # the re-test that passed
    assert metrics[("emaildoctor_changes_total", (("state", "verified"),))] == 1
    assert metrics.get(("emaildoctor_changes_total", (("state", "failed"),)), 0) == 0
    assert metrics[("emaildoctor_m365_requests_total", (("service", "exchange"), ("status", "2xx")))] > 0
    assert metrics[("emaildoctor_m365_requests_total", (("service", "graph"), ("status", "2xx")))] > 0
    assert metrics[("emaildoctor_scheduled_runs_total", (("job", "settle_changes"), ("outcome", "ok")))] >= 1
    assert metrics[("emaildoctor_reconciler_backlog", ())] == 0

    lines = [line for line in bot.log.read_text(encoding="utf-8").splitlines() if not line.startswith("--- start")]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    events = [r.get("event") for r in records]
    assert events.count("slack_request") == 3
    diagnoses = [r for r in records if r.get("event") == "diagnosis"]
    assert diagnoses[0]["code"] == "send_as_denied" and diagnoses[-1]["code"] == "ok"
    assert all("request_id" in r and "duration_ms" in r for r in diagnoses)
    states = [r["state"] for r in records if r.get("event") == "change"]
    assert states[0] == "approved" and states[-1] == "verified", states
    assert "scheduled_run" in events
    assert all({"time", "level"} <= set(r) for r in records)
    log_text = bot.log.read_text(encoding="utf-8")
    for secret in secrets:
        assert secret not in log_text
