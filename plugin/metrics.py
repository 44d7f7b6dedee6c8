"""Prometheus metrics (prometheus-client), on one registry of our own that the bot serves at ``/metrics``.

The names, labels and what to alert on are listed in docs/operations.md ("Metrics"). Labels hold only
bounded values (a diagnosis code, a change state, a service name): never an address or a user id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

ACK_SECONDS = Histogram(
    "emaildoctor_slack_ack_seconds",
    "Time from receiving a Slack request to answering it (Slack shows an error after 3 s).",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0),
    registry=REGISTRY,
)
SLACK_REQUESTS = Counter(
    "emaildoctor_slack_requests",
    "Slack requests handled, by kind (command, action, view, event; unverified: refused before bolt) and outcome (ok, refused, error).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
DIAGNOSES = Counter(
    "emaildoctor_diagnoses",
    "Diagnoses made (tests and re-tests), by diagnosis code (ok when the test passed).",
    ["code"],
    registry=REGISTRY,
)
CHANGES = Counter(
    "emaildoctor_changes",
    "Changes to Exchange entering a state (approved, applying, applied, verified, failed, ...).",
    ["state"],
    registry=REGISTRY,
)
RECONCILER_BACKLOG = Gauge(
    "emaildoctor_reconciler_backlog",
    "Changes not yet in a final state, as the last reconciler tick counted them.",
    registry=REGISTRY,
)
REVOCATIONS_PENDING = Gauge(
    "emaildoctor_revocations_pending",
    "Time-bound rights still to be revoked (their time limit has not passed yet, or is being revoked).",
    registry=REGISTRY,
)
REVOCATIONS_OVERDUE = Gauge(
    "emaildoctor_revocations_overdue",
    "Time-bound rights whose time limit passed more than a tick ago and are still held: alert on > 0.",
    registry=REGISTRY,
)
M365_REQUESTS = Counter(
    "emaildoctor_m365_requests",
    "HTTP requests to Microsoft 365, by service (graph, exchange, login) and status class (2xx, 4xx, 5xx, error).",
    ["service", "status"],
    registry=REGISTRY,
)
M365_THROTTLED = Counter(
    "emaildoctor_m365_throttled",
    "Throttled answers from Microsoft 365 (HTTP 429, or a $batch item answered 429), by service.",
    ["service"],
    registry=REGISTRY,
)
M365_RETRIES = Counter(
    "emaildoctor_m365_retries",
    "Requests or $batch items sent again after throttling or a transient failure, by service.",
    ["service"],
    registry=REGISTRY,
)
SCHEDULED_RUNS = Counter(
    "emaildoctor_scheduled_runs",
    "Scheduler jobs run, by job and outcome (ok, failed).",
    ["job", "outcome"],
    registry=REGISTRY,
)
AUDIT_SECONDS = Histogram(
    "emaildoctor_audit_seconds",
    "How long an audit of every mailbox right took.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
    registry=REGISTRY,
)
AUDIT_FINDINGS = Gauge(
    "emaildoctor_audit_findings",
    "Findings of the last audit, by kind (disabled_trustee, orphaned_sid, external_trustee, ...).",
    ["kind"],
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)


def status_class(status: int | None) -> str:
    if status is None:
        return "error"
    return f"{status // 100}xx"
