"""Migrations: from empty to head, matching the models, safe to run twice or concurrently; URLs; errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import SQLAlchemyError

from bot.store import Store, StoreError, create_store_engine
from bot.store import schema as store_schema
from bot.store.engine import async_url
from bot.store.models import Base
from plugin.errors import ConfigError
from tests.bot.store.support import Database, run_together

TABLES = {
    "alembic_version",
    "audit_chain_head",
    "audit_log",
    "audit_snapshots",
    "fix_requests",
    "idempotency_keys",
    "changes",
    "retests",
    "scheduled_runs",
}


def _model_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_empty_database_is_migrated_to_head(database: Database) -> None:
    store = Store(database.url)
    try:
        with pytest.raises(StoreError, match="revision \\(empty\\)"):
            await store.check_schema()
        await store.migrate()
        await store.check_schema()
    finally:
        await store.close()
    async with database.raw.connect() as connection:
        assert await connection.run_sync(_table_names) == TABLES
        assert await connection.run_sync(store_schema.current_revision) == store_schema.head_revision()
    assert await database.rows("SELECT id, seq, hash FROM audit_chain_head") == [(1, 0, "0" * 64)]


async def test_head_matches_the_models(database: Database, store: Store) -> None:
    async with database.raw.connect() as connection:
        assert await connection.run_sync(_model_diff) == []


async def test_migrating_twice_and_concurrently_changes_nothing(
    database: Database, make_store: Callable[..., Awaitable[Store]]
) -> None:
    first, second = await asyncio.gather(make_store(), make_store())
    await first.migrate()
    await second.check_schema()
    assert await database.rows("SELECT count(*) FROM audit_chain_head") == [(1,)]
    assert await database.rows("SELECT count(*) FROM alembic_version") == [(1,)]


MIGRATOR = """
import asyncio, sys
from bot.store import Store

async def main(url: str) -> None:
    async with Store(url) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        await store.migrate()

asyncio.run(main(sys.argv[1]))
"""


async def test_replicas_migrating_at_once_migrate_once(database: Database) -> None:
    await run_together(MIGRATOR, [database.url], [database.url], [database.url])
    async with await Store.open(database.url, migrate=False) as store:
        await store.append_audit("U_IT", "grant", {}, "ok")
    assert await database.rows("SELECT count(*) FROM audit_chain_head") == [(1,)]
    assert await database.rows("SELECT seq FROM audit_log") == [(1,)]


async def test_downgrade_to_base_and_up_again(database: Database, store: Store) -> None:
    engine = create_store_engine(database.url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(store_schema.downgrade, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_table_names) == {"alembic_version"}
    finally:
        await engine.dispose()
    await store.migrate()
    await store.check_schema()


async def test_open_without_migrating_refuses_an_unmigrated_database(database: Database) -> None:
    with pytest.raises(StoreError, match="migrate=True"):
        await Store.open(database.url, migrate=False)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///store.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:////var/lib/emaildoctor/store.db", "sqlite+aiosqlite"),
        ("postgresql://bot@db.internal/emaildoctor", "postgresql+psycopg"),
        ("postgresql+psycopg://bot:pw@db.internal:5433/emaildoctor", "postgresql+psycopg"),
    ],
)
def test_urls_get_the_async_driver(url: str, driver: str) -> None:
    assert async_url(url).drivername == driver


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://db/x", "postgresql+asyncpg://db/x", "not a url"]
)
def test_unsupported_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"store\.url"):
        Store(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://root:hunter22@127.0.0.1:1/test?connect_timeout=5",
        "sqlite:////proc/store.db",  # the folder exists; SQLite cannot create a file in it
    ],
)
async def test_an_unreachable_database_is_a_store_error(url: str) -> None:
    before = set(threading.enumerate())
    with pytest.raises(StoreError, match="could not migrate") as caught:
        await Store.open(url)
    assert isinstance(caught.value.__cause__, SQLAlchemyError)
    assert "hunter22" not in str(caught.value)
    # aiosqlite stops the worker thread of a connection that failed to open without waiting for it;
    # let it finish while this test's event loop still runs, or it reports into a closed loop.
    for thread in set(threading.enumerate()) - before:
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 10)


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not a SQLite database, just some text that is long enough" * 100)
    with pytest.raises(StoreError, match="not a database"):
        await Store.open(f"sqlite:///{path}")


async def test_a_store_given_an_engine_leaves_it_open(database: Database, tmp_path: Path) -> None:
    engine = create_store_engine(database.url)
    try:
        async with Store(engine) as store:
            await store.migrate()
        async with Store(engine) as store:  # still usable: the store did not dispose of it
            await store.check_schema()
    finally:
        await engine.dispose()


async def test_0002_carries_time_limits_and_unfinished_approvals_over(database: Database) -> None:
    engine = create_store_engine(database.url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(store_schema.upgrade, "0001")
        await database.execute(
            'INSERT INTO timed_grants ("right", mailbox, trustee, expires_at, request_id, granted_by, created_at, status)'
            " VALUES ('SendAs', 'a@x.com', 'b@x.com', '2026-01-05 17:00:00', NULL, 'U_IT', '2026-01-05 09:00:00',"
            " 'failed'), ('SendAs', 'c@x.com', 'd@x.com', '2026-01-05 17:00:00', NULL, 'U_IT',"
            " '2026-01-05 09:00:00', 'revoked')",
            'INSERT INTO fix_requests (kind, "right", mailbox, trustee, duration_seconds, requested_by, origin_channel,'
            " status, created_at, expires_at, decided_by, decided_at) VALUES ('grant', 'FullAccess', 'e@x.com',"
            " 'f@x.com', 3600, 'U_ANNA', 'C1', 'approved', '2026-01-05 09:00:00', '2026-01-06 09:00:00', 'U_IT',"
            " '2026-01-05 09:05:00')",
        )
        async with engine.begin() as connection:
            await connection.run_sync(store_schema.upgrade, "head")
        rows = await database.rows(
            "SELECT kind, origin, mailbox, state, parent_id IS NOT NULL, request_id FROM changes ORDER BY id"
        )
        assert rows == [
            ("revoke", "time_limit", "a@x.com", "approved", False, None),  # failed for good before: retried now
            ("grant", "request", "e@x.com", "approved", False, 1),  # approved, never finished: driven now
            ("revoke", "time_limit", "e@x.com", "approved", True, 1),  # and its time limit
        ]
        async with engine.begin() as connection:
            await connection.run_sync(store_schema.downgrade, "0001")
        assert await database.rows("SELECT mailbox, status FROM timed_grants ORDER BY id") == [
            ("a@x.com", "active"),
            ("e@x.com", "active"),
        ]
    finally:
        await engine.dispose()


async def test_a_missing_sqlite_folder_is_a_settings_error() -> None:
    with pytest.raises(
        ConfigError, match=r"store.url \(EMAILDOCTOR_STORE__URL\): the folder /nonexistent-directory does"
    ):
        await Store.open("sqlite:////nonexistent-directory/store.db")
