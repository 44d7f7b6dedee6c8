"""Which Exchange roles let an app run each cmdlet emaildoctor calls: one table, as data.

The sandbox enforces this table and the product names a row of it when Exchange refuses a cmdlet
(``exchange_role_missing``), so a live check that finds a difference changes one line here.

Sources: Microsoft Learn "Permissions in Exchange Online" and the built-in role groups' management roles
(Organization Management: every role; Recipient Management: *Mail Recipients*, which holds the
Get/Set-Mailbox, *-MailboxPermission, *-RecipientPermission and Get/Set-CASMailbox cmdlets, and
*Distribution Groups*, which holds Get-DistributionGroup(Member); Get-Recipient is in every recipient role; View-Only
Organization Management: *View-Only Configuration* + *View-Only Recipients*), "App-only authentication"
(office-docs-powershell ``app-only-auth-powershell-v2.md``) for the Entra roles that map onto them, and the
2026 live captures (shared/reference/exchange-online.md): Get-TransportConfig needs View-Only Configuration
(View-Only Organization Management) or Exchange Administrator; Exchange Recipient Administrator alone gets
``401 User is not allowed to call Get-TransportConfig``. Get-ServicePrincipal (Role Management, read by
View-Only Configuration) is UNCONFIRMED. The Helpdesk / Security / Compliance mappings are
from the role-group descriptions and UNCONFIRMED on a live tenant.
"""

from __future__ import annotations

from collections.abc import Mapping

EVERYTHING = ("Exchange Administrator", "Global Administrator", "Organization Management")
"""Entra roles / role groups that may run every cmdlet."""
MAIL_RECIPIENTS = ("Exchange Recipient Administrator", "Recipient Management")
"""Hold the *Mail Recipients* role: read and change mailboxes and their permissions, not the organisation."""
VIEW_ONLY_RECIPIENTS = (
    "Global Reader",
    "View-Only Organization Management",
    "Helpdesk Administrator",
    "Help Desk",
    "Security Administrator",
    "Compliance Administrator",
    "Compliance Management",
)
VIEW_ONLY_CONFIGURATION = (
    "Global Reader",
    "View-Only Organization Management",
    "Security Administrator",
    "Compliance Administrator",
    "Compliance Management",
)

_READ_RECIPIENTS = (*MAIL_RECIPIENTS, *EVERYTHING, *VIEW_ONLY_RECIPIENTS)
_CHANGE_RECIPIENTS = (*MAIL_RECIPIENTS, *EVERYTHING)

CMDLET_ROLES: Mapping[str, tuple[str, ...]] = {
    "Get-Mailbox": _READ_RECIPIENTS,
    "Set-Mailbox": _CHANGE_RECIPIENTS,
    "Get-RecipientPermission": _READ_RECIPIENTS,
    "Add-RecipientPermission": _CHANGE_RECIPIENTS,
    "Remove-RecipientPermission": _CHANGE_RECIPIENTS,
    "Get-MailboxPermission": _READ_RECIPIENTS,
    "Add-MailboxPermission": _CHANGE_RECIPIENTS,
    "Remove-MailboxPermission": _CHANGE_RECIPIENTS,
    "Get-CASMailbox": _READ_RECIPIENTS,
    "Get-Recipient": _READ_RECIPIENTS,
    "Get-DistributionGroup": _READ_RECIPIENTS,
    "Get-DistributionGroupMember": _READ_RECIPIENTS,
    "Set-CASMailbox": _CHANGE_RECIPIENTS,
    "Get-TransportConfig": (*VIEW_ONLY_CONFIGURATION, *EVERYTHING),
    "Get-ServicePrincipal": (*VIEW_ONLY_CONFIGURATION, *EVERYTHING),  # emaildoctor check (XOAUTH2); UNCONFIRMED
    "Set-TransportConfig": EVERYTHING,
}
"""Cmdlet → the Entra roles and Exchange role groups that cover it (least privilege first)."""

RECOMMENDED = ("Exchange Recipient Administrator", "View-Only Organization Management")
"""What README and manifests/ recommend: the Entra role plus the Exchange role group (or Global Reader instead
of the role group); together they cover every cmdlet emaildoctor calls. Exchange Administrator alone also does."""


def roles_covering(cmdlet: str) -> tuple[str, ...]:
    """The roles that allow ``cmdlet`` (unknown cmdlets: only the all-powerful ones)."""
    key = next((name for name in CMDLET_ROLES if name.casefold() == cmdlet.strip().casefold()), None)
    return CMDLET_ROLES[key] if key is not None else EVERYTHING


def allows(roles: set[str], cmdlet: str) -> bool:
    held = {r.casefold() for r in roles}
    return any(role.casefold() in held for role in roles_covering(cmdlet))


def role_advice(cmdlet: str) -> str:
    """How to fix a refusal of ``cmdlet``: the recommended role that covers it, or Exchange Administrator."""
    covering = roles_covering(cmdlet)
    recommended = [r for r in RECOMMENDED if r in covering]
    first = recommended[0] if recommended else covering[0]
    return f"{first} (or Exchange Administrator)" if first != "Exchange Administrator" else first
