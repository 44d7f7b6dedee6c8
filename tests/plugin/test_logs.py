"""Structured log lines: JSON that parses, key=value text, ids bound to a context, secrets masked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from plugin.logs import LogFormat, bind, bind_forever, configure_logging, event

SECRET = "s3cr3t-client-value"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    yield stream, logging.getLogger("tests.logs")
    for handler in [h for h in root.handlers if getattr(h, "emaildoctor", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_parse_and_carry_the_event_fields(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    configure_logging(LogFormat.JSON, "info", [SECRET], stream=stream)
    with bind(request_id="abc123"):
        event(log, "diagnosis", user="alice@business.com", code="send_as_denied", duration_ms=812.5, skipped=None)
    event(log, "change", change_id=7, state="verified")
    first, second = (json.loads(line) for line in _lines(stream))
    assert first["event"] == "diagnosis" and first["level"] == "info" and first["request_id"] == "abc123"
    assert first["code"] == "send_as_denied" and first["duration_ms"] == 812.5 and "skipped" not in first
    assert first["time"].endswith("Z")
    assert second == {**second, "event": "change", "change_id": 7, "state": "verified"}
    assert "request_id" not in second  # the id belonged to the first context only


def test_text_lines_are_key_value_with_quoting(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    configure_logging("text", "info", stream=stream)
    event(log, "scheduled_run", job="audit", outcome="failed", error="Exchange said: no role")
    (line,) = _lines(stream)
    assert " info    " in line
    assert 'event=scheduled_run job=audit outcome=failed error="Exchange said: no role"' in line


def test_secrets_are_masked_in_messages_fields_and_errors(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    configure_logging(LogFormat.JSON, "debug", [SECRET], stream=stream)
    log.warning("token refresh with client_secret=%s failed", SECRET)
    event(log, "slack_request", note=f"Bearer {SECRET}")
    error = RuntimeError(f"bad {SECRET}")
    log.error("boom", exc_info=(RuntimeError, error, None))
    text = stream.getvalue()
    assert SECRET not in text
    assert text.count("<redacted>") >= 3
    assert all(json.loads(line) for line in _lines(stream))


def test_level_filters_and_sdk_loggers_are_quieted(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    configure_logging(LogFormat.TEXT, "warning", stream=stream)
    log.info("hidden")
    log.warning("shown")
    configure_logging(LogFormat.TEXT, "info", stream=stream)
    logging.getLogger("slack_bolt.App").info("per-request noise")
    logging.getLogger("slack_bolt.App").warning("a real problem")
    text = stream.getvalue()
    assert "hidden" not in text and "shown" in text
    assert "per-request noise" not in text and "a real problem" in text


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level must be one of debug, info, warning, error"):
        configure_logging(LogFormat.TEXT, "loud")


def test_an_id_bound_in_a_task_stays_with_that_task(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    configure_logging(LogFormat.JSON, "info", stream=stream)

    async def handle(request_id: str) -> None:
        bind_forever(request_id=request_id)
        await asyncio.sleep(0)
        event(log, "slack_request", name=request_id)

    async def main() -> None:
        await asyncio.gather(handle("r1"), handle("r2"))
        event(log, "after")

    asyncio.run(main())
    records = [json.loads(line) for line in _lines(stream)]
    assert {(r.get("name"), r.get("request_id")) for r in records[:2]} == {("r1", "r1"), ("r2", "r2")}
    assert "request_id" not in records[2]
