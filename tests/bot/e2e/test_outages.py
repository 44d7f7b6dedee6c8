"""Outages at the moment of a grant, against the real bot process: a Slack 429 or 5xx storm right after Approve,
and the store lost (PostgreSQL's schema gone, SQLite's disk full) after Exchange made the change. The change
never waits for Slack, and each ends verified, audited once and shown on its card once the fault clears."""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.store import ChangeState, Store
from sandbox.faults import Hold
from sandbox.runtime import Sandbox
from sandbox.slack import SlackClient
from tests.bot.e2e.bot_process import BotProcess, poll
from tests.bot.e2e.crashes import TRUSTEE, WITHIN, request_and_approve, settled
from tests.bot.store.support import Database


@pytest.mark.parametrize("storm", [{"error_status": 429, "retry_after_s": 0}, {"error_status": 503}])
async def test_a_slack_storm_after_approve_neither_stops_nor_loses_the_change(
    sandbox: Sandbox, database: Database, tmp_path: Path, storm: dict[str, int]
) -> None:
    assert sandbox.slack is not None
    mailbox = "carol@business.com"
    counter = sandbox.faults.hold("exchange", "Add-RecipientPermission", mailbox, stage=None)
    entering = sandbox.faults.hold("exchange", "Add-RecipientPermission", mailbox)
    bot = BotProcess(sandbox, tmp_path, database.url)
    try:
        slack = SlackClient(sandbox.slack, bot_url=await bot.start(), slack_base_url=sandbox.urls.slack)
        await request_and_approve(slack, sandbox.slack, mailbox)
        await poll(_held(entering), WITHIN, "the grant at Exchange")
        sandbox.faults.set("slack", error_rate=1.0, **storm)  # every Slack call from now on fails
        entering.release()
        async with await Store.open(database.url) as store:

            async def verified() -> bool | None:
                change = next(iter(await store.recent_changes()), None)
                return True if change is not None and change.state is ChangeState.VERIFIED else None

            await poll(verified, WITHIN, "the grant verified while Slack storms")
            assert sandbox.tenant.grant_record("SendAs", mailbox, TRUSTEE) is not None
            sandbox.faults.reset("slack")
            outcome = await settled(store, sandbox.slack, {mailbox: counter}, "storm", mailbox, False)
        assert "read back from Exchange" in outcome.card
        assert (outcome.grants_made, outcome.outcome_entries) == (1, 1)
    finally:
        await bot.stop()


async def test_the_store_lost_at_the_grant_is_settled_when_it_returns(
    sandbox: Sandbox, database: Database, tmp_path: Path
) -> None:
    """PostgreSQL: the bot's schema disappears (renamed away); SQLite: the disk is full (the bot's file-size
    limit drops to one byte). Either way after Exchange made the change and before its outcome is written."""
    assert sandbox.slack is not None
    mailbox = "dave@business.com"
    counter = sandbox.faults.hold("exchange", "Add-RecipientPermission", mailbox, stage=None)
    answer = sandbox.faults.hold("exchange", "Add-RecipientPermission", mailbox, stage="response")
    bot = BotProcess(sandbox, tmp_path, database.url)
    try:
        slack = SlackClient(sandbox.slack, bot_url=await bot.start(), slack_base_url=sandbox.urls.slack)
        await request_and_approve(slack, sandbox.slack, mailbox)
        await poll(_held(answer), WITHIN, "the grant made in Exchange, its answer held")
        async with _store_lost(database, bot):
            answer.release()
            await poll(_said(sandbox, "could not record"), WITHIN, "the approver told the store failed")
        async with await Store.open(database.url) as store:
            outcome = await settled(store, sandbox.slack, {mailbox: counter}, "store", mailbox, False)
            assert (await store.verify_audit_chain()).ok
        assert outcome.change.state is ChangeState.VERIFIED, outcome.change.detail
        assert "read back from Exchange" in outcome.card
        assert (outcome.grants_made, outcome.outcome_entries) == (1, 1)
    finally:
        await bot.stop()


def _held(hold: Hold) -> Callable[[], Awaitable[bool | None]]:
    async def probe() -> bool | None:
        return True if hold.held else None

    return probe


def _said(sandbox: Sandbox, needle: str) -> Callable[[], Awaitable[bool | None]]:
    """Whether anyone was told ``needle`` (a reply to the click, or a private message)."""
    assert sandbox.slack is not None
    workspace = sandbox.slack

    async def probe() -> bool | None:
        replies = [str(post.payload) for post in workspace.response_posts()]
        private = [m.all_text() for m in workspace.all_messages() if m.ephemeral]
        return True if any(needle in text for text in replies + private) else None

    return probe


@asynccontextmanager
async def _store_lost(database: Database, bot: BotProcess) -> AsyncIterator[None]:
    if database.backend == "postgres":
        options = str(make_url(database.url).query["options"])
        schema = options.split("search_path=", 1)[1].split()[0]
        await database.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_away"')
        try:
            yield
        finally:
            await database.execute(f'ALTER SCHEMA "{schema}_away" RENAME TO "{schema}"')
        return
    assert bot.process is not None
    soft, hard = resource.prlimit(bot.process.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(bot.process.pid, resource.RLIMIT_FSIZE, (1, hard))  # every write to a file fails: disk full
    try:
        yield
    finally:
        resource.prlimit(bot.process.pid, resource.RLIMIT_FSIZE, (soft, hard))
