"""`emaildoctor check` against the sandbox: everything ok on `emaildoctor sandbox`'s settings, and each failure the
sandbox can produce (set up through its settings, tenant file or admin API) fails the right check with the right
fix. The command runs in-process for speed (the same parser and settings loading as the installed command); one
test runs the installed command for the exit status of unusable settings."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.store import Store
from plugin.cli import CliContext, _environ, build_parser
from plugin.cli_check import COMMAND
from sandbox.loader import EXAMPLES
from sandbox.runtime import Sandbox
from sandbox.testing import SandboxFactory
from tests.commands import run, sandbox_env_file, start

REPO = Path(__file__).resolve().parents[2]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


async def check(env_file: Path, *args: str) -> tuple[int, str]:
    parser = build_parser([COMMAND])
    parsed = parser.parse_args(["--env-file", str(env_file), "check", *args])
    out, err = io.StringIO(), io.StringIO()
    context = CliContext(env_file=env_file, environ=_environ(env_file), out=out, err=err)
    code = await COMMAND.run(parsed, context)
    text = out.getvalue() + err.getvalue()
    assert not CONTROL.search(text), "a control character reached the output"
    assert "Traceback" not in text
    return code, out.getvalue()


async def check_json(env_file: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out = await check(env_file, "--json", *args)
    report = json.loads(out)
    assert set(report) == {"ok", "checks"} and report["ok"] is (code == 0)
    assert all(set(c) == {"name", "ok", "detail", "fix"} for c in report["checks"])
    return code, {c["name"]: c for c in report["checks"]}


def failures(checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: c for name, c in checks.items() if c["ok"] is False}


async def patch_app(sandbox: Sandbox, **body: object) -> None:
    async with httpx.AsyncClient(verify=sandbox.client_ssl_context(), timeout=10) as client:
        answer = await client.patch(f"{sandbox.urls.admin}/_sandbox/apps/emaildoctor", json=body)
        assert answer.status_code == 200, answer.text


async def test_on_the_sandboxs_settings_every_configured_check_passes(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path)
    code, checks = await check_json(env_file)
    assert code == 0, failures(checks)
    assert not failures(checks)
    for name in (
        "Entra sign-in",
        "token for Microsoft Graph",
        "token for Exchange Online",
        "Exchange role covers Get-TransportConfig",
        "Exchange role covers Get-ServicePrincipal",
        "app registered in Exchange (XOAUTH2)",
        "XOAUTH2 sign-in as sales@business.com",
        "SMTP AUTH for admin@business.com",
        "directory file",
        "directory accounts in the tenant",
        "Slack scopes",
        "app in the approvals channel",
        "IT approvers",
        "store",
    ):
        assert checks[name]["ok"] is True, (name, checks.get(name))
    assert checks["Exchange role covers the write cmdlets"]["ok"] is None  # not verifiable without a change
    assert "not verified" in checks["Exchange role covers the write cmdlets"]["detail"]
    assert "end of December 2026" in checks["Basic-auth retirement"]["fix"]
    secret = sandbox.app.secrets[0]
    code, text = await check(env_file)
    assert code == 0 and "✓ Entra sign-in" in text and "– Exchange role covers the write cmdlets" in text
    assert "All configured checks passed." in text and secret not in text
    code, only = await check_json(env_file, "--only", "store")
    assert code == 0 and set(only) == {"store"}


async def test_sign_in_failures_name_the_setting_to_fix(sandbox: Sandbox, tmp_path: Path) -> None:
    cases = {
        "EMAILDOCTOR_M365__TENANT_ID": ("00000000-1111-2222-3333-444444444444", "AADSTS90002", "TENANT_ID"),
        "EMAILDOCTOR_M365__CLIENT_ID": ("00000000-aaaa-bbbb-cccc-444444444444", "AADSTS700016", "CLIENT_ID"),
        # the Secret ID (a GUID) pasted where the secret's Value belongs
        "EMAILDOCTOR_M365__CLIENT_SECRET": (
            "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
            "AADSTS7000215",
            "not its Secret ID",
        ),
    }
    for index, (setting, (value, aadsts, fix)) in enumerate(cases.items()):
        env_file = sandbox_env_file(sandbox, tmp_path, f"{index}.env", **{setting: value})
        code, checks = await check_json(env_file, "--only", "m365", "--only", "exchange")
        assert code == 1
        row = checks["Entra sign-in"]
        assert row["ok"] is False and aadsts in row["detail"] and fix in row["fix"], row
        assert set(failures(checks)) == {"Entra sign-in"}  # one cause, one ✗


async def test_missing_role_claims_are_named_with_the_consent_to_grant(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path)
    await patch_app(sandbox, graph_permissions=["User.Read.All"], exchange_permissions=["Exchange.ManageAsApp"])
    code, checks = await check_json(env_file, "--only", "m365")
    assert code == 1
    graph, exchange = checks["token for Microsoft Graph"], checks["token for Exchange Online"]
    assert graph["ok"] is False and "Mail.Send" in graph["detail"] and "User.Read.All" not in graph["detail"]
    assert "Grant admin consent" in graph["fix"] and "Mail.Send" in graph["fix"]
    assert exchange["ok"] is False and "SMTP.SendAsApp" in exchange["detail"]
    assert "Office 365 Exchange Online" in exchange["fix"]


async def test_exchange_role_gaps_name_the_role_and_never_the_token(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path)
    await patch_app(sandbox, entra_roles=["Exchange Recipient Administrator"], exchange_role_groups=[])
    code, checks = await check_json(env_file, "--only", "exchange")
    assert code == 1
    refused = failures(checks)
    assert set(refused) == {"Exchange role covers Get-TransportConfig", "Exchange role covers Get-ServicePrincipal"}
    row = refused["Exchange role covers Get-TransportConfig"]
    assert "not allowed to call Get-TransportConfig" in row["detail"]
    assert "Exchange role group View-Only Organization Management" in row["fix"]
    assert "Entra admin center" not in row["fix"]  # a role group is assigned in Exchange, not in Entra
    assert checks["Exchange role covers Get-Mailbox"]["ok"] is True

    await patch_app(sandbox, entra_roles=[], exchange_role_groups=[])  # no role at all: 403 with NUL bytes
    code, checks = await check_json(env_file, "--only", "exchange")
    assert code == 1
    refused = failures(checks)
    assert set(refused) == {"Exchange role"}  # one cause, one ✗
    assert "no Exchange role at all (HTTP 403)" in refused["Exchange role"]["detail"]
    assert "Entra role Exchange Recipient Administrator" in refused["Exchange role"]["fix"]
    assert "Exchange role group View-Only Organization Management" in refused["Exchange role"]["fix"]
    code, everything = await check_json(env_file)
    assert code == 1 and set(failures(everything)) == {"Exchange role"}  # the rest say "not verified"
    assert everything["SMTP AUTH for admin@business.com"]["ok"] is None
    code, text = await check(env_file, "--only", "exchange")  # the checklist too: no NUL byte of the 403 body
    assert code == 1 and "✗ Exchange role: every cmdlet refused" in text
    for row in everything.values():
        if row["ok"] is not True:  # nothing failed or unverified blames the token
            assert "token" not in (row["detail"] + row["fix"]).lower(), row


async def test_no_exchange_service_principal_says_new_serviceprincipal(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path)
    await patch_app(sandbox, exchange_service_principal=False)
    code, checks = await check_json(env_file, "--only", "smtp")
    # Unregistered, the app's Exchange role group does not apply, so Get-ServicePrincipal is refused: the real
    # XOAUTH2 sign-in decides, and its fix says to register the app.
    assert code == 1 and checks["app registered in Exchange (XOAUTH2)"]["ok"] is None
    signed_in = checks["XOAUTH2 sign-in as sales@business.com"]
    assert signed_in["ok"] is False and "New-ServicePrincipal -AppId" in signed_in["fix"], signed_in

    await patch_app(sandbox, entra_roles=["Exchange Administrator"])  # now Get-ServicePrincipal may be read
    code, checks = await check_json(env_file, "--only", "smtp")
    registered = checks["app registered in Exchange (XOAUTH2)"]
    assert code == 1 and registered["ok"] is False and "New-ServicePrincipal -AppId" in registered["fix"]
    assert "has no service principal" in registered["detail"]


async def test_bad_directory_records_are_all_listed_and_unknown_addresses_named(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    directory = yaml.safe_load(sandbox.directory_path.read_text())
    directory["employees"] += [
        {"name": "No Login"},
        {"name": "Bad Port", "login": "badport", "server": {"host": "h", "port": 99999, "user": "u", "oauth": True}},
        {"name": "Ghost", "login": "ghost", "email": "ghost@business.com"},
    ]
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(directory))
    env_file = sandbox_env_file(sandbox, tmp_path, EMAILDOCTOR_DIRECTORY__PATH=str(path))
    code, checks = await check_json(env_file, "--only", "directory")
    assert code == 1
    assert "2 bad record(s) skipped" in checks["directory file"]["detail"]
    lines = path.read_text().splitlines()
    no_login, bad_port = lines.index("- name: No Login") + 1, lines.index("  name: Bad Port") + 1
    assert "employees[11], field 'login'" in checks[f"bad record directory.yaml:{no_login}"]["detail"]
    assert "employees[12] (login 'badport')" in checks[f"bad record directory.yaml:{bad_port + 4}"]["detail"]
    row = checks["directory accounts in the tenant"]  # the valid records are still checked
    assert row["ok"] is False and "ghost@business.com: no such user in the tenant" in row["detail"]

    del directory["employees"][-3:-1]  # the file is valid again; ghost@ is not in the tenant
    path.write_text(yaml.safe_dump(directory))
    code, checks = await check_json(env_file, "--only", "directory")
    assert code == 1 and checks["directory file"]["ok"] is True
    row = checks["directory accounts in the tenant"]
    assert row["ok"] is False and "ghost@business.com: no such user in the tenant" in row["detail"]


def slack_faulty_tenant(tmp_path: Path) -> Path:
    """The example tenant with a Slack app that lacks files:write, is not in #it-approvals, and whose IT group is
    empty (the sandbox's tenant file is its Slack workspace's settings)."""
    tenant = yaml.safe_load((EXAMPLES / "tenant.yaml").read_text())
    slack = tenant["slack"]
    slack["bot"]["scopes"] = [s for s in yaml.safe_load((REPO / "manifests" / "slack-app.yaml").read_text())[
        "oauth_config"]["scopes"]["bot"] if s != "files:write"]  # fmt: skip
    for channel in slack["channels"]:
        if channel["name"] == "it-approvals":
            channel["members"] = [m for m in channel["members"] if m != "U0EMAILDOC"]
    for group in slack["usergroups"]:
        group["users"] = []
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(tenant))
    return path


async def test_slack_faults_each_name_their_fix(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    async with sandbox_factory(slack_faulty_tenant(tmp_path)) as sandbox:
        env_file = sandbox_env_file(sandbox, tmp_path)
        code, checks = await check_json(env_file, "--only", "slack")
        assert code == 1
        assert set(failures(checks)) == {"Slack scopes", "app in the approvals channel", "IT approvers"}
        assert "files:write" in checks["Slack scopes"]["detail"] and "Reinstall" in checks["Slack scopes"]["fix"]
        assert "/invite @emaildoctor" in checks["app in the approvals channel"]["fix"]
        assert checks["app in the audit channel"]["ok"] is True
        assert "nobody can approve" in checks["IT approvers"]["detail"]

        env_file = sandbox_env_file(sandbox, tmp_path, "bad.env", EMAILDOCTOR_SLACK__BOT_TOKEN="xoxb-0000-not-a-token")
        code, checks = await check_json(env_file, "--only", "slack")
        assert code == 1 and set(checks) == {"Slack bot token"}
        assert "invalid_auth" in checks["Slack bot token"]["detail"]

        socket = sandbox_env_file(
            sandbox,
            tmp_path,
            "socket.env",
            EMAILDOCTOR_SLACK__MODE="socket",
            EMAILDOCTOR_SLACK__APP_TOKEN="xapp-1-A0-0-wrong",
        )
        code, checks = await check_json(socket, "--only", "slack")
        row = checks["Socket Mode app token"]
        assert code == 1 and row["ok"] is False and "EMAILDOCTOR_SLACK__APP_TOKEN" in row["fix"], row

        # `emaildoctor bot` refuses to start with that token, and starts (with warnings) when nobody can approve.
        code, out, err = await run("--env-file", str(env_file), "bot", cwd=tmp_path, within=60)
        assert code == 2 and "the Slack bot token does not work: auth.test refused it: invalid_auth" in err, err
        assert "Traceback" not in err and "xoxb-0000-not-a-token" not in out + err
        env_file = sandbox_env_file(sandbox, tmp_path, "port.env", EMAILDOCTOR_SLACK__PORT="0")
        process = await start("--env-file", str(env_file), "bot", cwd=tmp_path)
        assert process.stdout is not None and process.stderr is not None
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        finally:
            process.send_signal(signal.SIGINT)
            _, rest = await asyncio.wait_for(process.communicate(), 30)
        assert "listening on http://127.0.0.1:" in line, line + rest.decode()
        assert process.returncode == 0
        assert "emaildoctor bot: warning: IT approvers: nobody can approve" in rest.decode()


async def test_store_checks_find_a_broken_audit_chain(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path)
    database = tmp_path / "emaildoctor.db"
    code, checks = await check_json(env_file, "--only", "store")
    assert code == 0 and "no database yet" in checks["store"]["detail"] and not database.exists()  # nothing created

    store = await Store.open(f"sqlite:///{database}")
    for action in ("grant", "revoke"):
        await store.append_audit("U0IVAN", action, {"mailbox": "alice@business.com"}, "ok")
    await store.close()
    code, checks = await check_json(env_file, "--only", "store")
    assert code == 0 and "intact: 2 entries" in checks["audit log chain"]["detail"]
    assert checks["migrations current"]["ok"] is True and checks["store writable"]["ok"] is True

    with sqlite3.connect(database) as connection:  # someone edits the log behind emaildoctor's back
        connection.execute('UPDATE audit_log SET subject = \'{"mailbox":"bob@business.com"}\' WHERE seq = 1')
    code, checks = await check_json(env_file, "--only", "store")
    assert code == 1 and "broken at entry 1" in checks["audit log chain"]["detail"]

    with sqlite3.connect(database) as connection:  # a newer emaildoctor migrated this database
        connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed0099'")
    code, checks = await check_json(env_file, "--only", "store")
    row = checks["migrations current"]
    assert code == 1 and "schema at f00dfeed0099" in row["detail"] and "upgrade emaildoctor" in row["fix"]


async def test_unusable_settings_exit_2_from_the_installed_command(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path, EMAILDOCTOR_M365__AUTHORITY_HOST="http://login.example")
    code, _, err = await run("--env-file", str(env_file), "check", cwd=tmp_path)
    assert code == 2 and "EMAILDOCTOR_M365__AUTHORITY_HOST" in err and "Traceback" not in err
