"""A swaks-style transcript of an SMTP session, with every secret kept out of it.

Lines start with ``===`` (what the probe did), `` -> `` (sent) or ``<-  `` (received), like swaks.
AUTH payloads are never written: the probe records a description of them instead, and every line
still passes through :func:`plugin.redact.redact` with the session's known secrets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from plugin.redact import redact


class Transcript:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s]
        self._lines: list[str] = []
        self._start = time.monotonic()

    def add_secret(self, secret: str) -> None:
        if secret:
            self._secrets.append(secret)

    def note(self, text: str) -> None:
        self._add("===", text)

    def sent(self, text: str) -> None:
        self._add(" ->", text)

    def received(self, code: int, message: str) -> None:
        lines = message.split("\n") if message else [""]
        for index, line in enumerate(lines):
            separator = " " if index == len(lines) - 1 else "-"
            self._add("<- ", f"{code}{separator}{line}".rstrip())

    def _add(self, prefix: str, text: str) -> None:
        self._lines.append(f"{prefix} {redact(text, self._secrets)}")

    @property
    def lines(self) -> list[str]:
        return list(self._lines)
