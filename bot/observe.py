"""What the bot tells its operator: one log line per Slack request, diagnosis, change and scheduled run
(:mod:`plugin.logs`), and the Prometheus metrics behind them (:mod:`plugin.metrics`), served at ``/metrics``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from plugin import metrics
from plugin.logs import bind_forever, event

if TYPE_CHECKING:
    from bot.store import Store
    from bot.store.records import ChangeRecord
    from plugin.doctor import Report

log = logging.getLogger("bot.requests")
diagnoses_log = logging.getLogger("bot.diagnoses")
changes_log = logging.getLogger("bot.changes")
runs_log = logging.getLogger("bot.scheduler")

Next = Callable[[], Awaitable[BoltResponse]]


def request_kind(body: dict[str, Any]) -> tuple[str, str]:
    """(kind, name) of a Slack request: ("command", "/emailtest"), ("action", "request_fix"), ("view", …)."""
    if "command" in body:
        return "command", str(body["command"])
    kind = str(body.get("type") or "unknown")
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return "action", str(actions[0].get("action_id", ""))
    if kind in ("view_submission", "view_closed"):
        return "view", str((body.get("view") or {}).get("callback_id", ""))
    if kind == "event_callback":
        return "event", str((body.get("event") or {}).get("type", ""))
    return kind, ""


def observe_requests() -> Callable[..., Awaitable[BoltResponse | None]]:
    """bolt middleware (first in the chain): a request id for every line logged while handling the request
    (and in the tasks it starts), the ack latency histogram, and one ``slack_request`` line when acked."""

    async def observe(req: AsyncBoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:
        started = time.perf_counter()
        kind, name = request_kind(req.body)
        request_id = uuid.uuid4().hex[:12]
        bind_forever(request_id=request_id)  # bolt runs each request in a task of its own: the id stays there
        outcome = "error"
        response: BoltResponse | None = None
        try:
            response = await next()
            status = response.status if response is not None else 200
            outcome = "ok" if status < 400 else "refused"
            return response
        finally:
            seconds = time.perf_counter() - started
            metrics.ACK_SECONDS.labels(kind=kind).observe(seconds)
            metrics.SLACK_REQUESTS.labels(kind=kind, outcome=outcome).inc()
            event(
                log,
                "slack_request",
                kind=kind,
                name=name,
                user=(req.body.get("user_id") or (req.body.get("user") or {}).get("id")),
                retry=req.headers.get("x-slack-retry-num", [None])[0] if req.headers else None,
                outcome=outcome,
                status=response.status if response is not None else None,
                duration_ms=round(seconds * 1000, 1),
            )

    return observe


class Diagnoser(Protocol):
    async def diagnose(self, query: str) -> Report: ...


class ObservedDoctor:
    """The doctor, with a ``diagnosis`` line and the diagnoses counter for every test the bot runs."""

    def __init__(self, doctor: Diagnoser) -> None:
        self._doctor = doctor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._doctor, name)

    async def diagnose(self, query: str) -> Report:
        started = time.perf_counter()
        try:
            report = await self._doctor.diagnose(query)
        except Exception as exc:
            event(
                diagnoses_log, "diagnosis", level=logging.WARNING, user=query, outcome="error", error=type(exc).__name__
            )
            raise
        code = "ok" if report.ok else (report.diagnosis.code.value if report.diagnosis else "unknown")
        metrics.DIAGNOSES.labels(code=code).inc()
        event(
            diagnoses_log,
            "diagnosis",
            user=query,
            test_id=report.test_id,
            code=code,
            pending=report.pending or None,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return report


def change_event(change: ChangeRecord, state: str, *, outcome: str | None = None, **fields: Any) -> None:
    """A change entered ``state``: count it and log one ``change`` line."""
    metrics.CHANGES.labels(state=state).inc()
    event(
        changes_log,
        "change",
        change_id=change.id,
        state=state,
        right=str(change.right),
        mailbox=change.mailbox,
        trustee=change.trustee,
        origin=str(change.origin),
        attempt=change.attempts or None,
        outcome=outcome,
        **fields,
    )


def run_event(job: str, outcome: str, seconds: float, *, done: int = 1, **fields: Any) -> None:
    """A scheduled job ran: count it and log one ``scheduled_run`` line (at debug level when it found nothing to
    do, so that a quiet bot does not write three lines a tick)."""
    metrics.SCHEDULED_RUNS.labels(job=job, outcome=outcome).inc()
    level = logging.WARNING if outcome != "ok" else logging.INFO if done else logging.DEBUG
    event(
        runs_log, "scheduled_run", level=level, job=job, outcome=outcome, duration_ms=round(seconds * 1000, 1), **fields
    )


async def measure_backlog(store: Store, now: datetime, overdue_after: timedelta) -> None:
    """Set the reconciler and revocation gauges from the store (each scheduler tick)."""
    from bot.store.records import ChangeOrigin

    unsettled = await store.recent_changes(limit=100_000, unsettled=True)
    metrics.RECONCILER_BACKLOG.set(len(unsettled))
    metrics.REVOCATIONS_PENDING.set(sum(1 for change in unsettled if change.origin is ChangeOrigin.TIME_LIMIT))
    overdue = await store.overdue_revocations(now)
    metrics.REVOCATIONS_OVERDUE.set(
        sum(1 for change in overdue if change.expires_at is not None and change.expires_at <= now - overdue_after)
    )


def audit_event(seconds: float, mailboxes: int, findings_by_kind: dict[str, int]) -> None:
    """An audit finished: its duration, and its findings by kind (every kind, zero included, so a gauge that
    counted something last time goes back to 0)."""
    from graph.audit_findings import FindingKind

    metrics.AUDIT_SECONDS.observe(seconds)
    for kind in FindingKind:
        metrics.AUDIT_FINDINGS.labels(kind=str(kind)).set(findings_by_kind.get(str(kind), 0))
    event(
        runs_log,
        "audit",
        mailboxes=mailboxes,
        findings=sum(findings_by_kind.values()),
        duration_ms=round(seconds * 1000, 1),
    )


async def metrics_endpoint(_: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus' text format."""
    response = web.Response(body=metrics.exposition())
    response.content_type = "text/plain"
    response.headers["Content-Type"] = metrics.CONTENT_TYPE
    return response
