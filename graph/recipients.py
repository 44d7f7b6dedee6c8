"""Who an identity is, for a change of rights: its primary address, whether its account is disabled, whether it
is a shared mailbox or a group, and whether it looks like an administrator's account.

Exchange resolves every kind of identity a person types (an address, a UPN, an alias, a name): ``Get-Mailbox``
knows the account state of mailboxes, ``Get-Recipient`` the rest (groups, mail users, guests). One or two
admin-API calls per identity; used by `emaildoctor grant|revoke` and by the bot's confirmation cards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graph.exchange import ExchangeAdmin
from graph.permissions_model import as_bool
from plugin.errors import NotFoundError

_FIELDS = ("PrimarySmtpAddress", "UserPrincipalName", "Alias", "RecipientTypeDetails", "AccountDisabled")
_SHARED = {"sharedmailbox", "roommailbox", "equipmentmailbox"}
_ADMIN_NAME = re.compile(r"(?:^|[._+-])(?:admin|administrator|root|postmaster|globaladmin)(?:[._+-]|\d|$)")
"""Local parts that name an administrative account by convention: admin@, it-admin@, administrator@, root@."""


@dataclass(frozen=True)
class Recipient:
    address: str
    """The primary SMTP address (what Exchange prints in permissions)."""
    kind: str
    """Exchange's RecipientTypeDetails: UserMailbox, SharedMailbox, MailUniversalSecurityGroup, GuestMailUser …"""
    disabled: bool = False
    """The account cannot sign in (shared mailboxes' accounts always are, and are not reported as disabled)."""

    @property
    def shared(self) -> bool:
        return self.kind.casefold() in _SHARED

    @property
    def group(self) -> bool:
        return "group" in self.kind.casefold()

    @property
    def guest(self) -> bool:
        return "guest" in self.kind.casefold()


def looks_like_admin(address: str) -> bool:
    """An address whose local part names an administrator account (admin@, it-admin@, administrator@ …)."""
    local = address.rsplit("@", 1)[0].casefold()
    return bool(_ADMIN_NAME.search(local))


async def look_up(exchange: ExchangeAdmin, identity: str) -> Recipient | None:
    """The recipient Exchange knows as ``identity`` (address, UPN, alias or name); None when it knows none."""
    try:
        mailbox = await exchange.invoke("Get-Mailbox", {"Identity": identity}, anchor=identity, select=_FIELDS)
    except NotFoundError:
        mailbox = None
    if mailbox is not None and mailbox.rows:
        row = mailbox.rows[0]
        kind = str(row.get("RecipientTypeDetails") or "UserMailbox")
        disabled = as_bool(row.get("AccountDisabled")) and kind.casefold() not in _SHARED
        return Recipient(str(row.get("PrimarySmtpAddress") or identity), kind, disabled)
    try:
        found = await exchange.invoke("Get-Recipient", {"Identity": identity}, select=_FIELDS)
    except NotFoundError:
        return None
    if not found.rows:
        return None
    row = found.rows[0]
    return Recipient(str(row.get("PrimarySmtpAddress") or identity), str(row.get("RecipientTypeDetails") or ""))
