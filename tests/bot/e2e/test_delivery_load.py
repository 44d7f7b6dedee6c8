"""The acknowledgement does no I/O: Slack is answered while the store is locked, and the delivery is handled, once,
when the lock goes. A retry that reaches another replica is still handled once (the claim, after the ack)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from sandbox.testing import SandboxFactory
from tests.bot.e2e.conftest import HANNAH, HELPDESK, IVAN, PROPAGATION_SECONDS, World, start_world
from tests.bot.store.support import Database


@asynccontextmanager
async def store_locked(database: Database) -> AsyncIterator[None]:
    """Nobody else can write the store (SQLite: an exclusive transaction; PostgreSQL: the delivery-key table
    locked) until the block ends."""
    async with database.raw.connect() as connection:
        if database.backend == "sqlite":
            await connection.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            await connection.execute(text("LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await connection.rollback()


async def test_slack_is_answered_while_the_store_is_locked(world: World, database: Database) -> None:
    async with store_locked(database):
        delivery = await world.command(HANNAH, "/emailtest", "bob")
        retry = await world.slack.redeliver(delivery, retry_num=1)
        assert delivery.acked_in_time and retry.status == 200
        assert world.workspace.messages(HELPDESK) == []  # acknowledged, and waiting for the store
    parent = await world.top(HELPDESK, "Testing outgoing email for *bob*")
    await world.wait(lambda: "passed" in world.latest(parent).text)
    await world.settle()
    assert len(world.workspace.messages(HELPDESK)) == 1
    assert len(world.workspace.replies(HELPDESK, parent.ts)) == 2  # the report and its transcript, once


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # replicas share PostgreSQL, not SQLite
async def test_a_retry_to_another_replica_is_handled_once(
    sandbox_factory: SandboxFactory, tmp_path: Path, database: Database
) -> None:
    async with (
        sandbox_factory(propagation_delay_seconds=PROPAGATION_SECONDS) as sandbox,
        start_world(sandbox, tmp_path, database.url, replica="replica-a") as first,
        start_world(sandbox, tmp_path, database.url, replica="replica-b") as second,
    ):
        delivery = await first.command(IVAN, "/mailaudit", "schedule")
        await first.settle()
        retry = await second.slack.redeliver(delivery, retry_num=1, retry_reason="http_timeout")
        assert retry.status == 200
        await second.settle()
        click = await first.command(HANNAH, "/emailtest", "henry")
        again = await second.slack.redeliver(click, retry_num=1)
        assert again.status == 200
        parent = await first.top(HELPDESK, "Testing outgoing email for *henry*")
        await first.wait(lambda: "passed" in first.latest(parent).text)
        await first.settle()
        await second.settle()
        answers = [p for p in first.workspace.response_posts() if "No scheduled audit" in str(p.payload)]
        assert len(answers) == 1
        tests = [m for m in first.workspace.messages(HELPDESK) if "No scheduled audit" not in m.all_text()]
        assert tests == [first.latest(parent)]
        assert len(first.workspace.replies(HELPDESK, parent.ts)) == 2
