"""``emaildoctor sandbox`` as a person runs it: a subprocess that serves until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from pathlib import Path

import httpx
from dotenv import dotenv_values

EMAILDOCTOR = Path(sys.executable).parent / "emaildoctor"


async def test_sandbox_command_serves_writes_env_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    process = await asyncio.create_subprocess_exec(
        str(EMAILDOCTOR), "sandbox", "--env-file", str(env_file), "--workdir", str(tmp_path / "work"),
        "--propagation-delay", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not lines or "press Ctrl-C" not in lines[-1]:
                line = await process.stdout.readline()
                assert line, f"the sandbox exited early: {(await process.stderr.read()).decode()}"
                lines.append(line.decode())
        settings = {k: v or "" for k, v in dotenv_values(env_file).items()}
        authority = f"{settings['EMAILDOCTOR_M365__AUTHORITY_HOST']}/{settings['EMAILDOCTOR_M365__TENANT_ID']}"
        context = ssl.create_default_context(cafile=settings["EMAILDOCTOR_M365__CA_FILE"])
        async with httpx.AsyncClient(verify=context) as client:
            discovery = await client.get(f"{authority}/v2.0/.well-known/openid-configuration")
            token = await client.post(
                discovery.json()["token_endpoint"],
                data={
                    "grant_type": "client_credentials",
                    "client_id": settings["EMAILDOCTOR_M365__CLIENT_ID"],
                    "client_secret": settings["EMAILDOCTOR_M365__CLIENT_SECRET"],
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
        assert token.status_code == 200
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest, errors = await process.communicate()
    output = "".join(lines) + rest.decode() + errors.decode()
    assert process.returncode == 0, output
    assert "sandbox stopped" in output
    assert settings["EMAILDOCTOR_M365__CA_FILE"] in output
    assert f"127.0.0.1:{settings['EMAILDOCTOR_M365__AUTHORITY_HOST'].rsplit(':', 1)[1]}" in output
    secrets = [v for k, v in settings.items() if k.endswith(("SECRET", "TOKEN", "PASSWORD"))]
    assert len(secrets) == 7  # with the Slack app-level token (Socket Mode)
    for secret in secrets:
        assert secret not in output
    assert env_file.stat().st_mode & 0o777 == 0o600


async def test_sandbox_command_refuses_bad_arguments(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(EMAILDOCTOR), "sandbox", "--host", "0.0.0.0",  # noqa: S104 (refused: that is the point) "--workdir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 2
    assert "loopback addresses only" in err.decode()
    del out
