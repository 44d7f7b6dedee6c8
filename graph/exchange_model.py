"""The Exchange admin API's data: commands, results, batch outcomes, statistics, and the request-building helpers
shared by :mod:`graph.exchange` (re-exported there)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from graph.exchange_errors import CONCURRENCY_TEXT
from graph.http import MAX_RETRY_AFTER_S
from plugin.errors import ConfigError, EmailDoctorError

Row = dict[str, Any]
HASHTABLE = "#Exchange.GenericHashTable"
SYSTEM_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
RETRY_STATUSES = frozenset({408, 429, 503, 504})
MAX_PAGE_SIZE = 1000
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9.-]+$")


def hashtable(*, add: Sequence[str] | str | None = None, remove: Sequence[str] | str | None = None) -> dict[str, Any]:
    """A PowerShell ``@{Add=…; Remove=…}`` parameter value (changes a multi-valued property without overwriting)."""
    table: dict[str, Any] = {"@odata.type": HASHTABLE}
    for key, value in (("add", add), ("remove", remove)):
        if value is not None:
            table[key] = [value] if isinstance(value, str) else list(value)
    return table


@dataclass(frozen=True)
class Command:
    """One cmdlet call. ``anchor``: the mailbox the call acts on (``X-AnchorMailbox: UPN:<anchor>``); None for
    organisation-wide calls. ``select``: output properties to keep (``?$select=``)."""

    cmdlet: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    anchor: str | None = None
    select: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ExchangeResult:
    """A cmdlet's output rows (all pages from :meth:`ExchangeAdmin.invoke`, one page from :meth:`pages`)."""

    cmdlet: str
    rows: tuple[Row, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchOutcome:
    """One ``$batch`` item: its result, or the error Exchange answered for it (already translated)."""

    command: Command
    result: ExchangeResult | None = None
    error: EmailDoctorError | None = None

    def unwrap(self) -> ExchangeResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass
class ExchangeStats:
    """What the client sent: HTTP requests (each ``$batch`` counts once), batch items, retries after throttling."""

    requests: int = 0
    batch_requests: int = 0
    batch_items: int = 0
    retries: int = 0
    throttled: int = 0


def make_command(
    cmdlet: str, parameters: Mapping[str, Any] | None, anchor: str | None, select: Sequence[str] | None
) -> Command:
    command = Command(cmdlet, dict(parameters or {}), anchor, tuple(select) if select else None)
    check_command(command)
    return command


def check_command(command: Command) -> None:
    if not NAME_PATTERN.match(command.cmdlet):
        raise ConfigError(f"not a cmdlet name: {command.cmdlet!r}")
    for name in command.select or ():
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"not a property name: {name!r}")
    if command.anchor is not None and any(c in command.anchor for c in "\r\n"):
        raise ConfigError("an anchor mailbox must be one line")


def decorate(value: Any) -> Any:
    """Hashtable parameters carry ``@odata.type: #Exchange.GenericHashTable`` (as the module and ExoHelper do)."""
    if isinstance(value, Mapping):
        table = {str(k): decorate(v) for k, v in value.items()}
        table.setdefault("@odata.type", HASHTABLE)
        return table
    if isinstance(value, list | tuple):
        return [decorate(v) for v in value]
    return value


def page_result(command: Command, payload: Mapping[str, Any]) -> ExchangeResult:
    values = payload.get("value") or []
    rows = tuple({k: v for k, v in row.items() if "@" not in k} for row in values if isinstance(row, dict))
    warnings = payload.get("@adminapi.warnings") or []
    return ExchangeResult(command.cmdlet, rows, tuple(str(w) for w in warnings if w))


def retryable(response: httpx.Response) -> bool:
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code >= 400 and response.content[:200].decode("utf-8", "replace").startswith(
        CONCURRENCY_TEXT
    )


def item_retry_after(item: Mapping[str, Any] | None, attempt: int) -> float:
    headers = {str(k).lower(): str(v) for k, v in ((item or {}).get("headers") or {}).items()}
    try:
        seconds = float(headers["retry-after"])
    except (KeyError, ValueError):
        return backoff(attempt)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff(attempt: int) -> float:
    return float(min(0.5 * 2**attempt, 30.0))


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first of our errors in a task group's failure (else the first error at all)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        error = stack.pop(0)
        if isinstance(error, BaseExceptionGroup):
            stack[0:0] = list(error.exceptions)
        else:
            leaves.append(error)
    return next((e for e in leaves if isinstance(e, EmailDoctorError)), leaves[0])
