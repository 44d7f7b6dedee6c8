"""Store fixtures on top of ``database`` (tests/bot/conftest.py: SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.store import Store
from tests.bot.store.support import Database, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_store(database: Database, clock: FakeClock) -> AsyncIterator[Callable[..., Awaitable[Store]]]:
    """Open more stores on the test's database, as further replicas would; all closed afterwards."""
    opened: list[Store] = []

    async def make(**options: Any) -> Store:
        options.setdefault("clock", clock)
        store = await Store.open(database.url, **options)
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def store(make_store: Callable[..., Awaitable[Store]]) -> Store:
    """A migrated store on the test's database, using the test's clock."""
    return await make_store()
