"""Skip tokens of the Exchange admin API's paging: bound to the request body and, as live, to the first page's
``X-AnchorMailbox`` (the backend that holds the listing), and valid for ``exchange_page_expiry_seconds``."""

from __future__ import annotations

import base64
import hashlib
import json

from sandbox.settings import Behaviour

PAGE_EXPIRED_TEXT = "Expired or Invalid pagination request. Default Expiry time is 00:30:00"


def _fingerprint(raw_body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(raw_body or b"null"), sort_keys=True).encode()
    except ValueError:
        canonical = raw_body
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_skiptoken(offset: int, raw_body: bytes, anchor: str, issued: float) -> str:
    text = f"{offset}:{_fingerprint(raw_body)}:{_fingerprint(anchor.casefold().encode())}:{int(issued)}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _token_fields(token: str) -> list[str]:
    return base64.urlsafe_b64decode(token + "==").decode(errors="replace").split(":")


def decode_skiptoken(token: str | None, raw_body: bytes) -> int:
    if not token:
        return 0
    fields = _token_fields(token)
    if len(fields) != 4 or fields[1] != _fingerprint(raw_body):
        raise ValueError("the body differs from the one that started the listing")
    return max(0, int(fields[0]))


def page_still_valid(token: str, anchor: str, now: float, behaviour: Behaviour) -> bool:
    _, _, anchor_print, issued = _token_fields(token)
    fresh = now - int(issued) <= behaviour.exchange_page_expiry_seconds
    return fresh and anchor_print == _fingerprint(anchor.casefold().encode())
