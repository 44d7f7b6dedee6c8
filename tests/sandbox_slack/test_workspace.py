"""Loading the slack: section of tenant.yaml, and waiting on the workspace without polling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.slack import WorkspaceConfigError, load_workspace

from .support import workspace_data

EXAMPLES = Path(__file__).parents[2] / "sandbox" / "examples"


def test_the_example_tenant_loads() -> None:
    tenant = yaml.safe_load((EXAMPLES / "tenant.yaml").read_text())

    workspace = load_workspace(tenant["slack"])

    assert workspace.team.id == "T0BUSINESS"
    assert workspace.bot.token.startswith("xoxb-")
    assert workspace.users["U0OSCAR"].deleted is True
    assert workspace.users["U0EMAILDOC"].is_bot is True
    assert workspace.usergroups["S0ITADMINS"].users == ("U0IVAN",)
    assert {c.name for c in workspace.channels.values()} == {"helpdesk", "it-approvals", "mail-audit"}
    assert all(workspace.bot.user_id in c.members for c in workspace.channels.values())
    assert load_workspace(tenant).team == workspace.team  # the whole document works too


def test_the_bot_user_is_added_when_not_listed() -> None:
    data = workspace_data()
    data["users"] = [u for u in data["users"] if u["id"] != "U0EMAILDOC"]
    data["channels"] = []

    workspace = load_workspace(data)

    assert workspace.users["U0EMAILDOC"].is_bot is True
    assert workspace.user_by_email("IVAN@business.com") == workspace.users["U0IVAN"]


def _without(path: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[key]
        del node[last]

    return change


def _set(path: str, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_without("team.id"), "slack.team.id: required"),
        (_set("team.id", "business"), "slack.team.id: 'business' is not a Slack team id"),
        (_without("signing_secret"), "slack.signing_secret: required"),
        (_set("bot.token", "xoxp-user-token"), "slack.bot.token: a bot token starts with 'xoxb-'"),
        (_set("users.0.email", "hannah"), "slack.users[0].email: 'hannah' is not an email address"),
        (_set("users.0.emial", "h@business.com"), "slack.users[0]: unknown field(s) emial"),
        (_set("users.1.id", "U0HANNAH"), "slack.users: 'U0HANNAH' appears twice"),
        (_set("users.3.deleted", "yes"), "slack.users[3].deleted: must be true or false"),
        (_set("usergroups.0.users", ["U0NOBODY"]), "slack.usergroups[0].users[0]: unknown user 'U0NOBODY'"),
        (_set("channels.0.name", "#helpdesk"), "slack.channels[0].name: '#helpdesk' is not a Slack channel name"),
        (_set("channels.1.members", ["U0IVAN", "U0GHOST"]), "slack.channels[1].members[1]: unknown user 'U0GHOST'"),
        (_set("channels", {"id": "C0X"}), "slack.channels: must be a list"),
    ],
)
def test_errors_name_the_field(change: Any, message: str) -> None:
    data = workspace_data()
    change(data)

    with pytest.raises(WorkspaceConfigError) as raised:
        load_workspace(data)

    assert str(raised.value).startswith(message)


async def test_wait_for_wakes_on_a_change_and_times_out_with_context() -> None:
    workspace = load_workspace(workspace_data())

    async def post_later() -> None:
        await asyncio.sleep(0)
        await workspace.post_message("C0HELPDESK", text="hello")

    poster = asyncio.create_task(post_later())
    message = await workspace.wait_for_message("C0HELPDESK", lambda m: m.text == "hello", timeout=2)
    await poster

    assert message.user == "U0EMAILDOC"
    with pytest.raises(TimeoutError, match=r"latest messages: C0HELPDESK/.*'hello'"):
        await workspace.wait_for(lambda: workspace.messages("C0ITAPPROVE"), timeout=0.05)
