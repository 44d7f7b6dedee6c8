"""SMTP replies as data: the reply code, the RFC 3463 enhanced status code and the text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_LINE = re.compile(r"^\s*(\d{3})(?:[ -]|$)(.*)$")


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str | None
    text: str

    def __str__(self) -> str:
        return " ".join(part for part in (str(self.code), self.enhanced, self.text) if part)

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "enhanced": self.enhanced, "text": self.text}


def parse_reply(code: int, message: str) -> Reply:
    """Build a :class:`Reply` from a reply code and its (possibly multi-line) text as aiosmtplib gives it."""
    lines = [line.strip() for line in message.replace("\r", "").split("\n")]
    first = lines[0] if lines else ""
    match = _ENHANCED.match(first)
    enhanced = match.group(1) if match else None
    rest: list[str] = []
    for index, line in enumerate(lines):
        stripped = line[match.end() :].strip() if index == 0 and match else line
        if index > 0 and enhanced and stripped.startswith(enhanced):
            stripped = stripped[len(enhanced) :].strip()
        if stripped:
            rest.append(stripped)
    return Reply(code=code, enhanced=enhanced, text=" ".join(rest))


def parse_reply_line(line: str) -> Reply | None:
    """Parse a raw reply such as ``550 5.7.60 SMTP; Client does not …``; None if it is not one."""
    first, _, more = line.partition("\n")
    match = _LINE.match(first)
    if not match:
        return None
    body = match.group(2)
    if more:
        continuation = [_continuation(extra) for extra in more.split("\n")]
        body = "\n".join([body, *continuation])
    return parse_reply(int(match.group(1)), body)


def _continuation(line: str) -> str:
    match = _LINE.match(line)
    return match.group(2) if match else line
