"""What the store hands out: our own frozen dataclasses, never ORM instances.

Every ``datetime`` here is timezone-aware UTC, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from plugin.diagnosis import Right


class RequestKind(StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"


class RequestStatus(StrEnum):
    """``pending`` → ``approved`` | ``denied`` | ``expired``; ``approved`` → ``done`` | ``failed``."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class FixRequest:
    """A request to grant or revoke a right, and what became of it."""

    id: int
    kind: RequestKind
    right: Right
    mailbox: str
    trustee: str
    duration: timedelta | None
    """For a time-bound grant: how long it lasts once granted."""
    requested_by: str
    """Slack user id of the person who asked."""
    origin_channel: str
    origin_thread_ts: str | None
    origin_test_user: str | None
    """The user whose ``/emailtest`` led to the request, if one did."""
    status: RequestStatus
    created_at: datetime
    expires_at: datetime
    card_channel: str | None
    card_ts: str | None
    decided_by: str | None
    decided_at: datetime | None
    finished_at: datetime | None
    detail: str | None
    """Outcome text: the detail of the change that carried the request out."""


class AuditResult(StrEnum):
    """The results :meth:`Store.audited` writes; :meth:`Store.append_audit` accepts any short string."""

    STARTED = "started"
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only audit log.

    ``hash = sha256(prev_hash + canonical JSON of the fields)``; see :mod:`bot.store.chain`.
    """

    seq: int
    recorded_at: datetime
    actor: str
    action: str
    subject: Mapping[str, Any]
    result: str
    approved_by: str | None
    request_id: int | None
    detail: str | None
    prev_hash: str
    hash: str


@dataclass
class AuditRecord:
    """Handed to the body of ``async with store.audited(…) as record``.

    The body may set ``result`` (default ``ok``) and ``detail``; ``outcome`` is the entry written
    when the block exits. Mutable on purpose: it is how the body reports what happened.
    """

    started: AuditEntry
    result: str | None = None
    detail: str | None = None
    outcome: AuditEntry | None = None


@dataclass(frozen=True)
class ChainReport:
    """The result of :meth:`Store.verify_audit_chain`.

    ``head_hash`` commits to the whole log: publishing it elsewhere (a Slack message, a ticket)
    makes even a rewrite of the complete chain detectable later.
    """

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """A tenant-wide permission audit, as saved by :meth:`Store.save_snapshot`."""

    id: int
    taken_at: datetime
    summary: Mapping[str, Any]
    rows: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class ScheduledRun:
    """One slot of a scheduled job, claimed by exactly one replica."""

    job: str
    slot: datetime
    owner: str
    claimed_at: datetime
    finished_at: datetime | None
    result: str | None


class ChangeState(StrEnum):
    """``approved`` → ``applying`` → ``applied`` → ``verified`` | ``failed`` (see :mod:`bot.pipeline`)."""

    APPROVED = "approved"
    APPLYING = "applying"
    APPLIED = "applied"
    VERIFIED = "verified"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ChangeState.VERIFIED, ChangeState.FAILED)


class ChangeOrigin(StrEnum):
    REQUEST = "request"
    """Approved on a card: the request's card and thread show it."""
    DIRECT = "direct"
    """Made by IT with /sendas or on the command line."""
    TIME_LIMIT = "time_limit"
    """The revocation that ends a time-bound grant; retried until done."""


@dataclass(frozen=True)
class ChangeRecord:
    """One change of rights: everything needed to finish or undo it, and how far it got."""

    id: int
    kind: RequestKind
    origin: ChangeOrigin
    right: Right
    mailbox: str
    trustee: str
    duration: timedelta | None
    expires_at: datetime | None
    request_id: int | None
    parent_id: int | None
    requested_by: str
    approved_by: str
    state: ChangeState
    due_at: datetime
    attempts: int
    claimed_by: str | None
    lease_until: datetime | None
    shown: str | None
    escalated_at: datetime | None
    detail: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    show_failures: int = 0
    """Slack refused to show the change this many times in a row."""
    show_after: datetime | None = None
    """When the reconciler shows a final change again that Slack refused to show (back-off)."""

    def subject(self) -> dict[str, object]:
        """What the audit log records as the change's subject."""
        subject: dict[str, object] = {"right": str(self.right), "mailbox": self.mailbox, "trustee": self.trustee}
        if self.duration is not None:
            subject["duration_seconds"] = int(self.duration.total_seconds())
        return subject


@dataclass(frozen=True)
class ChainHead:
    """The audit log's last entry: publishing ``seq`` and ``hash`` elsewhere anchors everything before it."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


class RetestState(StrEnum):
    """``testing`` → ``posting`` (the outcome is recorded and audited) → ``done`` (Slack shows it)."""

    TESTING = "testing"
    POSTING = "posting"
    DONE = "done"


class RetestOutcome(StrEnum):
    PASSED = "passed"
    STOPPED = "stopped"
    """The test failed for another reason than Send As denied: waiting longer would not help."""
    GAVE_UP = "gave_up"
    """Still failing when the limit passed."""


@dataclass(frozen=True)
class RetestRecord:
    """The re-test after a granted fix, run by the replica holding its lease (see :mod:`bot.retest`)."""

    id: int
    change_id: int
    request_id: int
    test_user: str
    right: Right
    channel: str
    thread_ts: str | None
    state: RetestState
    attempts: int
    due_at: datetime
    claimed_by: str | None
    lease_until: datetime | None
    progress_ts: str | None
    outcome: RetestOutcome | None
    result_text: str | None
    report: str | None
    posted_at: datetime | None
    slack_failures: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
