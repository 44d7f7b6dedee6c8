"""The Exchange Online admin API client: ``InvokeCommand`` and ``$batch`` (shared/reference/exchange-online.md §1a).

One cmdlet is one POST of ``{"CmdletInput":{"CmdletName","Parameters"}}`` to
``{base}/adminapi/beta/{tenant}/InvokeCommand``. Results come in pages: the client re-POSTs the same body to
``@odata.nextLink`` until there is none (:meth:`ExchangeAdmin.pages` holds one page at a time). Warnings
(``@adminapi.warnings``) are returned with the rows, because Exchange reports no-ops ("… no settings … have
been modified", "… the ACE isn't present") as warnings, not errors.

Throttling is honoured: 429, 503, 504, 408 and the plain-text "maximum number of concurrent requests per
tenant" answer are retried after ``Retry-After`` (or an exponential back-off), a bounded number of times; then
:class:`~plugin.errors.ServiceError` with code ``throttled`` (or ``server_unavailable``). A semaphore bounds the
requests in flight, below the service's per-tenant concurrency limit. Every request carries a timeout.

Rows are plain ``dict``s of the cmdlet's output with the OData type annotations (``X@odata.type``) dropped; they
stay inside :mod:`graph` (the permissions service and the audit turn them into our dataclasses).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from graph.exchange_errors import (
    ExchangeErrorInfo,
    ExchangeServiceError,
    is_page_expired,
    is_role_refusal,
    parse_error,
    translate,
)
from graph.exchange_model import (
    HASHTABLE,
    MAX_PAGE_SIZE,
    RETRY_STATUSES,
    SYSTEM_MAILBOX,
    TENANT_PATTERN,
    BatchOutcome,
    Command,
    ExchangeResult,
    ExchangeStats,
    Row,
    backoff,
    check_command,
    decorate,
    first_error,
    hashtable,
    item_retry_after,
    make_command,
    origin,
    page_result,
    retryable,
)
from graph.exchange_pacing import RequestBudget
from graph.http import retry_after_seconds
from plugin.diagnosis import Code
from plugin.errors import ConfigError, EmailDoctorError, ServiceError
from plugin.metrics import M365_RETRIES, M365_THROTTLED
from plugin.probe_request import TokenSource

__all__ = [
    "HASHTABLE",
    "MAX_PAGE_SIZE",
    "RETRY_STATUSES",
    "SYSTEM_MAILBOX",
    "BatchOutcome",
    "Command",
    "ExchangeAdmin",
    "ExchangeResult",
    "ExchangeStats",
    "Row",
    "first_error",
    "hashtable",
]


class ExchangeAdmin:
    """``InvokeCommand`` / ``$batch`` with paging, throttling, a timeout on every call and error translation.

    ``sleep`` and ``monotonic`` are injectable so tests can watch the waits. The constructor does no I/O.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_source: TokenSource,
        *,
        base_url: str,
        tenant_id: str,
        page_size: int = MAX_PAGE_SIZE,
        max_retries: int = 6,
        batch_size: int = 10,
        max_in_flight: int = 8,
        timeout: float = 60.0,
        api_version: str = "beta",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_token_rejected: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"the Exchange admin API URL must be https://…, not {base_url!r}")
        if not TENANT_PATTERN.match(tenant_id):
            raise ConfigError(f"the tenant must be a GUID or a domain, not {tenant_id!r}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if batch_size < 1 or max_in_flight < 1 or max_retries < 0 or timeout <= 0:
            raise ConfigError("batch_size and max_in_flight must be positive, max_retries >= 0, timeout > 0")
        self._http = http
        self._token = token_source
        self._root = f"{base_url.rstrip('/')}/adminapi/{api_version}/{quote(tenant_id)}"
        self._origin = origin(base_url)
        self.tenant_id = tenant_id
        self.page_size = page_size
        self.batch_size = batch_size
        self._max_retries = max_retries
        self._timeout = timeout
        self._gate = asyncio.Semaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        self._sleep = sleep
        self._monotonic = monotonic
        self._connection_id = str(uuid.uuid4())
        self._on_token_rejected = on_token_rejected
        """Called once per request when the service answers 401: drop the cached token, then retry with a new one."""
        self.stats = ExchangeStats()
        self.budget = RequestBudget(monotonic=monotonic, sleep=sleep)
        """The service's request budget, learned from its answers; requests wait for it (graph.exchange_pacing)."""

    # --- public API ----------------------------------------------------------------------------------------
    async def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        anchor: str | None = None,
        select: Sequence[str] | None = None,
    ) -> ExchangeResult:
        """Run one cmdlet and return every row (all pages) and every warning. For large outputs use :meth:`pages`."""
        rows: list[Row] = []
        warnings: list[str] = []
        async for page in self.pages(cmdlet, parameters, anchor=anchor, select=select):
            rows.extend(page.rows)
            warnings.extend(w for w in page.warnings if w not in warnings)
        return ExchangeResult(cmdlet, tuple(rows), tuple(warnings))

    async def pages(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        anchor: str | None = None,
        select: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[ExchangeResult]:
        """Yield the output one page at a time, re-POSTing the same body to ``@odata.nextLink``."""
        command = make_command(cmdlet, parameters, anchor, select)
        body = self._body(command)
        headers = self._headers(command, page_size or self.page_size)  # the same anchor on every page
        first = self._invoke_url(command.select)
        url: str | None = first
        yielded, skip, restarted = 0, 0, False
        while url is not None:
            try:
                payload = await self._post(url, body, headers, command)
            except ExchangeServiceError as exc:
                if restarted or url == first or not is_page_expired(exc):
                    raise
                # The skip token expired or routed elsewhere: list again from the start, once, and skip the rows
                # already handed out (listings come in a stable order).
                restarted, url, skip = True, first, yielded
                continue
            page = page_result(command, payload)
            if skip:
                dropped = min(skip, len(page.rows))
                skip -= dropped
                page = ExchangeResult(page.cmdlet, page.rows[dropped:], page.warnings)
            yielded += len(page.rows)
            if page.rows or not restarted:  # after a restart, pages wholly skipped are not handed out
                yield page
            url = self._next_link(payload)

    async def batch(self, commands: Sequence[Command]) -> list[BatchOutcome]:
        """Run ``commands`` through ``$batch`` (``batch_size`` per request, chunks in parallel under the client's
        in-flight limit). Items throttled inside a batch are retried after their ``Retry-After``; items with more
        pages are followed. Outcomes come back in the order of ``commands``."""
        for command in commands:
            check_command(command)
        chunks = [list(commands[i : i + self.batch_size]) for i in range(0, len(commands), self.batch_size)]
        if len(chunks) == 1:
            return await self._batch_chunk(chunks[0])
        try:
            async with asyncio.TaskGroup() as group:  # a failing request cancels its siblings: no orphan tasks
                tasks = [group.create_task(self._batch_chunk(chunk)) for chunk in chunks]
        except BaseExceptionGroup as failed:
            raise first_error(failed) from failed
        return [outcome for task in tasks for outcome in task.result()]

    async def token_ready(self) -> None:
        """Fetch the token now (from the cache once it is there), so what waits for it can start together."""
        await self._token()

    def anchor_header(self, mailbox: str | None) -> str:
        """``UPN:<mailbox>`` for a call on one mailbox; the organisation's system mailbox otherwise."""
        return f"UPN:{mailbox}" if mailbox else f"APP:{SYSTEM_MAILBOX}@{self.tenant_id}"

    # --- $batch --------------------------------------------------------------------------------------------
    async def _batch_chunk(self, chunk: list[Command]) -> list[BatchOutcome]:
        outcomes: dict[int, BatchOutcome] = {}
        pending = list(range(len(chunk)))
        attempt = 0
        while pending:
            requests = [self._batch_item(str(i), chunk[i]) for i in pending]
            payload = await self._post(
                f"{self._root}/$batch",
                json.dumps({"requests": requests}).encode(),
                self._batch_headers(),
                None,
                cost=len(requests),
            )
            self.stats.batch_items += len(pending)
            answered = {str(r.get("id")): r for r in payload.get("responses") or [] if isinstance(r, dict)}
            retry, wait = [], 0.0
            for index in pending:
                item = answered.get(str(index))
                command = chunk[index]
                status = int(item.get("status", 0)) if item else 0
                if item is None or (status in RETRY_STATUSES and attempt < self._max_retries):
                    retry.append(index)
                    wait = max(wait, item_retry_after(item, attempt))
                    continue
                outcomes[index] = await self._batch_outcome(command, status, item)
            pending = retry
            if pending:
                if attempt >= self._max_retries:
                    info = ExchangeErrorInfo(status=429, cmdlet=chunk[pending[0]].cmdlet, text="no answer in $batch")
                    for index in pending:
                        outcomes[index] = BatchOutcome(chunk[index], error=translate(info))
                    break
                self.stats.retries += 1
                self.stats.throttled += len(pending)
                M365_RETRIES.labels(service="exchange").inc(len(pending))
                M365_THROTTLED.labels(service="exchange").inc(len(pending))  # items: the $batch itself was a 200
                attempt += 1
                await self._sleep(wait)
        return [outcomes[i] for i in range(len(chunk))]

    async def _batch_outcome(self, command: Command, status: int, item: Mapping[str, Any]) -> BatchOutcome:
        body = item.get("body")
        if not 200 <= status < 300:
            headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
            info = parse_error(status, b"", headers, command.cmdlet, parsed=body)
            return BatchOutcome(command, error=translate(info, command.parameters))
        payload = body if isinstance(body, dict) else {}
        first = page_result(command, payload)
        url = self._next_link(payload)
        if url is None:
            return BatchOutcome(command, result=first)
        rows, warnings = list(first.rows), list(first.warnings)
        try:
            while url is not None:
                more = await self._batch_continuation(command, url)
                page = page_result(command, more)
                rows.extend(page.rows)
                warnings.extend(w for w in page.warnings if w not in warnings)
                url = self._next_link(more)
        except EmailDoctorError as exc:
            return BatchOutcome(command, error=exc)
        return BatchOutcome(command, result=ExchangeResult(command.cmdlet, tuple(rows), tuple(warnings)))

    async def _batch_continuation(self, command: Command, url: str) -> Mapping[str, Any]:
        """The next page of a ``$batch`` item, asked for as a ``$batch`` item again (as CIPP does), with the item's
        body and anchor, so it reaches the backend that holds the skip token."""
        batch = json.dumps({"requests": [self._batch_item("0", command, url)]}).encode()
        for attempt in range(self._max_retries + 1):
            payload = await self._post(f"{self._root}/$batch", batch, self._batch_headers(), None)
            item = next((r for r in payload.get("responses") or [] if isinstance(r, dict)), {})
            status = int(item.get("status", 0))
            if status not in RETRY_STATUSES or attempt == self._max_retries:
                break
            self.stats.retries += 1
            M365_RETRIES.labels(service="exchange").inc()
            if status == 429:
                M365_THROTTLED.labels(service="exchange").inc()
            await self._sleep(item_retry_after(item, attempt))
        body = item.get("body")
        if not 200 <= status < 300 or not isinstance(body, dict):
            headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
            raise translate(parse_error(status, b"", headers, command.cmdlet, parsed=body), command.parameters)
        return body

    def _batch_item(self, item_id: str, command: Command, url: str | None = None) -> dict[str, Any]:
        headers = self._headers(command, self.page_size)
        headers.pop("Authorization", None)
        return {
            "id": item_id,
            "method": "POST",
            "url": url or self._invoke_url(command.select),
            "body": self._body_object(command),
            "headers": headers,
        }

    def _batch_headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "X-AnchorMailbox": self.anchor_header(None),
            "Prefer": "odata.continue-on-error",
            "connection-id": self._connection_id,
        }

    # --- one HTTP request, with retries --------------------------------------------------------------------
    async def _post(
        self, url: str, body: bytes, headers: Mapping[str, str], command: Command | None, *, cost: int = 1
    ) -> Any:
        """``cost``: tokens of the service's budget this request spends (one per ``$batch`` item)."""
        cmdlet = command.cmdlet if command else "$batch"
        attempt = 0
        renewed = False
        while True:
            token = await self._token()
            request_headers = {**headers, "Authorization": f"Bearer {token}", "client-request-id": str(uuid.uuid4())}
            await self.budget.take(cost)
            response: httpx.Response | None = None
            try:
                response = await self._send(url, body, request_headers, cmdlet, command is None, attempt)
            finally:
                self.budget.answered(cost, response.headers if response is not None else {})
            if (
                response is not None
                and response.status_code == 401
                and self._on_token_rejected
                and not renewed
                and not is_role_refusal(response.content)  # a new token cannot give the app a role
            ):
                renewed = True
                await self._on_token_rejected()
                continue
            if response is not None and not retryable(response):
                return self._payload(response, command)
            if attempt >= self._max_retries:
                assert response is not None
                return self._payload(response, command)
            delay = backoff(attempt) if response is None else retry_after_seconds(response, backoff(attempt))
            self.stats.retries += 1
            M365_RETRIES.labels(service="exchange").inc()  # the 429 itself is counted by graph.http_metrics
            if response is not None and response.status_code == 429:
                self.stats.throttled += 1
            attempt += 1
            await self._sleep(delay)

    async def _send(
        self, url: str, body: bytes, headers: Mapping[str, str], cmdlet: str, batch: bool, attempt: int
    ) -> httpx.Response | None:
        """One POST under the in-flight limit; None for a connection refused that is worth retrying."""
        async with self._gate:
            self.stats.requests += 1
            if batch:
                self.stats.batch_requests += 1
            try:
                return await self._http.post(url, content=body, headers=headers, timeout=self._timeout)
            except httpx.TimeoutException as exc:
                raise ServiceError(
                    f"Exchange Online did not answer {cmdlet} within {self._timeout:g} s", code=Code.TIMEOUT
                ) from exc
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError) and attempt < self._max_retries:
                    return None
                raise ServiceError(
                    f"Exchange Online could not be reached for {cmdlet}: {exc!s}", code=Code.SERVER_UNAVAILABLE
                ) from exc

    def _payload(self, response: httpx.Response, command: Command | None) -> Any:
        cmdlet = command.cmdlet if command else "$batch"
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise ServiceError(
                    f"Exchange Online answered {cmdlet} with something that is not JSON", status=response.status_code
                ) from exc
        info = parse_error(response.status_code, response.content, response.headers, cmdlet)
        raise translate(info, command.parameters if command else None)

    # --- request building ----------------------------------------------------------------------------------
    def _invoke_url(self, select: tuple[str, ...] | None) -> str:
        url = f"{self._root}/InvokeCommand"
        return f"{url}?$select={','.join(select)}" if select else url

    def _headers(self, command: Command, page_size: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "X-AnchorMailbox": self.anchor_header(command.anchor),
            "X-CmdletName": command.cmdlet,
            "X-ResponseFormat": "json",
            "X-ClientApplication": "emaildoctor",
            "Prefer": f"odata.maxpagesize={min(max(page_size, 1), MAX_PAGE_SIZE)}",
            "connection-id": self._connection_id,
        }

    @staticmethod
    def _body_object(command: Command) -> dict[str, Any]:
        parameters = {str(k): decorate(v) for k, v in command.parameters.items()}
        return {"CmdletInput": {"CmdletName": command.cmdlet, "Parameters": parameters}}

    @classmethod
    def _body(cls, command: Command) -> bytes:
        return json.dumps(cls._body_object(command)).encode()

    def _next_link(self, payload: Mapping[str, Any]) -> str | None:
        link = payload.get("@odata.nextLink")
        if not link:
            return None
        if not isinstance(link, str) or origin(link) != self._origin:
            # Never send the token anywhere but the admin API we were configured with.
            raise ServiceError(f"Exchange Online sent a next-page link to another host: {str(link)[:200]}")
        return link
