"""Shared test data and handles: the story's Slack workspace, TLS contexts, a running sandbox."""

from __future__ import annotations

import copy
import ssl
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from sandbox.clock import ManualClock
from sandbox.faults import FaultBook
from sandbox.http import RunningSite
from sandbox.slack import SlackWorkspace

BOT_TOKEN = "xoxb-1111-2222-sandboxbottoken"
APP_TOKEN = "xapp-1-A0EMAILDOC-3333-sandboxapptoken"

# The slack: section of sandbox/examples/tenant.yaml (the story of sandbox/examples/README.md), plus #random where the bot is not.
WORKSPACE_DATA: dict[str, Any] = {
    "team": {"id": "T0BUSINESS", "domain": "business", "name": "Business Inc"},
    "bot": {
        "user_id": "U0EMAILDOC",
        "bot_id": "B0EMAILDOC",
        "app_id": "A0EMAILDOC",
        "name": "emaildoctor",
        "token": BOT_TOKEN,
    },
    "app_token": APP_TOKEN,
    "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
    "users": [
        {"id": "U0HANNAH", "name": "hannah", "real_name": "Hannah Hughes", "email": "hannah@business.com"},
        {"id": "U0IVAN", "name": "ivan", "real_name": "Ivan Ibarra", "email": "ivan@business.com"},
        {"id": "U0ALICE", "name": "alice", "real_name": "Alice Archer", "email": "alice@business.com"},
        {"id": "U0OSCAR", "name": "oscar", "real_name": "Oscar Olsen", "email": "oscar@business.com", "deleted": True},
        {"id": "U0EMAILDOC", "name": "emaildoctor", "real_name": "emaildoctor", "is_bot": True},
    ],
    "usergroups": [{"id": "S0ITADMINS", "handle": "it-admins", "name": "IT admins", "users": ["U0IVAN"]}],
    "channels": [
        {"id": "C0HELPDESK", "name": "helpdesk", "members": ["U0HANNAH", "U0IVAN", "U0ALICE", "U0EMAILDOC"]},
        {"id": "C0ITAPPROVE", "name": "it-approvals", "members": ["U0IVAN", "U0EMAILDOC"]},
        {"id": "C0MAILAUDIT", "name": "mail-audit", "members": ["U0IVAN", "U0EMAILDOC"]},
        {"id": "C0RANDOM", "name": "random", "members": ["U0HANNAH", "U0ALICE"]},
    ],
}


def workspace_data() -> dict[str, Any]:
    return copy.deepcopy(WORKSPACE_DATA)


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@dataclass
class SlackSandbox:
    workspace: SlackWorkspace
    faults: FaultBook
    clock: ManualClock
    site: RunningSite
    tls: Tls

    @property
    def url(self) -> str:
        return self.site.url

    def web_client(self, token: str | None = BOT_TOKEN, **kwargs: Any) -> AsyncWebClient:
        return AsyncWebClient(token=token, base_url=f"{self.url}/api/", ssl=self.tls.client, **kwargs)
