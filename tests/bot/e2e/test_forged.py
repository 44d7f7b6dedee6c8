"""Nothing unverified acts: forged, stale, malformed and misdirected requests to the real bot are refused with a
4xx before bolt (listeners, middleware, error handler) sees them, reach nothing (no request to the sandbox's
Slack at all: no Web API call, no response_url, however it is spelled), and leave no body in the logs.

`pytest tests/bot/e2e/test_forged.py -s` prints the refusals by kind (the figures in docs/reliability.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit

import pytest

from tests.bot.e2e.conftest import HANNAH, HELPDESK, IVAN, World

MARKER = "FORGED-7f3a"
"""In every forged body: it must appear in no log line and nowhere in Slack."""


def _command(world: World, response_url: str, **extra: str) -> bytes:
    fields = {
        "team_id": "T0BUSINESS",
        "channel_id": HELPDESK,
        "user_id": IVAN,
        "command": "/sendas",
        "text": f"grant SendAs admin@business.com alice@business.com {MARKER}",
        "response_url": response_url,
        "trigger_id": f"1.{MARKER}",
        **extra,
    }
    return urlencode(fields).encode()


def _timestamps(now: int) -> dict[str, str | None]:
    """Every malformed or out-of-window X-Slack-Request-Timestamp (None: the header is absent)."""
    return {
        "absent": None,
        "empty": "",
        "abc": "abc",
        "decimal 1.5": "1.5",
        "decimal now.0": f"{now}.0",
        "leading space": f" {now}",
        "trailing tab": f"{now}\t",
        "plus sign": f"+{now}",
        "underscore": f"{now // 1000}_{now % 1000:03d}",
        "hex": hex(now),
        "exponent": "1e9",
        "negative": "-5",
        "negative now": f"-{now}",
        "huge": "9" * 40,
        "4301 digits": "9" * 4301,
        "zero": "0",
        "stale 6 min": str(now - 360),
        "future 6 min": str(now + 360),
        "fullwidth digits": "".join(chr(0xFF10 + int(d)) for d in str(now)),
        "two values": f"{now},{now}",
    }


def _bodies(world: World, forged_url: str) -> dict[str, tuple[bytes, str]]:
    """Malformed bodies (and their content type), each one Slack never sends."""
    form = "application/x-www-form-urlencoded"
    return {
        "payload not JSON": (b"payload=%7Bnot-json" + MARKER.encode(), form),
        "payload a list": (b"payload=%5B1%2C2%5D", form),
        "payload a string": (b"payload=%22" + MARKER.encode() + b"%22", form),
        "payload empty": (b"payload=", form),
        "invalid UTF-8": (b"payload=\xff\xfe" + MARKER.encode(), form),
        "invalid UTF-8 in a form": (b"command=%2Femailtest&text=\xc3\x28" + MARKER.encode(), form),
        "JSON truncated": (b'{"type": "block_actions", "user": ' + MARKER.encode(), "application/json"),
        "JSON a number": (b"12", "application/json"),
        "command without user": (
            urlencode(
                {"command": "/emailtest", "text": MARKER, "channel_id": HELPDESK, "team_id": "T0BUSINESS"}
            ).encode(),
            form,
        ),
        "command with empty user": (_command(world, forged_url, user_id=""), form),
        "click without actions": (
            b"payload=" + json.dumps({"type": "block_actions", "user": {"id": IVAN}, "team": {"id": "T0"}}).encode(),
            form,
        ),
        "click with user a string": (
            b"payload="
            + json.dumps(
                {"type": "block_actions", "user": IVAN, "team": {"id": "T0"}, "actions": [{"action_id": "approve"}]}
            ).encode(),
            form,
        ),
        "click with an action without id": (
            b"payload="
            + json.dumps(
                {"type": "block_actions", "user": {"id": IVAN}, "team": {"id": "T0"}, "actions": [{"value": "1"}]}
            ).encode(),
            form,
        ),
        "response_url elsewhere": (_command(world, f"http://localhost:{_port(world)}/response/{MARKER}"), form),
        "response_url https elsewhere": (_command(world, f"https://evil.example/{MARKER}"), form),
        "response_url with credentials": (
            _command(world, f"http://user:pw@127.0.0.1:{_port(world)}/response/{MARKER}"),
            form,
        ),
        "response_urls of a view elsewhere": (
            b"payload="
            + json.dumps(
                {
                    "type": "view_submission",
                    "user": {"id": IVAN},
                    "team": {"id": "T0"},
                    "response_urls": [{"response_url": f"http://localhost:{_port(world)}/response/{MARKER}"}],
                }
            ).encode(),
            form,
        ),
    }


def _port(world: World) -> int:
    return int(urlsplit(world.slack.slack_base_url).port or 0)


async def _send(world: World, body: bytes, content_type: str, timestamp: str | None, *, sign: bool) -> int:
    headers = {"Content-Type": content_type}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    signature = world.slack.sign(body, timestamp or "", None if sign else "not-the-signing-secret")
    headers["X-Slack-Signature"] = signature
    delivery = await world.slack.send_raw(body, headers)
    assert delivery.status is not None, delivery.error
    assert "Traceback" not in delivery.body
    return delivery.status


async def _nothing_happened(world: World) -> None:
    """A real command afterwards is answered; by then nothing but its own traffic reached Slack."""
    await world.command(IVAN, "/mailaudit", "schedule")
    await world.wait(lambda: any("No scheduled audit" in str(p.payload) for p in world.workspace.response_posts()))
    await world.settle()
    paths = [r.path for r in world.workspace.requests()]
    assert all(MARKER not in path for path in paths)
    assert [c.method for c in world.workspace.calls()] in (
        ["auth.test", "usergroups.users.list"],
        ["usergroups.users.list", "auth.test"],
    )
    assert len(world.workspace.response_posts()) == 1
    assert world.workspace.all_messages(include_deleted=True) == [] or all(
        MARKER not in m.all_text() for m in world.workspace.all_messages(include_deleted=True)
    )
    assert await world.ctx.store.audit_entries() == []


async def test_forged_and_malformed_requests_are_refused_before_bolt(
    world: World, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    caplog.set_level(logging.DEBUG)
    forged_url = f"{world.slack.slack_base_url}/response/{MARKER}"
    now = int(time.time())
    refused: Counter[str] = Counter()
    statuses: dict[str, int] = {}
    for name, timestamp in _timestamps(now).items():
        body = _command(world, forged_url)
        for signed in (True, False):  # signed with the real secret: only the timestamp is wrong
            status = statuses[f"timestamp {name} ({'signed' if signed else 'unsigned'})"] = await _send(
                world, body, "application/x-www-form-urlencoded", timestamp, sign=signed
            )
            refused[f"timestamp ({'signed' if signed else 'unsigned'})"] += status == 401
    for name, (body, content_type) in _bodies(world, forged_url).items():
        statuses[f"{name} (unsigned)"] = await _send(world, body, content_type, str(now), sign=False)
        statuses[f"{name} (signed)"] = await _send(world, body, content_type, str(now), sign=True)
        refused["malformed body (unsigned)"] += statuses[f"{name} (unsigned)"] == 401
        refused["malformed body (signed)"] += 400 <= statuses[f"{name} (signed)"] < 500
    statuses["wrong signature"] = await _send(world, _command(world, forged_url), "x", str(now), sign=False)
    refused["wrong signature"] += statuses["wrong signature"] == 401

    unsigned_or_stale = {k: v for k, v in statuses.items() if "unsigned" in k or "timestamp" in k}
    assert set(unsigned_or_stale.values()) == {401}, unsigned_or_stale
    signed = {k: v for k, v in statuses.items() if k.endswith("(signed)") and not k.startswith("timestamp")}
    assert all(400 <= v < 500 for v in signed.values()), signed
    await _nothing_happened(world)
    assert MARKER not in caplog.text and "Traceback" not in caplog.text
    assert "refused a request to the Slack endpoint: timestamp_malformed" in caplog.text
    if request.config.getoption("capture") == "no":  # `-s`: print the figures of docs/reliability.md
        print(f"\nforged requests refused, by kind ({sum(refused.values())} of {len(statuses)}):")
        for kind, count in sorted(refused.items()):
            print(f"  {kind}: {count}")


async def test_a_genuine_request_still_acts(world: World) -> None:
    delivery = await world.command(HANNAH, "/emailtest", "bob")
    assert delivery.status == 200
    parent = await world.top(HELPDESK, "Testing outgoing email for *bob*")
    await world.wait(lambda: "passed" in world.latest(parent).text)
