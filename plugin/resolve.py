"""Sender resolution: for a user and the directory, who signs in, what the mail claims, and which right
that takes. The product never guesses the direction of a right; this module is where it is decided.

The application's test email is From and To the user's own address, signed in with the
Authenticated User's settings (the user's own alternate server if they have one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from plugin.addresses import same_address
from plugin.diagnosis import Code, Right
from plugin.directory import Delegation, Directory, Employee, MailServer, ServerType, Transport
from plugin.errors import ConfigError, EmailDoctorError
from plugin.settings import Security


class SignIn(StrEnum):
    PASSWORD = "password"  # noqa: S105 - a sign-in kind, not a secret
    OAUTH_APP = "oauth_app"
    """The emaildoctor app's client-credentials token (Graph Mail.Send, or SMTP.SendAsApp for XOAUTH2)."""


class ResolutionError(EmailDoctorError):
    """No send plan can be made; ``code`` says why (e.g. ``missing_email_address``)."""


@dataclass(frozen=True)
class SendPlan:
    """How the application sends a test email for one user."""

    user: Employee
    principal: str
    """The account that signs in (SMTP login, or the mailbox Graph sends as)."""
    from_addr: str
    sender: str | None
    """The Sender header, set only for Send on Behalf."""
    to_addr: str
    transport: Transport
    server: MailServer
    server_source: str
    """'the system Outgoing Mail Server' or 'Alice's alternate server settings'."""
    sign_in: SignIn
    required_right: Right | None
    explanation: str
    notes: tuple[str, ...] = field(default=())

    @property
    def host(self) -> str:
        return self.server.effective_host

    @property
    def port(self) -> int:
        return self.server.effective_port

    @property
    def security(self) -> Security:
        return self.server.effective_security

    def to_json(self) -> dict[str, object]:
        return {
            "user": self.user.login,
            "principal": self.principal,
            "from": self.from_addr,
            "sender": self.sender,
            "to": self.to_addr,
            "transport": str(self.transport),
            "server": {
                "source": self.server_source,
                "type": str(self.server.type),
                "host": self.host if self.transport is Transport.SMTP else None,
                "port": self.port if self.transport is Transport.SMTP else None,
                "security": str(self.security) if self.transport is Transport.SMTP else None,
                "timeout": self.server.timeout,
                "secret": self.server.secret.describe(),
            },
            "sign_in": str(self.sign_in),
            "required_right": str(self.required_right) if self.required_right else None,
            "explanation": self.explanation,
            "notes": list(self.notes),
        }


RIGHT_WORDS = {Right.SEND_AS: "Send As", Right.SEND_ON_BEHALF: "Send on Behalf", Right.FULL_ACCESS: "Full Access"}


def resolve(user: Employee, directory: Directory, *, test_recipient: str | None = None) -> SendPlan:
    """The send plan for ``user``; raises :class:`ResolutionError` when the application cannot send at all."""
    if user.email is None:
        raise ResolutionError(
            f"{user.name} ({user.login}) has no email address on their Employee record, so the application "
            "has no From address to send a test email from.",
            code=Code.MISSING_EMAIL_ADDRESS,
        )
    if user.server is not None:
        server, source = user.server, f"{user.name}'s alternate server settings"
    elif directory.system.server is not None:
        server, source = directory.system.server, "the system Outgoing Mail Server"
    elif directory.system_problem is not None:
        raise ConfigError(
            f"{user.login} has no alternate server settings, and the directory's system outgoing mail server is "
            f"invalid, so it was skipped: {directory.system_problem}"
        )
    else:
        raise ConfigError(
            f"{user.login} has no alternate server settings and the directory ({directory.source}) has no "
            "system outgoing mail server: add 'system: server:' with the Authenticated User"
        )
    delegation = user.delegation or directory.system.delegation
    principal = server.user
    from_addr = user.email
    own = same_address(principal, from_addr)
    right: Right | None = None
    if not own:
        right = Right.SEND_ON_BEHALF if delegation is Delegation.SEND_ON_BEHALF else Right.SEND_AS
    sender = principal if right is Right.SEND_ON_BEHALF else None
    transport = server.effective_transport
    sign_in = SignIn.OAUTH_APP if server.oauth else SignIn.PASSWORD
    notes = _notes(server, transport, right, principal)
    return SendPlan(
        user=user,
        principal=principal,
        from_addr=from_addr,
        sender=sender,
        to_addr=test_recipient or from_addr,
        transport=transport,
        server=server,
        server_source=source,
        sign_in=sign_in,
        required_right=right,
        explanation=explain(principal, from_addr, right, transport=transport, sign_in=sign_in),
        notes=notes,
    )


def explain(
    principal: str,
    from_addr: str,
    right: Right | None,
    *,
    transport: Transport = Transport.SMTP,
    sign_in: SignIn = SignIn.PASSWORD,
) -> str:
    """The one sentence every report uses to say who signs in, what the mail claims and what that takes."""
    if sign_in is SignIn.OAUTH_APP and transport is Transport.GRAPH:
        who = f"emaildoctor's app sends through Microsoft Graph as {principal}"
    elif sign_in is SignIn.OAUTH_APP:
        who = f"emaildoctor's app signs in to SMTP with OAuth as {principal}"
    else:
        who = f"{principal} signs in"
    if right is None:
        return f"{who} and the message is from that same address, so no mailbox right is needed."
    if right is Right.SEND_ON_BEHALF:
        return (
            f"{who}; the message is from {from_addr} with Sender {principal}; Exchange accepts that only if "
            f"{principal} holds Send on Behalf on {from_addr}'s mailbox."
        )
    return (
        f"{who}; the message is from {from_addr}; Exchange accepts that only if {principal} holds "
        f"{RIGHT_WORDS[right]} on {from_addr}'s mailbox."
    )


def _notes(server: MailServer, transport: Transport, right: Right | None, principal: str) -> tuple[str, ...]:
    notes: list[str] = []
    if server.oauth and transport is Transport.SMTP:
        notes.append(
            f"XOAUTH2 with the app's token: Exchange also requires the app's service principal to be registered "
            f"in Exchange and to hold Full Access on {principal}'s mailbox."
        )
    if right is Right.SEND_ON_BEHALF and transport is Transport.SMTP:
        notes.append(
            "Exchange Online SMTP submission is documented to accept another From address only with Send As; "
            "Send on Behalf is reliable through Microsoft Graph."
        )
    if server.type is ServerType.SMTP and not server.oauth and server.effective_host.endswith("office365.com"):
        notes.append(
            "Microsoft disables SMTP basic authentication by default for existing tenants at the end of "
            "December 2026; plan the move to OAuth (version 6.3 and later)."
        )
    if server.effective_security is Security.NONE:
        notes.append("SSL is off: Exchange Online and most providers only offer AUTH after STARTTLS.")
    return tuple(notes)
