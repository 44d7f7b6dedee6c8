"""Audits from chat and on a schedule; a scheduled audit runs once even with two bot replicas on one database."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest

from bot.scheduler import Scheduler
from sandbox.testing import SandboxFactory
from tests.bot.e2e.conftest import AUDIT, HANNAH, IVAN, World, start_world
from tests.bot.e2e.sendas_cards import ask_and_confirm
from tests.bot.store.support import Database

EVERY_MINUTE = {"EMAILDOCTOR_SLACK__AUDIT_CRON": "* * * * *"}


async def test_mailaudit_run_posts_summary_and_csv_with_predictions(world: World) -> None:
    await world.command(IVAN, "/mailaudit", "run")
    summary = await world.top(AUDIT, "Mailbox-rights audit")
    text = summary.all_text()
    assert "Sending that will fail before anyone tries" in text
    assert "grace" in text and "alice" in text
    assert "Risky grants" in text and "S-1-5-21-3623811015-3361044348-30300820-1013" in text
    assert "partner@fabrikam.com" in text and "oscar@business.com" in text
    await world.settle()
    files = world.workspace.files(AUDIT)
    assert len(files) == 1
    rows = list(csv.DictReader(io.StringIO(files[0].content.decode())))
    assert any(r["mailbox"] == "henry@business.com" and r["trustee"] == "admin@business.com" for r in rows)
    stored = await world.ctx.store.latest_snapshot()
    assert stored is not None and stored.summary["mailboxes"] >= 10


async def test_second_audit_reports_the_change(world: World) -> None:
    await world.command(IVAN, "/mailaudit", "run")
    await world.top(AUDIT, "this is the first audit")
    await world.settle()
    await ask_and_confirm(world.slack, world.workspace, IVAN, "grant admin@business.com send-as grace@business.com")
    await world.settle()
    world.clock.advance(60)
    await world.command(IVAN, "/mailaudit", "run")

    def second() -> str | None:
        texts = [m.all_text() for m in world.workspace.messages(AUDIT) if "Changes since" in m.all_text()]
        return texts[-1] if texts else None

    text = await world.wait(second)
    assert "➕ Send As admin@business.com → grace@business.com" in text


async def test_mailaudit_is_for_it_only_and_explains_itself(world: World) -> None:
    await world.command(HANNAH, "/mailaudit", "run")
    await world.command(IVAN, "/mailaudit", "schedule")
    await world.command(IVAN, "/mailaudit", "last")
    await world.command(IVAN, "/mailaudit", "sometimes")

    def answers() -> str:
        return " | ".join(str(p.payload.get("text")) for p in world.workspace.response_posts())

    await world.wait(lambda: "Only IT admins" in answers())
    await world.wait(lambda: "No scheduled audit" in answers())
    await world.wait(lambda: "No audit has run yet" in answers())
    await world.wait(lambda: "Usage: `/mailaudit run`" in answers())
    assert world.workspace.messages(AUDIT) == []


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # replicas share PostgreSQL, not SQLite
async def test_scheduled_audit_runs_once_with_two_replicas(
    sandbox_factory: SandboxFactory, tmp_path: Path, database: Database
) -> None:
    assert database.backend == "postgres"
    async with (
        sandbox_factory(propagation_delay_seconds=0) as sandbox,
        start_world(sandbox, tmp_path, database.url, replica="replica-a", extra=EVERY_MINUTE) as first,
        start_world(sandbox, tmp_path, database.url, replica="replica-b", extra=EVERY_MINUTE) as second,
    ):
        started = first.clock.now()
        schedulers = [Scheduler(first.ctx, started_at=started), Scheduler(second.ctx, started_at=started)]
        first.clock.advance(61)
        await asyncio.gather(*(s.tick() for s in schedulers))
        await first.wait(lambda: first.workspace.files(AUDIT))
        await first.settle()
        await second.settle()
        summaries = [m for m in first.workspace.messages(AUDIT) if "Scheduled mailbox-rights audit" in m.all_text()]
        assert len(summaries) == 1
        assert len(first.workspace.files(AUDIT)) == 1
        runs = await first.ctx.store.last_run("audit")
        assert runs is not None and runs.owner in ("replica-a", "replica-b") and (runs.result or "").startswith("ok")
        # The next minute runs again, once.
        first.clock.advance(timedelta(minutes=1).total_seconds())
        await asyncio.gather(*(s.tick() for s in schedulers))
        await first.wait(lambda: len(first.workspace.files(AUDIT)) == 2)
        assert len([m for m in first.workspace.messages(AUDIT) if "Scheduled" in m.all_text()]) == 2
