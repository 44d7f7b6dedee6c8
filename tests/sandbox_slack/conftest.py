"""A sandbox Slack workspace served over TLS on 127.0.0.1:0, and the real slack_sdk client pointed at it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.clock import ManualClock
from sandbox.faults import FaultBook
from sandbox.http import serve
from sandbox.slack import build_slack_app, load_workspace

from .support import SlackSandbox, Tls, workspace_data


@pytest.fixture(scope="session")
def tls() -> Tls:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(server=server, client=client)


@pytest.fixture
async def slack(tls: Tls) -> AsyncIterator[SlackSandbox]:
    workspace = load_workspace(workspace_data())
    faults = FaultBook()
    clock = ManualClock()
    site = await serve(build_slack_app(workspace, faults, clock), tls.server)
    try:
        yield SlackSandbox(workspace, faults, clock, site, tls)
    finally:
        await site.stop()


@pytest.fixture
def web(slack: SlackSandbox) -> AsyncWebClient:
    return slack.web_client()
