"""What a change of rights is, as people type it: the right, the duration of a time-bound grant, the words.
(Carrying it out is :mod:`bot.pipeline`.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from plugin.diagnosis import Right
from plugin.errors import ConfigError

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
MAX_DURATION = timedelta(days=30)
RIGHTS = {"sendas": Right.SEND_AS, "sendonbehalf": Right.SEND_ON_BEHALF, "fullaccess": Right.FULL_ACCESS}


def parse_right(text: str) -> Right:
    key = text.strip().casefold().replace("-", "").replace("_", "").replace(" ", "")
    if key not in RIGHTS:
        raise ConfigError(f"'{text}' is not a right: use SendAs, SendOnBehalf or FullAccess")
    return RIGHTS[key]


def parse_duration(text: str) -> timedelta:
    """'8h', '30m', '2d', '1h30m' → a timedelta between one minute and 30 days."""
    match = _DURATION.match(text.strip().casefold())
    if not match or not any(match.groups()):
        raise ConfigError(f"'{text}' is not a duration: use e.g. 30m, 8h, 2d or 1h30m")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes)
    if not timedelta(minutes=1) <= duration <= MAX_DURATION:
        raise ConfigError("a time-bound grant lasts between 1 minute and 30 days")
    return duration


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
