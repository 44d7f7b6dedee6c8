"""The runtime wires the Slack workspace from the same tenant file, and starts fresh and fast per test."""

from __future__ import annotations

from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from plugin.settings import load_settings
from sandbox.runtime import Sandbox
from sandbox.testing import SandboxFactory


async def test_slack_web_api_is_served_from_the_tenant_file(sandbox: Sandbox) -> None:
    env = sandbox.settings_env()
    client = AsyncWebClient(
        token=env["EMAILDOCTOR_SLACK__BOT_TOKEN"],
        base_url=env["EMAILDOCTOR_SLACK__API_URL"],
        ssl=sandbox.client_ssl_context(),
    )
    identity = await client.auth_test()
    assert identity["team_id"] == "T0BUSINESS"
    assert identity["user_id"] == "U0EMAILDOC"
    assert sandbox.slack is not None
    player = sandbox.slack_client("http://127.0.0.1:9/slack/events")
    assert player.slack_base_url == sandbox.urls.slack


async def test_each_sandbox_has_its_own_state(sandbox_factory: SandboxFactory) -> None:
    async with sandbox_factory() as first, sandbox_factory(propagation_delay_seconds=5) as second:
        first.tenant.security_defaults = True
        assert second.tenant.security_defaults is False
        assert second.tenant.propagation_delay_seconds == 5
        assert first.urls.graph != second.urls.graph
        assert first.ca_path != second.ca_path


async def test_env_file_loads_into_the_product_settings(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox.write_env_file(tmp_path / "sandbox.env")
    settings = load_settings(env_file)
    assert settings.m365.tenant_id == sandbox.tenant.id
    assert settings.m365.authority_host == sandbox.urls.login
    assert settings.m365.instance_discovery is False
    assert settings.m365.ca_file == sandbox.ca_path
    assert settings.m365.client_secret is not None
    assert settings.slack.api_url == sandbox.urls.slack_api
    assert settings.slack.it_usergroup_id == "S0ITADMINS"
    assert settings.directory.path == sandbox.directory_path
    assert settings.smtp.ca_file == sandbox.ca_path
