"""Databases for the bot's tests: every test that uses ``database`` runs twice, on SQLite (a file in the test's
temp dir) and on PostgreSQL (a fresh schema in the server at ``EMAILDOCTOR_TEST_POSTGRES_URL``, default
``postgresql://root@127.0.0.1:5432/test``).

PostgreSQL is part of the test environment, here and in CI: if it is down, the tests fail and say so.
Each PostgreSQL test gets its own schema ``edstore_<unix time>_<random>``, dropped afterwards;
schemas that an interrupted run left behind are dropped an hour later by the next run.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.store.engine import async_url
from tests.bot.store.support import Database

# Read at import time: tests/conftest.py removes EMAILDOCTOR_* variables before each test runs.
POSTGRES_URL = os.environ.get("EMAILDOCTOR_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"
SCHEMA_PREFIX = "edstore_"
STALE_SCHEMA_SECONDS = 3600

_swept = False


def _with_options(url: str, *options: str) -> str:
    parsed = make_url(url)
    return parsed.update_query_dict({"options": " ".join(options)}).render_as_string(hide_password=False)


async def _sweep_stale_schemas(admin: AsyncEngine) -> None:
    """Drop schemas older than an hour that earlier, interrupted runs left behind (never a live run's)."""
    global _swept
    if _swept:
        return
    _swept = True
    async with admin.connect() as connection:
        names = (
            await connection.execute(
                text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :prefix"),
                {"prefix": SCHEMA_PREFIX + "%"},
            )
        ).scalars()
        stale = [
            name
            for name in names
            if name.split("_")[1].isdigit() and time.time() - int(name.split("_")[1]) > STALE_SCHEMA_SECONDS
        ]
    for name in stale:
        try:
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        except SQLAlchemyError:
            pass  # another run dropped it first


@asynccontextmanager
async def _postgres(test_name: str) -> AsyncIterator[Database]:
    admin = create_async_engine(async_url(POSTGRES_URL), poolclass=NullPool, connect_args={"connect_timeout": 5})
    schema = f"{SCHEMA_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    try:
        await _sweep_stale_schemas(admin)
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except SQLAlchemyError as exc:
        await admin.dispose()
        pytest.fail(
            f"{test_name}: PostgreSQL is not usable at {POSTGRES_URL} ({type(exc.__cause__ or exc).__name__}: "
            f"{str(exc.__cause__ or exc).strip().splitlines()[0]}). Start the server, or point "
            "EMAILDOCTOR_TEST_POSTGRES_URL at one; the store's tests never skip PostgreSQL.",
            pytrace=False,
        )
    url = _with_options(POSTGRES_URL, f"-csearch_path={schema}")
    read_only = _with_options(POSTGRES_URL, f"-csearch_path={schema}", "-cdefault_transaction_read_only=on")
    raw = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        yield Database("postgres", url, read_only, raw)
    finally:
        await raw.dispose()
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@asynccontextmanager
async def _sqlite(directory: Path) -> AsyncIterator[Database]:
    path = directory / "store.db"
    raw = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=NullPool)
    try:
        yield Database("sqlite", f"sqlite:///{path}", f"sqlite:///file:{path}?mode=ro&uri=true", raw)
    finally:
        await raw.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database (no tables): SQLite, then PostgreSQL."""
    backend = _postgres(request.node.name) if request.param == "postgres" else _sqlite(tmp_path)
    async with backend as database:
        yield database
