"""The append-only, hash-chained audit log (hashing rules in :mod:`bot.store.chain`).

Appends serialise on the chain head, a single row naming the last entry: on PostgreSQL each append
reads it ``SELECT … FOR UPDATE`` (a row lock held until commit), on SQLite the append's transaction
starts with ``BEGIN IMMEDIATE`` (the database's write lock). Either way the next append sees the
committed head, so ``seq`` has no gaps or duplicates and the chain never forks, whatever the number
of processes or replicas. There is deliberately no way to update or delete an entry.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.chain import ChainChecker, canonical_json, entry_hash, hashed_fields
from bot.store.core import StoreCore, aware_utc
from bot.store.errors import StoreError
from bot.store.models import AuditHeadRow, AuditRow
from bot.store.records import AuditEntry, AuditRecord, AuditResult, ChainHead, ChainReport

_VERIFY_PAGE = 1000


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        recorded_at=row.recorded_at,
        actor=row.actor,
        action=row.action,
        subject=json.loads(row.subject),
        result=row.result,
        approved_by=row.approved_by,
        request_id=row.request_id,
        detail=row.detail,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class AuditLog(StoreCore):
    async def append_audit(
        self,
        actor: str,
        action: str,
        subject: Mapping[str, Any],
        result: str,
        *,
        approved_by: str | None = None,
        request_id: int | None = None,
        detail: str | None = None,
        now: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry and return it, with its ``seq`` and hash.

        ``subject`` says what was acted on (mailbox, trustee, right …) and must be JSON; ``detail``
        is redacted. Raises :class:`StoreError` if the entry could not be written.
        """
        canonical_json(dict(subject))  # TypeError / ValueError now, before the write lock is taken
        async with self._write("append to the audit log") as session:
            return await self._append(
                session,
                actor,
                action,
                subject,
                result,
                approved_by=approved_by,
                request_id=request_id,
                detail=detail,
                now=now,
            )

    async def _append(
        self,
        session: AsyncSession,
        actor: str,
        action: str,
        subject: Mapping[str, Any],
        result: str,
        *,
        approved_by: str | None = None,
        request_id: int | None = None,
        detail: str | None = None,
        now: datetime | None = None,
    ) -> AuditEntry:
        """Append within ``session``'s write transaction: the entry commits (or not) with what else it writes."""
        recorded_at = self._now(now)
        result = str(result)
        subject = dict(subject)
        detail = self._redact(detail)
        head = (await session.scalars(select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update())).one()
        seq = head.seq + 1
        fields = hashed_fields(
            seq=seq,
            recorded_at=recorded_at,
            actor=actor,
            action=action,
            subject=subject,
            result=result,
            approved_by=approved_by,
            request_id=request_id,
            detail=detail,
        )
        digest = entry_hash(head.hash, fields)
        row = AuditRow(
            seq=seq,
            recorded_at=recorded_at,
            actor=actor,
            action=action,
            subject=canonical_json(subject),
            result=result,
            approved_by=approved_by,
            request_id=request_id,
            detail=detail,
            prev_hash=head.hash,
            hash=digest,
        )
        session.add(row)
        head.seq, head.hash = seq, digest
        return _entry(row)  # built before the commit expires the row; the commit runs when the caller's block ends

    @asynccontextmanager
    async def audited(
        self,
        actor: str,
        action: str,
        subject: Mapping[str, Any],
        *,
        approved_by: str | None = None,
        request_id: int | None = None,
    ) -> AsyncIterator[AuditRecord]:
        """Write ``<action>.started`` before the block runs and ``<action>`` with its outcome after.

        If the first entry cannot be written, :class:`StoreError` is raised and the block never
        runs: a grant that cannot be audited does not happen. The outcome is ``ok`` (or what the
        block set on ``record.result``), or ``failed`` with the exception text, which is re-raised.
        If the outcome cannot be written after a successful block, :class:`StoreError` says so.
        """
        started = await self.append_audit(
            actor,
            f"{action}.started",
            subject,
            AuditResult.STARTED,
            approved_by=approved_by,
            request_id=request_id,
        )
        record = AuditRecord(started=started)
        try:
            yield record
        except BaseException as exc:  # recorded, then re-raised unchanged
            text = str(exc).strip()
            detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            try:
                record.outcome = await self.append_audit(
                    actor,
                    action,
                    subject,
                    AuditResult.FAILED,
                    approved_by=approved_by,
                    request_id=request_id,
                    detail=detail,
                )
            except StoreError as store_error:
                exc.add_note(f"and its outcome could not be written to the audit log: {store_error}")
            raise
        try:
            record.outcome = await self.append_audit(
                actor,
                action,
                subject,
                record.result or AuditResult.OK,
                approved_by=approved_by,
                request_id=request_id,
                detail=record.detail,
            )
        except StoreError as exc:
            raise StoreError(
                f"{action} ran (audit entry {started.seq}) but its outcome could not be written to the audit log: {exc}"
            ) from exc

    async def verify_audit_chain(self) -> ChainReport:
        """Recompute the chain from the first entry to the head; report the first entry that breaks it.

        Reads pages of entries, so memory stays flat however long the log. Entries appended while it
        runs are not checked (they lie beyond the head read at the start).
        """
        checker = ChainChecker()
        async with self._read("verify the audit log") as session:
            head = (await session.scalars(select(AuditHeadRow).where(AuditHeadRow.id == 1))).one()
            after = 0
            while not checker.broken:
                page = (
                    await session.scalars(
                        select(AuditRow)
                        .where(AuditRow.seq > after, AuditRow.seq <= head.seq)
                        .order_by(AuditRow.seq)
                        .limit(_VERIFY_PAGE)
                    )
                ).all()
                for row in page:
                    checker.feed(_entry(row))
                if len(page) < _VERIFY_PAGE:
                    break
                after = page[-1].seq
                session.expunge_all()
            return checker.report(head.seq, head.hash)

    async def chain_head(self) -> ChainHead:
        """The audit log's last entry (``0`` and the genesis hash while it is empty): post it somewhere the store's
        writers cannot reach, and :meth:`audit_entry_at` later shows whether the log up to it was rewritten."""
        async with self._read("read the audit log's head") as session:
            head = (await session.scalars(select(AuditHeadRow).where(AuditHeadRow.id == 1))).one()
            return ChainHead(head.seq, head.hash)

    async def audit_entry_at(self, seq: int) -> AuditEntry | None:
        async with self._read("read an audit entry") as session:
            row = await session.get(AuditRow, seq)
            return None if row is None else _entry(row)

    async def audit_entry_with_hash(self, digest: str) -> AuditEntry | None:
        async with self._read("read an audit entry") as session:
            row = (await session.scalars(select(AuditRow).where(AuditRow.hash == digest))).one_or_none()
            return None if row is None else _entry(row)

    async def audit_entries(
        self,
        limit: int = 100,
        *,
        since: datetime | None = None,
        request_id: int | None = None,
    ) -> list[AuditEntry]:
        """The latest ``limit`` entries (recorded at or after ``since``, for ``request_id``), oldest first."""
        statement = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
        if since is not None:
            statement = statement.where(AuditRow.recorded_at >= aware_utc(since, "since"))
        if request_id is not None:
            statement = statement.where(AuditRow.request_id == request_id)
        async with self._read("read the audit log") as session:
            rows = (await session.scalars(statement)).all()
            return [_entry(row) for row in reversed(rows)]
