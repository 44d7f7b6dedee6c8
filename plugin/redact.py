"""The one redaction function. Everything a person or a file can see passes through :func:`redact`.

It removes what it can recognise by shape (bearer tokens, JWTs, Slack tokens, AUTH arguments,
``password=`` / ``client_secret=`` fields) and every secret value the caller knows, in plain,
base64 and URL-encoded form, and (through :func:`printable`) every control character a server sent:
Exchange answers a missing role with 4,096 NUL bytes, and no terminal or Slack message should get them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "<redacted>"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # AUTH PLAIN/LOGIN/XOAUTH2 with an initial response: keep the mechanism, drop the payload.
    # (A mechanism list such as "250-AUTH LOGIN PLAIN XOAUTH2" is left alone.)
    (
        re.compile(
            r"(?i)\b(AUTH\s+(?:PLAIN|LOGIN|XOAUTH2|CRAM-MD5)\s+)(?!(?:PLAIN|LOGIN|XOAUTH2|CRAM-MD5)\b)[A-Za-z0-9+/=]{8,}"
        ),
        rf"\g<1>{MASK}",
    ),
    (re.compile(r"(?i)\b(Bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]{6,}"), MASK),
    (
        re.compile(
            r"(?i)\b(password|passwd|client_secret|client_assertion|access_token|refresh_token|assertion"
            r"|signing_secret|secret)=([^&\s\"']+)"
        ),
        rf"\g<1>={MASK}",
    ),
    (
        re.compile(
            r"(?i)(\"(?:password|client_secret|client_assertion|access_token|refresh_token|id_token|token"
            r"|signing_secret|bot_token|app_token)\"\s*:\s*\")[^\"]*(\")"
        ),
        rf"\g<1>{MASK}\g<2>",
    ),
)

_MIN_SECRET_LENGTH = 4
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]+")


def printable(text: str) -> str:
    """``text`` without control characters (NUL, ESC, CR, C1 …); line breaks and tabs stay."""
    return _CONTROL.sub("", text)


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        quote(secret, safe=""),
        quote_plus(secret),
    }


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with secrets replaced by ``<redacted>``."""
    return Redactor(secrets)(text)


class Redactor:
    """:func:`redact` with the secrets' forms worked out once, for code that redacts many texts (the log)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for secret in secrets if len(secret) >= _MIN_SECRET_LENGTH for form in _forms(secret)}
        self._forms = sorted((form for form in forms if len(form) >= _MIN_SECRET_LENGTH), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return printable(text)
