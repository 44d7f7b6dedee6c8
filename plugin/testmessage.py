"""The test message: Date, Message-ID, From, To, optional Sender, and a Subject with a unique test id."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime


def new_test_id() -> str:
    return "ED-" + secrets.token_hex(5).upper()


def test_subject(test_id: str) -> str:
    return f"emaildoctor test {test_id}"


def build_test_message(
    *,
    from_addr: str,
    to_addr: str,
    sender: str | None,
    test_id: str,
    now: datetime | None = None,
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
    message.set_content(
        "This is a test message from emaildoctor.\n\n"
        f"Test id: {test_id}\n"
        f"From: {from_addr}" + (f" (sent by {sender} on behalf)" if sender else "") + "\n\n"
        "If it arrived, this account can send mail as configured. You can delete it.\n"
    )
    return message
