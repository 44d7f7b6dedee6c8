"""What the store's tests share besides fixtures: a clock that moves when told, and a raw database handle."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@dataclass
class Database:
    """One empty database for one test, and a raw connection to it that bypasses the store."""

    backend: str
    url: str
    read_only_url: str
    """The same database through a connection that may read but never write."""
    raw: AsyncEngine

    async def execute(self, *statements: str, **params: Any) -> None:
        async with self.raw.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement), params)

    async def execute_many(self, statement: str, parameters: list[dict[str, Any]]) -> None:
        async with self.raw.begin() as connection:
            await connection.execute(text(statement), parameters)

    async def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self.raw.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(query), params)).all()]


async def run_together(script: str, *argvs: list[str]) -> None:
    """Run ``script`` in one Python process per argv, as replicas would, and release them all at once.

    The script prints ``ready`` when it has done its setup, then waits for a line on stdin.
    """
    processes = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", script, *argv),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PYTHONPATH": str(REPO)},
        )
        for argv in argvs
    ]
    for process in processes:
        assert process.stdout is not None
        await process.stdout.readline()  # "ready", or "" if it died first
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    for process in processes:
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode(errors="replace")
