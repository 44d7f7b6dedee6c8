from __future__ import annotations

import base64

import pytest

from plugin.redact import MASK, redact

JWT = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        (f"token {JWT} expired", JWT),
        ("AUTH PLAIN AGFkbWluAGh1bnRlcjI=", "AGFkbWluAGh1bnRlcjI="),
        ("auth xoauth2 dXNlcj1hAWF1dGg9QmVhcmVyIHh5egEB", "dXNlcj1hAWF1dGg9QmVhcmVyIHh5egEB"),
        ("client_id=abc&client_secret=s3cr3t-value&scope=x", "s3cr3t-value"),
        ('{"access_token": "opaque-token-value", "expires_in": 3599}', "opaque-token-value"),
        ("bot token xoxb-1234-5678-abcdefghijkl used", "xoxb-1234-5678-abcdefghijkl"),
    ],
)
def test_shapes_are_redacted(text: str, leaked: str) -> None:
    out = redact(text)
    assert leaked not in out
    assert MASK in out


def test_known_secrets_in_every_form() -> None:
    secret = "correct horse/battery+staple"
    encoded = base64.b64encode(secret.encode()).decode()
    text = f"pw={secret} b64={encoded} url=correct%20horse%2Fbattery%2Bstaple"
    out = redact(text, [secret])
    assert secret not in out and encoded.rstrip("=") not in out and "correct%20horse" not in out


def test_mechanism_lists_and_plain_text_survive() -> None:
    text = "250-AUTH LOGIN PLAIN XOAUTH2\nadmin@business.com signs in; AUTH LOGIN"
    assert redact(text) == text
