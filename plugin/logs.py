"""Structured logs: one line per Slack request, diagnosis, change and scheduled run.

``configure_logging(format, level, secrets)`` installs one handler on the root logger that writes either
key=value text (the default, easy to read and to grep) or one JSON object per line (``--log-format json``,
for a log pipeline). Every line passes through :func:`plugin.redact.redact` with the settings' secrets, so
a token that reaches a log message by mistake is masked there too.

Code emits an event with :func:`event`::

    event(log, "diagnosis", user="alice@business.com", code="send_as_denied", duration_ms=812)

and a request or change id set with :func:`bind` (a context variable, so tasks started while it is set
carry it) is added to every line logged in that context.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import json
import logging
import logging.handlers
import queue
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any

from plugin.redact import Redactor


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LEVELS = ("debug", "info", "warning", "error")

QUIET_LOGGERS = {
    # What they say at INFO is per-request noise (or a request body); warnings and errors still show.
    "slack_bolt": logging.WARNING,
    "slack_sdk": logging.WARNING,
    "msal": logging.WARNING,
    "azure": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "asyncio": logging.WARNING,
    "alembic": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "kiota_http": logging.WARNING,
    "mail.log": logging.WARNING,
}

_FIELDS_ATTR = "emaildoctor_fields"
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("emaildoctor_log_context", default={})  # noqa: B039  # never mutated: bind() sets a new dict


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (a request id, a change id) to every line logged in this context."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_forever(**fields: Any) -> None:
    """Like :func:`bind`, for the rest of the current task (a background task's whole life)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def event(logger: logging.Logger, name: str, /, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event: ``event=<name>`` plus ``fields`` (None values are left out)."""
    if not logger.isEnabledFor(level):
        return
    clean = {key: value for key, value in fields.items() if value is not None}
    logger.log(level, name, extra={_FIELDS_ATTR: {"event": name, **clean}})


_CONTEXT_ATTR = "emaildoctor_context"


class _CaptureContext(logging.Filter):
    """Copies the bound fields onto the record when it is logged: the record may be formatted in another thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        setattr(record, _CONTEXT_ATTR, _context.get())
        return True


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, _FIELDS_ATTR, None) or {})
    bound = getattr(record, _CONTEXT_ATTR, None)
    return {**(_context.get() if bound is None else bound), **fields}


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        base: dict[str, Any] = {"time": _time(record), "level": record.levelname.lower(), "logger": record.name}
        extra = _record_fields(record)
        if "event" not in extra:
            base["msg"] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            base["error"] = f"{type(error).__name__}: {error}"
            base["traceback"] = record.exc_text or logging.Formatter().formatException(record.exc_info)
        return {**base, **{key: _plain(value) for key, value in extra.items()}}

    def clean(self, text: str) -> str:
        return self.redact(text).replace("\n", " | ")


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: self.clean(value) if isinstance(value, str) else value for key, value in self.fields(record).items()
        }
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(_RedactingFormatter):
    """``time level event key=value …``; values with spaces or quotes are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        head = [fields.pop("time"), f"{fields.pop('level'):<7}"]
        fields.pop("logger")
        if "msg" in fields:
            head.append(str(fields.pop("msg")).replace("\n", " | "))
        parts = [f"{key}={_quote(str(value).replace(chr(10), ' | '))}" for key, value in fields.items()]
        return self.redact(" ".join(head + parts))  # once per line: the secrets' forms are worked out once


def _quote(value: str) -> str:
    if value and not any(ch in value for ch in ' "=\t'):
        return value
    return json.dumps(value, ensure_ascii=False)


def configure_logging(
    log_format: LogFormat | str = LogFormat.TEXT,
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    *,
    background: bool = False,
) -> logging.Handler:
    """Send every logger's lines to ``stream`` (stderr) in ``log_format`` from ``level`` up; returns the handler.
    With ``background`` (the bot) lines are formatted and written by a thread, off the event loop."""
    chosen = LogFormat(log_format)
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    output = logging.StreamHandler(stream or sys.stderr)
    output.setFormatter(JsonFormatter(secrets) if chosen is LogFormat.JSON else TextFormatter(secrets))
    handler: logging.Handler = output
    if background:  # a server: formatting, redaction and writing leave the event loop for a thread of their own
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        handler = _QueueHandler(lines)
        listener = logging.handlers.QueueListener(lines, output)
        listener.start()
        atexit.register(listener.stop)  # writes what is queued on a normal exit
    handler.addFilter(_CaptureContext())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "emaildoctor", False)]:
        root.removeHandler(old)
    handler.emaildoctor = True  # type: ignore[attr-defined]  # marks our own handler, replaced on reconfigure
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level.lower() != "debug":
        for name, quiet in QUIET_LOGGERS.items():
            logging.getLogger(name).setLevel(quiet)
    return handler


class _QueueHandler(logging.handlers.QueueHandler):
    """Hands the record over as it is: our formatter (in the listener's thread) needs its fields, and the record
    is not shared with anything else."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return record
