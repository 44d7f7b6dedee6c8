"""The permission types that leave :mod:`graph` (frozen dataclasses), and input validation.

A :class:`Grant` is one row of "who holds which right on which mailbox", the same shape for
``PermissionService.show`` / ``who`` and for the tenant audit's snapshot. ``trustee`` is how a person reads it:
the primary address for users and guests, the display name for groups, the bare SID for an account Exchange
can no longer resolve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from plugin.addresses import is_address, validate_address
from plugin.diagnosis import Code, Right
from plugin.errors import ConfigError

SELF = "NT AUTHORITY\\SELF"
SID = re.compile(r"^S-1-\d+(-\d+)+$", re.IGNORECASE)
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_BUILTIN = re.compile(r"^[^\\@]+\\[^\\@]+$")  # DOMAIN\Name: Exchange's own security principals
_RIGHT_NAMES = {
    "sendas": Right.SEND_AS,
    "sendonbehalf": Right.SEND_ON_BEHALF,
    "sendonbehalfof": Right.SEND_ON_BEHALF,
    "grantsendonbehalfto": Right.SEND_ON_BEHALF,
    "fullaccess": Right.FULL_ACCESS,
}


class TrusteeKind(StrEnum):
    USER = "user"
    GROUP = "group"
    EXTERNAL = "external"
    """A guest (``…#EXT#@…``) or an address outside the tenant's domains."""
    ORPHANED_SID = "orphaned_sid"
    """A bare SID: the account was deleted and Exchange can no longer name it."""
    DISABLED = "disabled"
    """A user whose account is disabled (shared mailboxes, whose accounts are always disabled, are users)."""
    APP = "app"
    """A service principal registered in Exchange (New-ServicePrincipal), printed as its object id."""
    UNKNOWN = "unknown"
    """An address the directory does not know (a contact, a mail user, or a deleted user)."""
    SYSTEM = "system"
    """Exchange's own principals (``NT AUTHORITY\\SYSTEM``, ``<DOMAIN>\\Organization Management`` …), inherited."""


_KIND_WORDS = {TrusteeKind.ORPHANED_SID: "deleted account"}
"""How a kind reads in reports, where the enum's value would not say it plainly."""


class ChangeOutcome(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    NOT_VISIBLE = "not_visible_yet"
    """Exchange accepted the change, but its (eventually consistent) reads did not show it within the read-back
    bound: done, not confirmed — never reported as failed."""
    FAILED = "failed"


class ChangeAction(StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"


@dataclass(frozen=True, order=True)
class Grant:
    right: Right
    mailbox: str
    trustee: str
    trustee_kind: TrusteeKind = TrusteeKind.USER
    inherited: bool = False
    deny: bool = False
    via_group: str = ""
    """For a member's reverse lookup: the group whose grant this is (the member holds it through that group)."""

    def describe(self) -> str:
        """The trustee as reports show it: ``oscar@business.com (disabled, inherited)``, ``S-1-5-21-… (deleted
        account)``."""
        kind = _KIND_WORDS.get(self.trustee_kind, str(self.trustee_kind))
        marks = [kind] if self.trustee_kind is not TrusteeKind.USER else []
        if self.inherited:
            marks.append("inherited")
        if self.deny:
            marks.append("DENY")
        return self.trustee + (f" ({', '.join(marks)})" if marks else "")

    @property
    def key(self) -> tuple[str, str, str, bool]:
        """Identity of a grant for diffs (addresses compare case-insensitively)."""
        return (str(self.right), self.mailbox.casefold(), self.trustee.casefold(), self.deny)

    def to_json(self) -> dict[str, Any]:
        return {
            "right": str(self.right),
            "mailbox": self.mailbox,
            "trustee": self.trustee,
            "trustee_kind": str(self.trustee_kind),
            "inherited": self.inherited,
            "deny": self.deny,
        } | ({"via_group": self.via_group} if self.via_group else {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Grant:
        return cls(
            right=Right(data["right"]),
            mailbox=str(data["mailbox"]),
            trustee=str(data["trustee"]),
            trustee_kind=TrusteeKind(data.get("trustee_kind", "user")),
            inherited=bool(data.get("inherited", False)),
            deny=bool(data.get("deny", False)),
            via_group=str(data.get("via_group") or ""),
        )


@dataclass(frozen=True)
class MailboxRights:
    """Who holds SendAs, SendOnBehalf and FullAccess on one mailbox (``NT AUTHORITY\\SELF`` left out)."""

    mailbox: str
    send_as: tuple[Grant, ...] = ()
    send_on_behalf: tuple[Grant, ...] = ()
    full_access: tuple[Grant, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def grants(self) -> tuple[Grant, ...]:
        return (*self.send_as, *self.send_on_behalf, *self.full_access)

    def holders(self, *, everything: bool = False) -> tuple[list[tuple[Right, list[Grant]]], int]:
        """The holders of each right, and how many of Exchange's own inherited system entries were left out."""
        shown: list[tuple[Right, list[Grant]]] = []
        hidden = 0
        for right, grants in (
            (Right.SEND_AS, self.send_as),
            (Right.SEND_ON_BEHALF, self.send_on_behalf),
            (Right.FULL_ACCESS, self.full_access),
        ):
            kept = [g for g in grants if everything or g.trustee_kind is not TrusteeKind.SYSTEM]
            hidden += len(grants) - len(kept)
            shown.append((right, kept))
        return shown, hidden

    def to_json(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "SendAs": [g.to_json() for g in self.send_as],
            "SendOnBehalf": [g.to_json() for g in self.send_on_behalf],
            "FullAccess": [g.to_json() for g in self.full_access],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ChangeResult:
    """What a grant or revoke did. ``verified``: the right was read back from Exchange afterwards and matched;
    ``lag_seconds``: how long after the change Exchange's reads showed it. ``expires_at`` is carried for time-bound
    grants (the bot stores it and revokes when it passes)."""

    action: ChangeAction
    right: Right
    mailbox: str
    trustee: str
    outcome: ChangeOutcome
    detail: str
    at: datetime
    verified: bool = False
    code: Code | None = None
    warnings: tuple[str, ...] = field(default=())
    expires_at: datetime | None = None
    lag_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is not ChangeOutcome.FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "action": str(self.action),
            "right": str(self.right),
            "mailbox": self.mailbox,
            "trustee": self.trustee,
            "outcome": str(self.outcome),
            "ok": self.ok,
            "verified": self.verified,
            "detail": self.detail,
            "code": str(self.code) if self.code else None,
            "warnings": list(self.warnings),
            "at": self.at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "lag_seconds": self.lag_seconds,
        }


# --- input validation (before any call: bad input changes nothing) --------------------------------------------
def parse_right(value: Right | str) -> Right:
    """``SendAs``, ``send-as``, ``Send on Behalf``, ``fullaccess`` … → :class:`Right`; ConfigError otherwise."""
    if isinstance(value, Right):
        return value
    key = re.sub(r"[\s_-]+", "", str(value)).casefold()
    right = _RIGHT_NAMES.get(key)
    if right is None:
        raise ConfigError(f"unknown right {value!r}: use SendAs, SendOnBehalf or FullAccess")
    return right


def check_mailbox(value: str, what: str = "mailbox") -> str:
    """An email address (the mailbox or a user); ConfigError naming ``what`` otherwise."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        return validate_address(text)
    except ValueError as exc:
        raise ConfigError(f"the {what} must be an email address: {exc}") from exc


def check_trustee(value: str, *, allow_sid: bool = False) -> str:
    """A trustee's email address (or, when cleaning up, the bare SID of a deleted account)."""
    text = value.strip() if isinstance(value, str) else ""
    if allow_sid and SID.match(text):
        return text.upper()
    return check_mailbox(text, "trustee")


# --- reading Exchange's trustee labels ---------------------------------------------------------------------------
def is_system_trustee(label: str) -> bool:
    """``NT AUTHORITY\\SELF``, ``NT AUTHORITY\\SYSTEM``, ``<DOMAIN>\\Organization Management`` …: Exchange's own."""
    return bool(_BUILTIN.match(label.strip()))


def external_address(label: str) -> str | None:
    """The external address behind a guest UPN: ``partner_fabrikam.com#EXT#@x.onmicrosoft.com`` → ``partner@fabrikam.com``."""
    local, marker, _ = label.partition("#EXT#")
    if not marker or "_" not in local:
        return None
    user, _, domain = local.rpartition("_")
    candidate = f"{user}@{domain}"
    return candidate if is_address(candidate) else None


def kind_from_label(label: str) -> TrusteeKind:
    """The trustee kind from the label alone (no directory): SID, guest UPN, object id, address or group name."""
    text = label.strip()
    if SID.match(text):
        return TrusteeKind.ORPHANED_SID
    if "#EXT#" in text:
        return TrusteeKind.EXTERNAL
    if GUID.match(text):
        return TrusteeKind.APP
    if is_address(text):
        return TrusteeKind.USER
    return TrusteeKind.GROUP


def display_trustee(label: str) -> str:
    """How a trustee label is shown: a guest's external address, upper-case SIDs, the label otherwise."""
    text = label.strip()
    if SID.match(text):
        return text.upper()
    return external_address(text) or text


def as_bool(value: Any) -> bool:
    """Exchange booleans arrive as JSON booleans, or as "True"/"False" strings from some serialisers."""
    if isinstance(value, str):
        return value.strip().casefold() == "true"
    return bool(value)


def access_rights(value: Any) -> tuple[str, ...]:
    """``AccessRights`` as a tuple of single rights. Exchange sends a list whose elements may each join several
    rights (a flags enum as one string: ``["FullAccess, ReadPermission"]``, live), or one such string."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list | tuple) else []
    return tuple(part.strip() for item in items for part in str(item).split(",") if part.strip())
