"""Exchange's rows as grants, and the commands that read and change rights (shared by the permissions service and
the audit)."""

from __future__ import annotations

from typing import Any

from graph.exchange import Command, Row, hashtable
from graph.permissions_model import (
    SELF,
    ChangeAction,
    Grant,
    TrusteeKind,
    access_rights,
    as_bool,
    display_trustee,
    is_system_trustee,
    kind_from_label,
)
from plugin.diagnosis import Right


def full_access_command(mailbox: str, user: str | None = None) -> Command:
    """Get-MailboxPermission as every FullAccess read must send it: with ``-IncludeUnresolvedPermissions``, without
    which Exchange hides the entries of deleted accounts (bare SIDs) that an audit must find and a revoke remove."""
    parameters: dict[str, Any] = {"Identity": mailbox, "IncludeUnresolvedPermissions": True}
    if user is not None:
        parameters["User"] = user
    return Command("Get-MailboxPermission", parameters, anchor=mailbox)


def recipient_permission_grant(row: Row, mailbox: str) -> Grant | None:
    """A Get-RecipientPermission row as a SendAs grant; None for ``NT AUTHORITY\\SELF`` and non-SendAs rows."""
    label = str(row.get("Trustee") or "")
    if not label or label.upper() == SELF or "SendAs" not in access_rights(row.get("AccessRights")):
        return None
    return Grant(
        Right.SEND_AS,
        mailbox,
        display_trustee(label),
        _kind(label),
        inherited=as_bool(row.get("IsInherited")),
        deny=deny(row),
    )


def mailbox_permission_grant(row: Row, mailbox: str) -> Grant | None:
    """A Get-MailboxPermission row as a FullAccess grant; None for SELF and rows without FullAccess."""
    label = str(row.get("User") or "")
    if not label or label.upper() == SELF or "FullAccess" not in access_rights(row.get("AccessRights")):
        return None
    return Grant(
        Right.FULL_ACCESS,
        mailbox,
        display_trustee(label),
        _kind(label),
        inherited=as_bool(row.get("IsInherited")),
        deny=as_bool(row.get("Deny")),
    )


def _kind(label: str) -> TrusteeKind:
    return TrusteeKind.SYSTEM if is_system_trustee(label) else kind_from_label(label)


def deny(row: Row) -> bool:
    return str(row.get("AccessControlType") or "Allow").casefold() == "deny"


def change_command(
    action: ChangeAction, right: Right, mailbox: str, trustee: str, *, automapping: bool = True
) -> Command:
    """The cmdlet a grant or revoke runs (``emaildoctor grant --what-if`` prints it)."""
    grant = action is ChangeAction.GRANT
    if right is Right.SEND_AS:
        cmdlet = "Add-RecipientPermission" if grant else "Remove-RecipientPermission"
        params: dict[str, Any] = {"Identity": mailbox, "Trustee": trustee, "AccessRights": ["SendAs"]}
    elif right is Right.SEND_ON_BEHALF:
        cmdlet = "Set-Mailbox"
        change = hashtable(add=[trustee]) if grant else hashtable(remove=[trustee])
        params = {"Identity": mailbox, "GrantSendOnBehalfTo": change}
    else:
        cmdlet = "Add-MailboxPermission" if grant else "Remove-MailboxPermission"
        params = {"Identity": mailbox, "User": trustee, "AccessRights": ["FullAccess"], "InheritanceType": "All"}
        if grant:
            params["AutoMapping"] = automapping
    params["Confirm"] = False
    return Command(cmdlet, params, anchor=mailbox)
