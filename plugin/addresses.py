"""Email address checks shared by the directory, the probe and the CLI.

Addresses end up in SMTP commands and message headers, so CR, LF and other control characters are
refused outright (header and command injection), and the syntax is the plain ``local@domain`` that
mail servers accept in ``MAIL FROM:<…>``; whatever passes here, the SMTP library accepts too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from aiosmtplib.email import parse_address

# C0 and C1 controls and Unicode's line and paragraph separators: Python's own line splitting breaks at them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ADDRESS = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+|\"[^\"\\]+\")@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}|\[[0-9.]+\]|localhost)$"
)


HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^\[?[0-9A-Fa-f:.]+\]?$")
"""A host name or an IP address (literal)."""


def is_helo_name(name: str) -> bool:
    """A name EHLO can carry: a host name or an address literal, with no space, line break or control
    character anywhere (aiosmtplib refuses those with ValueError, after the connection is open)."""
    return not has_control_characters(name) and not any(c.isspace() for c in name) and bool(HOST.match(name))


def has_control_characters(value: str) -> bool:
    return bool(_CONTROL.search(value))


def validate_address(value: str) -> str:
    """Return the address unchanged, or raise ValueError saying what is wrong with it."""
    if has_control_characters(value):
        raise ValueError("contains a line break or control character; an address must be one plain line")
    if not _ADDRESS.match(value):
        raise ValueError(f"'{value}' is not an email address of the form name@example.com")
    local = value.rsplit("@", 1)[0]
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError(f"'{value}' has a misplaced dot before the @")
    try:
        parse_address(value)  # what aiosmtplib will put on the MAIL FROM / RCPT TO line
    except ValueError:
        raise ValueError(f"'{value}' has characters an SMTP command cannot carry (spaces or line breaks)") from None
    return value


@lru_cache(maxsize=4096)  # an audit asks it of every trustee label, and the same few labels recur
def is_address(value: str) -> bool:
    try:
        validate_address(value)
    except ValueError:
        return False
    return True


def same_address(a: str | None, b: str | None) -> bool:
    """Exchange compares addresses case-insensitively."""
    return a is not None and b is not None and a.casefold() == b.casefold()
