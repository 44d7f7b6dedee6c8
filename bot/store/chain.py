"""The audit log's hash chain: how an entry is hashed, and how a chain is checked.

    hash(n) = sha256( prev_hash(n) || canonical_json(fields(n)) )      prev_hash(1) = "0" * 64

``prev_hash`` and ``hash`` are lowercase hex; ``fields`` are the entry's ``seq``, ``recorded_at``
(ISO 8601 UTC, microseconds), ``actor``, ``action``, ``subject``, ``result``, ``approved_by``,
``request_id`` and ``detail``; canonical JSON sorts keys and has no spaces. Because ``seq`` is
hashed and every entry names its predecessor's hash, an edited, deleted, inserted or reordered
row breaks the chain at that row; a cut-off tail is caught against the chain head the store keeps, and a
rewrite with every later hash recomputed against a head published outside the store (every audit post in
Slack, ``emaildoctor log head``; checked by ``emaildoctor log verify --head``, :mod:`bot.cli_log`).
Pure code: no database here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.store.records import AuditEntry, ChainReport

GENESIS_HASH = "0" * 64


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace; raises ``TypeError`` / ``ValueError`` for non-JSON values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def hashed_fields(
    *,
    seq: int,
    recorded_at: datetime,
    actor: str,
    action: str,
    subject: Mapping[str, Any],
    result: str,
    approved_by: str | None,
    request_id: int | None,
    detail: str | None,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "recorded_at": recorded_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": dict(subject),
        "result": result,
        "approved_by": approved_by,
        "request_id": request_id,
        "detail": detail,
    }


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def hash_of(entry: AuditEntry) -> str:
    """The hash ``entry`` should carry, recomputed from its fields and its ``prev_hash``."""
    fields = hashed_fields(
        seq=entry.seq,
        recorded_at=entry.recorded_at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        result=entry.result,
        approved_by=entry.approved_by,
        request_id=entry.request_id,
        detail=entry.detail,
    )
    return entry_hash(entry.prev_hash, fields)


class ChainChecker:
    """Checks entries fed in ``seq`` order, one page at a time, in O(1) memory."""

    def __init__(self) -> None:
        self._expected_seq = 1
        self._prev_hash = GENESIS_HASH
        self.checked = 0
        self.first_bad_seq: int | None = None
        self.problem: str | None = None

    @property
    def broken(self) -> bool:
        return self.problem is not None

    def feed(self, entry: AuditEntry) -> None:
        if self.broken:
            return
        self.checked += 1
        expected = self._expected_seq
        if entry.seq != expected:
            self._fail(expected, f"entry {expected} is missing (the next entry is {entry.seq}): rows were deleted")
        elif entry.prev_hash != self._prev_hash:
            self._fail(
                entry.seq,
                f"entry {entry.seq} does not follow entry {expected - 1} (prev_hash differs): "
                "rows were reordered, replaced or inserted",
            )
        elif hash_of(entry) != entry.hash:
            self._fail(entry.seq, f"entry {entry.seq} does not match its hash: the row was edited")
        else:
            self._expected_seq += 1
            self._prev_hash = entry.hash

    def report(self, head_seq: int, head_hash: str) -> ChainReport:
        """The verdict, given the chain head the store recorded with the last append."""
        last_seq = self._expected_seq - 1
        if not self.broken and last_seq < head_seq:
            self._fail(last_seq + 1, f"entries {last_seq + 1}…{head_seq} are missing: the log was cut short")
        elif not self.broken and self._prev_hash != head_hash:
            self._fail(head_seq, f"entry {head_seq} is not the entry the chain head recorded")
        return ChainReport(
            ok=not self.broken,
            checked=self.checked,
            head_seq=head_seq,
            head_hash=head_hash,
            first_bad_seq=self.first_bad_seq,
            problem=self.problem,
        )

    def _fail(self, seq: int, problem: str) -> None:
        self.first_bad_seq = seq
        self.problem = problem
