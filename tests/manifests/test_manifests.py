"""The Slack app manifest and the Entra app registration stay consistent with the code: the schema, the commands the
bot registers, the Slack scopes the bot's Web API calls need, and the Microsoft 365 permissions graph/ uses."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.app import COMMANDS
from graph.exchange_roles import CMDLET_ROLES, RECOMMENDED, allows
from plugin.diagnosis import Right
from sandbox.runtime import Sandbox
from tests.graph.doctor_support import doctor_for

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "manifests" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"
REFERENCE_SCHEMA = REPO.parent / "shared" / "reference" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"
SLACK = yaml.safe_load((REPO / "manifests" / "slack-app.yaml").read_text())
ENTRA = json.loads((REPO / "manifests" / "entra-app.json").read_text())


def test_slack_manifest_matches_slacks_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(SLACK), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_vendored_schema_is_the_reference_copy() -> None:
    if REFERENCE_SCHEMA.is_file():  # beside the team's checkout; a clone elsewhere has only the vendored copy
        assert SCHEMA.read_bytes() == REFERENCE_SCHEMA.read_bytes()
    assert json.loads(SCHEMA.read_text())["$schema"].startswith("http://json-schema.org/draft-07")


def _registered_commands() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "bot" / "listeners").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "command"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
    return found


def test_emaildoctor_check_asks_slack_for_exactly_the_manifests_bot_scopes() -> None:
    from bot.checks_slack import REQUIRED_SCOPES
    from sandbox.slack.model import DEFAULT_BOT_SCOPES

    assert sorted(REQUIRED_SCOPES) == sorted(SLACK["oauth_config"]["scopes"]["bot"]) == sorted(DEFAULT_BOT_SCOPES)


def test_manifest_commands_are_the_commands_the_bot_registers() -> None:
    manifest = {c["command"] for c in SLACK["features"]["slash_commands"]}
    assert manifest == set(COMMANDS) == _registered_commands()
    urls = {c.get("url") for c in SLACK["features"]["slash_commands"]} | {
        SLACK["settings"]["interactivity"]["request_url"]
    }
    assert urls == {"https://emaildoctor.example.com/slack/events"}  # one endpoint, the bot's EVENTS_PATH


def _entra_roles() -> dict[str, set[str]]:
    roles: dict[str, set[str]] = {}
    for entry in ENTRA["applicationPermissions"]:
        roles.setdefault(entry["resource"], set()).add(entry["permission"])
    return roles


def test_entra_manifest_lists_what_graph_asks_for() -> None:
    from graph.token_lint import EXCHANGE_ADMIN_APP_ROLE, GRAPH_SEND_ROLE, SMTP_APP_ROLE

    roles = _entra_roles()
    assert {GRAPH_SEND_ROLE, "User.Read.All", "Mail.ReadBasic.All"} == roles["Microsoft Graph"]
    assert {EXCHANGE_ADMIN_APP_ROLE, SMTP_APP_ROLE} == roles["Office 365 Exchange Online"]
    ids = {e["resourceAppId"] for e in ENTRA["applicationPermissions"]}
    assert ids == {"00000003-0000-0000-c000-000000000000", "00000002-0000-0ff1-ce00-000000000000"}
    assert ENTRA["entraRole"]["name"] == "Exchange Recipient Administrator"


async def test_an_app_with_exactly_the_manifests_permissions_can_do_everything(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Configure the sandbox's app with the manifest's permissions and role only, then run every Microsoft 365
    operation emaildoctor has: the full diagnosis (SMTP basic, SMTP XOAUTH2, Graph), show, who, grant, revoke, audit."""
    from plugin.directory_files import FileDirectorySource
    from plugin.settings import load_settings

    app = sandbox.app
    roles = _entra_roles()
    app.graph_roles = set(roles["Microsoft Graph"])
    app.exchange_roles = set(roles["Office 365 Exchange Online"])
    app.entra_roles = {ENTRA["entraRole"]["name"]}
    app.exchange_role_groups = {ENTRA["exchangeRoleGroup"]["name"]}
    async with doctor_for(sandbox, tmp_path) as (m365, doctor):
        outcomes: dict[str, Any] = {}
        for user in ("alice", "bob", "carol", "erin", "frank", "henry", "ivy", "jack"):
            report = await doctor.diagnose(user)
            outcomes[user] = report.diagnosis.code if report.diagnosis else "ok"
            assert all(check.ok is not None or "not needed" in check.detail for check in report.checks), report.checks
        assert outcomes == {
            "alice": "send_as_denied",
            "bob": "ok",
            "carol": "ok",
            "erin": "ok",
            "frank": "ok",
            "henry": "ok",
            "ivy": "ok",
            "jack": "ok",
        }
        assert (await m365.permissions.show("sales@business.com")).send_as
        assert await m365.permissions.who("admin@business.com")
        assert (await m365.permissions.grant(Right.SEND_AS, "grace@business.com", "admin@business.com")).ok
        assert (await m365.permissions.revoke(Right.SEND_AS, "grace@business.com", "admin@business.com")).ok
        settings = load_settings(tmp_path / ".env")
        report = await m365.audit.run(directory=await FileDirectorySource(settings.directory.path).load())
        assert report.snapshot.mailboxes > 10


def test_the_recommended_roles_cover_every_cmdlet_emaildoctor_calls() -> None:
    """Every cmdlet named in graph/ has a row in the role table, and the manifest's roles allow it; the README and
    the role table recommend the same set."""
    root = Path(__file__).resolve().parents[2]
    called = {
        name
        for path in (root / "graph").glob("*.py")
        if path.name != "exchange_roles.py"
        for name in re.findall(r'"((?:Get|Set|Add|Remove)-[A-Z][A-Za-z]+)"', path.read_text())
    }
    assert {"Get-Mailbox", "Get-TransportConfig", "Add-RecipientPermission"} <= called
    roles = {ENTRA["entraRole"]["name"], ENTRA["exchangeRoleGroup"]["name"]}
    assert set(RECOMMENDED) == roles
    for cmdlet in sorted(called):
        assert cmdlet in CMDLET_ROLES, f"{cmdlet}: add its row to graph/exchange_roles.py"
        assert allows(roles, cmdlet), cmdlet
    readme = " ".join((root / "README.md").read_text().split())
    assert all(role in readme for role in roles)


@pytest.mark.parametrize("missing", ["Mail.Send", "User.Read.All"])
async def test_without_a_manifest_permission_the_diagnosis_says_so(
    sandbox: Sandbox, tmp_path: Path, missing: str
) -> None:

    sandbox.app.graph_roles.discard(missing)
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        report = await doctor.diagnose("erin")
    if missing == "Mail.Send":
        assert report.diagnosis is not None and report.diagnosis.code == "graph_access_denied"
    else:
        assert any(check.ok is None and "could not check" in check.detail for check in report.checks)
