"""What a change of rights is, as people type it: the right, the duration of a time-bound grant, the words.
(Carrying it out is :mod:`bot.pipeline`.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from plugin.diagnosis import Right
from plugin.errors import ConfigError

_DURATION = re.compile(r"^(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?$")
_MAX_DIGITS = 9
"""Longer numbers are refused before int() (Python refuses to convert more than 4,300 digits)."""
MAX_DURATION = timedelta(days=90)
"""The default bound (settings: ``limits.max_grant_days``)."""
RIGHTS = {"sendas": Right.SEND_AS, "sendonbehalf": Right.SEND_ON_BEHALF, "fullaccess": Right.FULL_ACCESS}


def parse_right(text: str) -> Right:
    key = text.strip().casefold().replace("-", "").replace("_", "").replace(" ", "")
    if key not in RIGHTS:
        raise ConfigError(f"'{text}' is not a right: use SendAs, SendOnBehalf or FullAccess")
    return RIGHTS[key]


def parse_duration(text: str, maximum: timedelta = MAX_DURATION) -> timedelta:
    """'8h', '30m', '2d', '1h30m' → a timedelta between one minute and ``maximum``.

    Out-of-range input gets a clear message, never OverflowError or ValueError."""
    bounds = f"a time-bound grant lasts between 1 minute and {describe_duration(maximum)}"
    match = _DURATION.match(text.strip().casefold())
    if not match or not any(match.groups()):
        raise ConfigError(f"'{text[:40]}' is not a duration: use e.g. 30m, 8h, 2d or 1h30m")
    if any(len(part or "") > _MAX_DIGITS for part in match.groups()):
        raise ConfigError(f"'{text[:40]}' is far too long: {bounds}")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    total = (days * 24 + hours) * 60 + minutes  # compared as a number: timedelta itself has an upper limit
    if not 1 <= total <= maximum.total_seconds() // 60:
        raise ConfigError(f"'{text}' is out of range: {bounds}")
    return timedelta(minutes=total)


def describe_duration(duration: timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return "".join(parts) or "0m"


@dataclass(frozen=True)
class Change:
    kind: str
    """'grant' or 'revoke'."""
    right: Right
    mailbox: str
    trustee: str
    duration: timedelta | None = None

    def subject(self) -> dict[str, object]:
        subject: dict[str, object] = {"right": str(self.right), "mailbox": self.mailbox, "trustee": self.trustee}
        if self.duration is not None:
            subject["duration_seconds"] = int(self.duration.total_seconds())
        return subject
