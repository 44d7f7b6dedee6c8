"""Issue 9: what live tenants answer (shared/reference/exchange-online.md, "Live-tenant captures (2026)"), against the
realistic default sandbox, as an admin sees it through the installed `emaildoctor` and through Slack's rendering."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from bot import blocks
from bot.errors import error_text
from graph.permissions import PermissionService
from plugin.diagnosis import Code
from plugin.errors import EmailDoctorError
from sandbox.rights import Trustee
from sandbox.runtime import Sandbox
from tests.cli.test_m365_commands import emaildoctor, env_file_for
from tests.graph.fixtures_exchange import exchange_for

DELETED = "S-1-5-21-3623811015-3361044348-30300820-2001"


def _support_with_joined_ace_and_orphan(sandbox: Sandbox) -> None:
    """Test setup (as tenant.yaml would hold it): Hannah's Full Access ACE also carries ReadPermission, so Exchange
    prints it as ONE element "FullAccess, ReadPermission"; a deleted account's SID still holds Full Access."""
    support, hannah = sandbox.tenant.user("support@business.com"), sandbox.tenant.user("hannah@business.com")
    assert support is not None and hannah is not None
    rights = sandbox.tenant.rights
    rights.grant("FullAccess", support.id, Trustee("user", hannah.id), None, access_rights=("ReadPermission",))
    rights.grant("FullAccess", support.id, Trustee("sid", DELETED), None)


async def test_perms_audit_and_revoke_see_joined_rights_and_deleted_accounts(sandbox: Sandbox, tmp_path: Path) -> None:
    _support_with_joined_ace_and_orphan(sandbox)
    env_file = env_file_for(sandbox, tmp_path)

    code, out, err = await emaildoctor(env_file, "perms", "support@business.com")
    assert code == 0, err
    [full_access] = [line for line in out.splitlines() if line.strip().startswith("Full Access:")]
    assert "hannah@business.com" in full_access
    assert f"{DELETED} (deleted account)" in full_access

    code, out, err = await emaildoctor(env_file, "audit", "--json")
    assert code == 0, err
    orphans = [f for f in json.loads(out)["findings"] if f["kind"] == "orphaned_sid"]
    assert {(f["right"], f["mailbox"], f["trustee"]) for f in orphans} >= {
        ("FullAccess", "support@business.com", DELETED)
    }

    code, out, err = await emaildoctor(
        env_file, "revoke", "FullAccess", "--mailbox", "support@business.com", "--trustee", DELETED
    )
    assert code == 0, err
    assert "can no longer open support@business.com's mailbox (changed; read back from Exchange)" in out
    assert sandbox.tenant.grant_record("FullAccess", "support@business.com", DELETED) is None


async def _set_app_roles(sandbox: Sandbox, entra_roles: list[str], groups: list[str]) -> None:
    async with httpx.AsyncClient(verify=sandbox.client_ssl_context()) as client:
        response = await client.patch(
            f"{sandbox.urls.admin}/_sandbox/apps/emaildoctor",
            json={"entra_roles": entra_roles, "exchange_role_groups": groups},
        )
    assert response.status_code == 200, response.text


async def test_a_missing_exchange_role_is_named_never_blamed_on_the_token(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    cases = {
        "narrow": (["Security Reader"], "Get-Mailbox", "Exchange Recipient Administrator"),  # 401 not allowed
        "none": ([], "its cmdlets", "Exchange Recipient Administrator and View-Only Organization Management"),  # 403
    }
    for name, (roles, cmdlet, role) in cases.items():
        await _set_app_roles(sandbox, roles, [])
        code, out, err = await emaildoctor(env_file, "perms", "alice@business.com")
        assert code == 1, (name, out, err)
        assert "[exchange_role_missing]" in err and cmdlet in err and role in err, (name, err)
        assert "token" not in err.lower(), (name, err)  # the single most likely setup mistake is a role, not a token
        assert "\x00" not in out + err

        # The Slack path: the bot renders an error with the catalogue's title, then redacts every string it posts.
        async with exchange_for(sandbox) as exchange:
            with pytest.raises(EmailDoctorError) as refused:
                await PermissionService(exchange).show("alice@business.com")
        assert refused.value.code is Code.EXCHANGE_ROLE_MISSING
        _, payload = blocks.plain(error_text(refused.value))
        slack = json.dumps(blocks.redacted(payload, []))
        assert "App lacks an Exchange role" in slack and role in slack
        assert "\\u0000" not in slack and "token" not in slack.lower()


def test_no_control_character_from_a_server_reaches_slack() -> None:
    error = EmailDoctorError("Exchange said: \x00\x00\x1b[31mred\x07", code=Code.UNKNOWN)
    _, payload = blocks.plain(error_text(error))
    text = json.dumps(blocks.redacted(payload, []))
    assert "\\u0000" not in text and "\\u001b" not in text and "\\u0007" not in text and "red" in text
