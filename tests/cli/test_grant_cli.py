"""`emaildoctor grant|revoke` as a PowerShell user expects it: --what-if changes nothing, identities may be logins or
aliases, the words say what changed, a disabled account is warned about, a time limit says when it ends."""

from __future__ import annotations

import json
from pathlib import Path

from bot.changes import Change
from bot.cli_change import cmdlet_line
from graph.cli import _trustee_kind
from graph.permissions_model import TrusteeKind
from graph.recipients import Recipient
from plugin.diagnosis import Right
from sandbox.runtime import Sandbox
from tests.cli.test_m365_commands import emaildoctor, env_file_for


def _rights(sandbox: Sandbox) -> list[str]:
    return sorted(str(g) for g in sandbox.tenant.rights.records())


def test_the_cmdlet_as_an_admin_would_type_it() -> None:
    send_as = Change("grant", Right.SEND_AS, "alice@business.com", "admin@business.com")
    assert cmdlet_line(send_as) == (
        "Add-RecipientPermission -Identity alice@business.com -Trustee admin@business.com -AccessRights SendAs "
        "-Confirm:$false"
    )
    full = Change("grant", Right.FULL_ACCESS, "support@business.com", "bob@business.com")
    assert "-AccessRights FullAccess -InheritanceType All -AutoMapping:$false" in cmdlet_line(full, automapping=False)
    behalf = Change("revoke", Right.SEND_ON_BEHALF, "frank@business.com", "admin@business.com")
    assert cmdlet_line(behalf).startswith(
        "Set-Mailbox -Identity frank@business.com -GrantSendOnBehalfTo @{Remove=admin@business.com}"
    )


async def test_what_if_resolves_logins_and_changes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    before = _rights(sandbox)
    code, out, err = await emaildoctor(
        env_file, "grant", "SendAs", "--mailbox", "alice", "--trustee", "admin", "--what-if"
    )
    assert code == 0, err
    assert (
        "What if: Add-RecipientPermission -Identity alice@business.com -Trustee admin@business.com -AccessRights SendAs"
        in out
    )
    assert "admin@business.com would be able to send as alice@business.com." in out
    assert "Nothing was changed" in out
    assert "trustee admin is" in err and "admin@business.com" in err  # how the login was resolved
    assert "admin@business.com is an administrator account" in err
    code, out, err = await emaildoctor(
        env_file, "grant", "FullAccess", "--mailbox", "grace@business.com", "--trustee", "oscar@business.com",
        "--no-automapping", "--what-if",
    )  # fmt: skip
    assert code == 0, err
    assert "-AutoMapping:$false" in out
    assert "warning: oscar@business.com's account is disabled" in err
    code, out, err = await emaildoctor(
        env_file, "revoke", "SendOnBehalf", "--mailbox", "frank", "--trustee", "admin", "--what-if", "--json"
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["cmdlet"].startswith("Set-Mailbox -Identity frank@business.com -GrantSendOnBehalfTo @{Remove=")
    assert plan["effect"] == "admin@business.com would no longer be able to send on behalf of frank@business.com."
    assert _rights(sandbox) == before  # the sandbox received no change
    code, _, err = await emaildoctor(
        env_file, "grant", "SendAs", "--mailbox", "alice@business.com", "--trustee", "bob@business.com",
        "--no-automapping",
    )  # fmt: skip
    assert code == 2 and "--no-automapping applies to FullAccess only" in err
    code, _, err = await emaildoctor(env_file, "grant", "SendAs", "--mailbox", "nobody-here", "--trustee", "admin")
    assert code == 2 and "no mailbox, user or alias" in err and "Traceback" not in err
    assert _rights(sandbox) == before


async def test_the_words_depend_on_what_changed(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    grant = ("grant", "SendAs", "--mailbox", "alice@business.com", "--trustee", "admin@business.com")
    code, out, err = await emaildoctor(env_file, *grant)
    assert code == 0, err
    assert "Done: admin@business.com can now send as alice@business.com (changed; read back from Exchange)" in out
    assert "up to an hour" in out
    code, out, err = await emaildoctor(env_file, *grant)
    assert code == 0, err
    assert "Already held — nothing changed: admin@business.com could already send as alice@business.com." in out
    assert "up to an hour" not in out
    code, out, _ = await emaildoctor(env_file, "revoke", *grant[1:])
    assert code == 0 and "Done: admin@business.com can no longer send as alice@business.com" in out
    code, out, _ = await emaildoctor(env_file, "revoke", *grant[1:])
    assert code == 0 and "Already so — nothing changed" in out


async def test_a_time_bound_grant_says_when_it_ends_and_who_ends_it(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    code, out, err = await emaildoctor(
        env_file, "grant", "FullAccess", "--mailbox", "support", "--trustee", "bob@business.com", "--for", "8h",
        "--no-automapping",
    )  # fmt: skip
    assert code == 0, err
    assert "Done: bob@business.com can now open support@business.com's mailbox" in out
    assert "Expires at " in out and " UTC)" in out
    assert "must use the same store as this command (EMAILDOCTOR_STORE__URL)" in out
    assert sandbox.tenant.grant_record("FullAccess", "support@business.com", "bob@business.com") is not None


def test_trustee_kinds_from_what_exchange_says() -> None:
    domains = {"business.com"}
    assert _trustee_kind(Recipient("o@business.com", "UserMailbox", disabled=True), "o@business.com", domains) is (
        TrusteeKind.DISABLED
    )
    assert _trustee_kind(Recipient("s@business.com", "SharedMailbox"), "s@business.com", domains) is TrusteeKind.USER
    assert _trustee_kind(Recipient("p@x.com", "GuestMailUser"), "p@x.com", domains) is TrusteeKind.EXTERNAL
    assert _trustee_kind(None, "gone@business.com", domains) is TrusteeKind.UNKNOWN
    assert _trustee_kind(None, "someone@gmail.com", domains) is TrusteeKind.EXTERNAL


async def test_perms_marks_disabled_external_and_deleted_trustees(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    code, out, err = await emaildoctor(env_file, "perms", "support@business.com")
    assert code == 0, err
    assert "oscar@business.com (disabled)" in out and "partner@fabrikam.com (external)" in out
    assert "ivan@business.com (" not in out  # an enabled user is not marked
    code, out, _ = await emaildoctor(env_file, "perms", "sales@business.com", "--json")
    kinds = {g["trustee"]: g["trustee_kind"] for g in json.loads(out)["SendAs"]}
    assert kinds["oscar@business.com"] == "disabled" and kinds["admin@business.com"] == "user"
    assert kinds["S-1-5-21-3623811015-3361044348-30300820-1013"] == "orphaned_sid"


def test_admin_accounts_by_address() -> None:
    from graph.recipients import looks_like_admin

    for address in ("admin@business.com", "it-admin@business.com", "Administrator@x.com", "admin2@x.com"):
        assert looks_like_admin(address), address
    for address in ("alice@business.com", "badminton@club.com", "adminton@x.com", "sales@business.com"):
        assert not looks_like_admin(address), address
