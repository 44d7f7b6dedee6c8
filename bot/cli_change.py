"""What `emaildoctor grant|revoke` says and whom it means: identities resolved to addresses, the cmdlet printed
for ``--what-if``, the outcome in words that depend on what changed, and the expiry of a time-bound grant."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.changes import Change, describe_duration
from bot.grant_grammar import effect_words
from bot.pipeline import found_unchanged
from bot.store import ChangeRecord, ChangeState
from graph.exchange import ExchangeAdmin
from graph.permission_rows import change_command
from graph.permissions_model import SID, ChangeAction
from graph.recipients import Recipient, look_up, looks_like_admin
from plugin.diagnosis import Right
from plugin.directory import Directory
from plugin.errors import ConfigError, EmailDoctorError
from plugin.resolve import RIGHT_WORDS

_CAN = {
    Right.SEND_AS: "send as {mailbox}",
    Right.SEND_ON_BEHALF: "send on behalf of {mailbox}",
    Right.FULL_ACCESS: "open {mailbox}'s mailbox",
}


@dataclass
class Resolved:
    """The change with addresses, how each identity was found, and what to warn about."""

    change: Change
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def _address(exchange: ExchangeAdmin, directory: Directory | None, typed: str, what: str) -> tuple[str, str]:
    """(address, how it was found) for an address, UPN, alias or directory login."""
    text = typed.strip()
    if SID.match(text):
        return text, ""
    if "@" not in text and directory is not None:
        try:
            employee = directory.find(text)
        except EmailDoctorError:
            employee = None
        if employee is not None and employee.email:
            return employee.email, f"{what} {text} is the directory login of {employee.email}"
    found = await look_up(exchange, text)
    if found is not None:
        if found.address.casefold() != text.casefold():
            return found.address, f"{what} {text} is {found.address} in Exchange"
        return found.address, ""
    if "@" in text:
        return text, ""
    raise ConfigError(f"--{what} {text}: no mailbox, user or alias of that name in Exchange or the directory")


async def resolve(
    exchange: ExchangeAdmin, directory: Directory | None, kind: str, right: Right, mailbox: str, trustee: str
) -> Resolved:
    """Addresses for ``mailbox`` and ``trustee`` (each an address, UPN, alias or directory login), and warnings:
    a grant to a disabled account, to a guest, or to an admin account, or on an admin's mailbox."""
    mailbox_address, mailbox_note = await _address(exchange, directory, mailbox, "mailbox")
    trustee_address, trustee_note = await _address(exchange, directory, trustee, "trustee")
    resolved = Resolved(Change(kind, right, mailbox_address, trustee_address))
    resolved.notes += [note for note in (mailbox_note, trustee_note) if note]
    if kind != "grant":
        return resolved
    who: Recipient | None = None if SID.match(trustee_address) else await look_up(exchange, trustee_address)
    if who is not None and who.disabled:
        resolved.warnings.append(
            f"{trustee_address}'s account is disabled: a right held by a disabled account is an audit finding, "
            "and nobody can use it until the account is enabled"
        )
    if who is not None and who.guest:
        resolved.warnings.append(f"{trustee_address} is a guest from outside the organisation")
    if looks_like_admin(trustee_address):
        resolved.warnings.append(f"{trustee_address} is an administrator account")
    if looks_like_admin(mailbox_address):
        resolved.warnings.append(f"{mailbox_address} is an administrator's mailbox: {trustee_address} could act as it")
    return resolved


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, dict):
        parts = [f"{key.capitalize()}={_value(item)}" for key, item in value.items() if not key.startswith("@")]
        return "@{" + "; ".join(parts) + "}"
    if isinstance(value, list | tuple):
        return ",".join(_value(item) for item in value)
    text = str(value)
    return text if text and all(c.isalnum() or c in "@._-" for c in text) else "'" + text.replace("'", "''") + "'"


def cmdlet_line(change: Change, *, automapping: bool = True) -> str:
    """The PowerShell line emaildoctor runs for ``change``, as an admin would type it."""
    action = ChangeAction.GRANT if change.kind == "grant" else ChangeAction.REVOKE
    command = change_command(action, change.right, change.mailbox, change.trustee, automapping=automapping)
    parts = [command.cmdlet]
    for name, value in command.parameters.items():
        parts.append(f"-{name}:{_value(value)}" if isinstance(value, bool) else f"-{name} {_value(value)}")
    return " ".join(parts)


def what_if(resolved: Resolved, *, automapping: bool = True, now: datetime | None = None) -> str:
    change = resolved.change
    until = now + change.duration if now is not None and change.duration else None
    effect = effect_words(change, until=until).replace(" will ", " would ", 1)
    lines = [f"What if: {cmdlet_line(change, automapping=automapping)}", f"{effect}."]
    if change.duration and until is not None:
        lines.append(f"Time-bound: it would be revoked after {describe_duration(change.duration)}.")
    lines.append("Nothing was changed (--what-if).")
    return "\n".join(lines)


def outcome_words(verb: str, change: ChangeRecord) -> str:
    """The result, in words that depend on what Exchange did."""
    can = _CAN[change.right].format(mailbox=change.mailbox)
    holds = f"{RIGHT_WORDS[change.right]} on {change.mailbox}"
    if change.state is ChangeState.VERIFIED:
        if found_unchanged(change):
            if verb == "grant":
                return f"Already held — nothing changed: {change.trustee} could already {can}."
            return f"Already so — nothing changed: {change.trustee} did not hold {holds}."
        if verb == "grant":
            return (
                f"Done: {change.trustee} can now {can} (changed; read back from Exchange).\n"
                "Exchange can take up to an hour before sending with a new right works everywhere; re-test with "
                "`emaildoctor test <user>`."
            )
        return f"Done: {change.trustee} can no longer {can} (changed; read back from Exchange)."
    if change.state is ChangeState.FAILED:
        return f"Failed: could not {verb} {change.trustee} {holds}: {change.detail or 'no detail'}"
    return (
        f"Not finished (change {change.id}): {change.detail or 'applying'}. The bot (`emaildoctor bot`) keeps "
        "trying and posts the outcome in the approvals channel."
    )


def expiry_words(expires_at: datetime) -> str:
    local = expires_at.astimezone()
    return (
        f"Expires at {local:%Y-%m-%d %H:%M %Z} ({expires_at:%Y-%m-%d %H:%M} UTC). The bot (`emaildoctor bot`) "
        "revokes it then, so it must use the same store as this command (EMAILDOCTOR_STORE__URL); "
        "`/mailaudit last` lists time limits that ran out."
    )
