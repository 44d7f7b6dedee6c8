"""The door of the HTTP endpoint: nothing reaches slack-bolt (its listeners, middleware or error handler)
unless Slack signed it, it is recent, and it parses into the shape Slack sends.

slack_sdk's verifier parses the timestamp with ``int()``, which raises on ``abc`` (bolt then hands the
*unverified* body to the error handler) and accepts ``" 12"``, ``"1_2"`` and non-ASCII digits, and decodes the body as UTF-8 before
signing it (a ``UnicodeDecodeError`` on a body that is not); bolt parses
the body before verifying it (a 500 on ``payload=%7Bnot-json``) and logs every refused body. So the bot
checks here first, on the raw bytes, and answers every refusal with a 4xx and one log line without the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 5 * 60
"""Slack's replay window: a request signed longer ago than this (or in the future by as much) is refused."""
_TIMESTAMP = re.compile(rb"[0-9]{1,12}")
_SIGNATURE = re.compile(rb"v0=[0-9a-f]{64}")


class RefusedError(Exception):
    """A request the bot will not act on: ``status`` is the HTTP answer, ``kind`` names why (for counting)."""

    def __init__(self, status: int, kind: str) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind


def check_signature(secret: str, timestamp: bytes | None, signature: bytes | None, body: bytes, now: float) -> None:
    """Raise :class:`RefusedError` (401) unless ``signature`` is Slack's v0 HMAC of ``body`` at ``timestamp``,
    and ``timestamp`` is a plain decimal number of seconds within five minutes of ``now``."""
    if not timestamp or _TIMESTAMP.fullmatch(timestamp) is None:
        raise RefusedError(401, "timestamp_malformed")
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        raise RefusedError(401, "timestamp_stale")
    if not signature or _SIGNATURE.fullmatch(signature) is None:
        raise RefusedError(401, "signature_malformed")
    expected = b"v0=" + hmac.new(secret.encode(), b"v0:" + timestamp + b":" + body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, signature):
        raise RefusedError(401, "signature_mismatch")


def parse_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The request as bolt will see it (the same rules as ``slack_bolt.request.internals.parse_body``),
    or :class:`RefusedError` (400) when it is not UTF-8, not JSON where JSON is due, or not an object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RefusedError(400, "body_not_utf8") from None
    parsed: Any
    try:
        if content_type == "application/json" or text.startswith("{"):
            parsed = json.loads(text)
        else:
            parsed = dict(parse_qsl(text, keep_blank_values=True))
            if "payload" in text:  # bolt's rule, quirk included: a form mentioning "payload" is that field or {}
                parsed = json.loads(parsed["payload"]) if "payload" in parsed else {}
    except ValueError:
        raise RefusedError(400, "body_not_json") from None
    if not isinstance(parsed, dict):
        raise RefusedError(400, "body_not_object")
    return parsed


def _text(body: Mapping[str, Any], *path: str) -> bool:
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return False
        node = node.get(key)
    return isinstance(node, str) and bool(node)


def check_shape(body: Mapping[str, Any]) -> None:
    """Refuse (400) a slash command or interaction that lacks what the listeners read unconditionally."""
    # Only what our listeners need: `team` may be null in Enterprise Grid org-wide payloads.
    if "command" in body:
        needed: tuple[tuple[str, ...], ...] = (("command",), ("user_id",), ("channel_id",))
    elif body.get("type") == "block_actions":
        needed = (("user", "id"),)
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(_text(a, "action_id") for a in actions):
            raise RefusedError(400, "fields_missing")
    elif body.get("type") in ("view_submission", "view_closed", "shortcut", "message_action"):
        needed = (("user", "id"),)
    else:
        return  # events and anything else: bolt answers what it has no listener for
    if not all(_text(body, *path) for path in needed):
        raise RefusedError(400, "fields_missing")


def response_urls(body: Mapping[str, Any]) -> list[Any]:
    """Every response_url a request carries (slash commands and clicks: one; view submissions: a list)."""
    found = [body["response_url"]] if "response_url" in body else []
    listed = body.get("response_urls")
    if isinstance(listed, list):
        found += [item.get("response_url") for item in listed if isinstance(item, Mapping)]
    return found


@dataclass(frozen=True)
class SlackOrigins:
    """Where the bot may follow a response_url: https on Slack's hosts, or the configured Slack API's origin."""

    hosts: frozenset[str]
    api_origin: tuple[str, str]

    @classmethod
    def from_settings(cls, api_url: str, hosts: Iterable[str]) -> SlackOrigins:
        api = urlsplit(api_url)
        return cls(frozenset(h.casefold() for h in hosts), (api.scheme, api.netloc.casefold()))

    def allows(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.username or parts.password:
            return False
        if (parts.scheme, parts.netloc.casefold()) == self.api_origin:
            return True
        host = (parts.hostname or "").casefold()
        return parts.scheme == "https" and port in (None, 443) and host in self.hosts


def check_response_urls(body: Mapping[str, Any], origins: SlackOrigins) -> None:
    if not all(origins.allows(url) for url in response_urls(body)):
        raise RefusedError(400, "response_url_foreign")


@dataclass
class RequestGuard:
    """Admits a raw HTTP request to bolt, or refuses it; counts refusals by kind (per process)."""

    signing_secret: str
    origins: SlackOrigins
    refused: Counter[str] = field(default_factory=Counter)

    def admit(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Return if bolt may see this request; raise :class:`RefusedError` (logged, counted) if not."""
        try:
            timestamp = headers.get("X-Slack-Request-Timestamp")
            signature = headers.get("X-Slack-Signature")
            check_signature(
                self.signing_secret,
                None if timestamp is None else timestamp.encode("utf-8", "replace"),
                None if signature is None else signature.encode("utf-8", "replace"),
                body,
                now,
            )
            content_type = (headers.get("Content-Type") or "").split(";")[0].strip() or None
            parsed = parse_body(body, content_type)
            check_shape(parsed)
            check_response_urls(parsed, self.origins)
        except RefusedError as refusal:
            self.refused[refusal.kind] += 1
            # One line, never the body or the headers: a forged request's content is not worth storing.
            log.warning("refused a request to the Slack endpoint: %s (HTTP %d)", refusal.kind, refusal.status)
            raise
