"""Saved permission audits: a summary and every row, so the next audit can say what changed.

The rows of one audit are stored as a single JSON array: a 10,000-mailbox tenant yields tens of
thousands of rows, and one text value writes and reads far faster than as many table rows.
Encoding and decoding run in a worker thread so a large audit does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.store.chain import canonical_json
from bot.store.core import StoreCore, aware_utc
from bot.store.models import SnapshotRow
from bot.store.records import Snapshot


def _encode_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[str, int]:
    materialised = [dict(row) for row in rows]
    return json.dumps(materialised, separators=(",", ":"), ensure_ascii=False, allow_nan=False), len(materialised)


def _decode(snapshot_id: int, taken_at: datetime, summary: str, rows: str) -> Snapshot:
    return Snapshot(id=snapshot_id, taken_at=taken_at, summary=json.loads(summary), rows=tuple(json.loads(rows)))


class Snapshots(StoreCore):
    async def save_snapshot(
        self, taken_at: datetime, summary: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
    ) -> int:
        """Save an audit (``summary`` and ``rows`` must be JSON); returns its id."""
        taken_at = aware_utc(taken_at, "taken_at")
        summary_json = canonical_json(dict(summary))
        rows_json, row_count = await asyncio.to_thread(_encode_rows, rows)
        row = SnapshotRow(taken_at=taken_at, summary=summary_json, rows=rows_json, row_count=row_count)
        async with self._write("save an audit snapshot") as session:
            session.add(row)
            await session.flush()
            return row.id

    async def latest_snapshot(self) -> Snapshot | None:
        """The most recent audit, or None before the first."""
        return await self._nth_latest(0)

    async def previous_snapshot(self) -> Snapshot | None:
        """The audit before the most recent one, or None."""
        return await self._nth_latest(1)

    async def _nth_latest(self, offset: int) -> Snapshot | None:
        statement = (
            select(SnapshotRow).order_by(SnapshotRow.taken_at.desc(), SnapshotRow.id.desc()).offset(offset).limit(1)
        )
        async with self._read("read an audit snapshot") as session:
            row = (await session.scalars(statement)).one_or_none()
        if row is None:
            return None
        return await asyncio.to_thread(_decode, row.id, row.taken_at, row.summary, row.rows)
