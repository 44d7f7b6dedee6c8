"""`emaildoctor bot` starts against the sandbox with settings only, serves Slack over HTTP, and stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from pathlib import Path

from sandbox.runtime import Sandbox
from tests.commands import sandbox_env_file, start


async def test_bot_command_serves_slack_and_stops_cleanly(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path, EMAILDOCTOR_SLACK__PORT="0")
    process = await start("--env-file", str(env_file), "bot")
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "listening on http://127.0.0.1:" in line, line + (await process.stderr.read(2000)).decode()
        url = line.split("listening on ", 1)[1].split()[0]
        health = url.replace("/slack/events", "/healthz")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(health, timeout=5).read())  # noqa: S310 - loopback
        assert json.loads(body) == {"ok": True, "service": "emaildoctor-bot", "refused_requests": {}}
        ready = url.replace("/slack/events", "/readyz")  # the store, Slack and Microsoft 365 checks: all pass
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(ready, timeout=30).read())  # noqa: S310 - loopback
        assert json.loads(body)["ok"] is True and any(
            row["name"] == "Entra sign-in" for row in json.loads(body)["checks"]
        )

        slack = sandbox.slack_client(url)
        forged = await slack.send_raw(b"payload=%7Bnot-json", {"X-Slack-Request-Timestamp": "abc"})
        assert forged.status == 401
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(health, timeout=5).read())  # noqa: S310 - loopback
        assert json.loads(body)["refused_requests"] == {"timestamp_malformed": 1}
        delivery = await slack.slash_command("U0HANNAH", "/emailtest", "bob", "C0HELPDESK")
        assert delivery.status == 200 and delivery.acked_in_time
        assert sandbox.slack is not None
        await sandbox.slack.wait_for(
            lambda: any("Bob Baker" in m.text and "passed" in m.text for m in sandbox.slack.messages("C0HELPDESK")),  # type: ignore[union-attr]
            timeout=30,
        )
    finally:
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "emaildoctor bot: stopped" in out.decode()
    secrets = [v for k, v in sandbox.settings_env().items() if "SECRET" in k or "TOKEN" in k or "PASSWORD" in k]
    for secret in secrets:
        assert secret not in out.decode() + err.decode()
