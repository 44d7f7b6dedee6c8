"""What the core needs from Microsoft 365, described as protocols. :mod:`graph` implements them; the core
never imports it (ARCHITECTURE.md: data flows one way).

Every type here is ours: vendor objects never cross this line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from plugin.diagnosis import Code, Right
from plugin.probe_request import TokenSource


class MailboxKind(StrEnum):
    USER = "user"
    SHARED = "shared"
    NONE = "none"
    """No Exchange Online mailbox (unlicensed, on-premises, a guest or mail user)."""
    UNKNOWN = "unknown"
    """Not looked up (bulk listings do not ask for every user's mailbox)."""


@dataclass(frozen=True)
class UserRecord:
    id: str
    upn: str
    mail: str | None
    display_name: str
    enabled: bool
    mailbox: MailboxKind
    guest: bool = False
    proxy_addresses: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class SmtpAuthState:
    """Exchange's two SMTP AUTH switches: the organisation's, and the mailbox's (None inherits)."""

    tenant_disabled: bool
    mailbox_disabled: bool | None

    @property
    def enabled(self) -> bool:
        if self.mailbox_disabled is not None:
            return not self.mailbox_disabled
        return not self.tenant_disabled

    def describe(self, mailbox: str) -> str:
        if self.mailbox_disabled is False:
            return f"SMTP AUTH is enabled for {mailbox}"
        if self.mailbox_disabled is True:
            return f"SMTP AUTH is disabled for the mailbox {mailbox}"
        state = "disabled" if self.tenant_disabled else "enabled"
        return f"{mailbox} follows the organisation setting: SMTP AUTH is {state} for the tenant"


@dataclass(frozen=True)
class RightHolding:
    """Whether ``trustee`` holds ``right`` on ``mailbox`` according to Exchange's directory (what the admin API
    reads back), which a fresh grant reaches before sending does."""

    right: Right
    mailbox: str
    trustee: str
    held: bool
    via_group: str | None = None
    granted_at: datetime | None = None
    """When emaildoctor granted it, if it did (Exchange itself keeps no timestamp)."""


@dataclass(frozen=True)
class GraphSendResult:
    ok: bool
    status: int | None
    code: Code | None = None
    error_code: str | None = None
    message: str = ""
    delivered: bool | None = None
    """True when the test message was found in the recipient's mailbox; None when it could not be checked."""
    evidence: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "status": self.status,
            "error_code": self.error_code,
            "message": self.message,
            "delivered": self.delivered,
        }


class UserDirectory(Protocol):
    """Microsoft 365's directory: users, mailboxes and the SMTP AUTH switches."""

    async def find_user(self, query: str) -> UserRecord | None:
        """By email address, UPN, proxy address or display name; None if nobody matches."""
        ...

    async def smtp_auth(self, mailbox: str) -> SmtpAuthState: ...

    async def accepted_domains(self) -> frozenset[str] | None:
        """The tenant's verified domains; None when Microsoft 365 will not tell (no permission to read them)."""
        ...


class RightsReader(Protocol):
    async def holds(self, right: Right, mailbox: str, trustee: str) -> RightHolding: ...


class TestMailer(Protocol):
    """Sends the test message through Microsoft Graph as ``principal`` (app-only ``/users/{principal}/sendMail``)."""

    async def send_test(
        self, *, principal: str, from_addr: str, to_addr: str, sender: str | None, test_id: str
    ) -> GraphSendResult: ...


class Microsoft365(Protocol):
    """Everything the full diagnosis uses from Microsoft 365."""

    @property
    def users(self) -> UserDirectory: ...

    @property
    def rights(self) -> RightsReader: ...

    @property
    def mailer(self) -> TestMailer: ...

    def smtp_token_source(self) -> TokenSource:
        """The app's token for SMTP XOAUTH2 (scope ``{exchange}/.default``, role SMTP.SendAsApp)."""
        ...

    async def explain_token(self, for_smtp: bool) -> tuple[str, ...]:
        """Evidence about the app's token when a service rejected it: audience, roles, expiry, and what is
        missing for SMTP XOAUTH2 (``for_smtp``) or Graph sendMail. Never the token itself."""
        ...
