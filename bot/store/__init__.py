"""The bot's durable store: fix requests and approvals, changes to Exchange (with time limits) and the
re-tests after them, the hash-chained audit log, audit snapshots, Slack retry keys and scheduled-run claims, in SQLite (one process) or PostgreSQL
(several replicas), through SQLAlchemy with Alembic migrations.

    store = await Store.open(settings.store.url, secrets=settings.secret_values())
    request = await store.create_request(kind=RequestKind.GRANT, right=Right.SEND_AS, …)
    if await store.decide(request.id, approver, approve=True, now=now):   # exactly one click wins
        change = await store.request_change(request.id)                 # written with the decision
        ...                                                             # bot.pipeline drives it
    await store.close()

Everything returned is a frozen dataclass from :mod:`bot.store.records`; every failure is a
:class:`StoreError`.
"""

from __future__ import annotations

from bot.store.engine import create_store_engine
from bot.store.errors import InvalidStateError, SelfApprovalError, StoreError, UnknownRecordError
from bot.store.records import (
    AuditEntry,
    AuditRecord,
    AuditResult,
    ChainHead,
    ChainReport,
    ChangeOrigin,
    ChangeRecord,
    ChangeState,
    FixRequest,
    RequestKind,
    RequestStatus,
    RetestOutcome,
    RetestRecord,
    RetestState,
    ScheduledRun,
    Snapshot,
)
from bot.store.store import Store
from plugin.clock import Clock

__all__ = [
    "AuditEntry",
    "AuditRecord",
    "AuditResult",
    "ChainHead",
    "ChainReport",
    "ChangeOrigin",
    "ChangeRecord",
    "ChangeState",
    "Clock",
    "FixRequest",
    "InvalidStateError",
    "RequestKind",
    "RequestStatus",
    "RetestOutcome",
    "RetestRecord",
    "RetestState",
    "ScheduledRun",
    "SelfApprovalError",
    "Snapshot",
    "Store",
    "StoreError",
    "UnknownRecordError",
    "create_store_engine",
]
