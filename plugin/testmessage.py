"""The test message: Date, Message-ID, From, To, optional Sender, and a Subject with a unique test id.

``smtp-test --header 'Name: value'`` adds a header or replaces the one of that name (as swaks does), and
``--body`` replaces the text; the Message-ID and the test-id header stay, so the message can still be found.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from plugin.addresses import has_control_characters

_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322: printable ASCII except the colon
_DOTS = re.compile(rb"(?m)^\.")
FIXED_HEADERS = ("message-id", "x-emaildoctor-test-id")
"""Headers --header may not replace: they identify the test message."""


def new_test_id() -> str:
    return "ED-" + secrets.token_hex(5).upper()


def test_subject(test_id: str) -> str:
    return f"emaildoctor test {test_id}"


def parse_header(text: str) -> tuple[str, str]:
    """``'X-Test: hello'`` -> ``("X-Test", "hello")``; ValueError (with the words to show) when it cannot be one."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name:
        raise ValueError(f"{text[:80]!r} is not a header; write it as 'Name: value', e.g. 'X-Test: hello'")
    if not _FIELD_NAME.match(name):
        raise ValueError(f"{name[:80]!r} is not a header name (letters, digits and dashes, no spaces)")
    if has_control_characters(value):
        raise ValueError(f"the value of {name} contains a line break or control character")
    if name.casefold() in FIXED_HEADERS:
        raise ValueError(f"{name} identifies the test message and cannot be replaced")
    return name, value


def build_test_message(
    *,
    from_addr: str,
    to_addr: str,
    sender: str | None,
    test_id: str,
    now: datetime | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = f"<{test_id}.{secrets.token_hex(6)}@{from_addr.rsplit('@', 1)[-1]}>"
    message["From"] = from_addr
    if sender:
        message["Sender"] = sender
    message["To"] = to_addr
    message["Subject"] = test_subject(test_id)
    message["X-Emaildoctor-Test-Id"] = test_id
    replaced: set[str] = set()
    for name, value in headers:
        if name.casefold() not in replaced:  # the first --header of a name replaces it; later ones add to it
            del message[name]
            replaced.add(name.casefold())
        message[name] = value
    if body is None:
        body = (
            "This is a test message from emaildoctor.\n\n"
            f"Test id: {test_id}\n"
            f"From: {from_addr}" + (f" (sent by {sender} on behalf)" if sender else "") + "\n\n"
            "If it arrived, this account can send mail as configured. You can delete it.\n"
        )
    message.set_content(body)
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, the final ``.`` line."""
    payload = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return _DOTS.sub(b"..", payload) + b".\r\n"
