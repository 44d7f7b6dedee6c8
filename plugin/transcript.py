"""A swaks-style transcript of an SMTP session, with every secret kept out of it.

Lines start with ``===`` (what the probe did), `` -> `` (sent) or ``<-  `` (received), like swaks.
AUTH payloads are never written: the probe records a description of them instead, and every line
still passes through :func:`plugin.redact.redact` with the session's known secrets.

A listener (the live progress of ``smtp-test -v``) gets each line as it is written, with the milliseconds
since the session began: ``[   12.3 ms] <-  220 mx.example.com ESMTP``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from plugin.redact import redact


class Transcript:
    def __init__(self, secrets: Iterable[str] = (), listener: Callable[[str], None] | None = None) -> None:
        self._secrets = [s for s in secrets if s]
        self._lines: list[str] = []
        self._start = time.monotonic()
        self._listener = listener

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
        line = f"{prefix} {redact(text, self._secrets)}"
        self._lines.append(line)
        if self._listener is not None:
            self._listener(f"[{(time.monotonic() - self._start) * 1000:9.1f} ms] {line}")

    @property
    def lines(self) -> list[str]:
        return list(self._lines)
