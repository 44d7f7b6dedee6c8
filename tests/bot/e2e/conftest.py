"""The running world for the bot's end-to-end tests: the sandbox (Microsoft 365 + Slack), the real bot served
over HTTP on 127.0.0.1, and Slack's side played by the sandbox's signing client.

Time: the sandbox runs on a ManualClock, and the bot's back-off sleeps advance that clock instead of waiting,
so "Exchange applies the right after 60 seconds" happens in milliseconds, deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_app
from bot.context import BotContext
from bot.server import RunningServer, serve_http
from bot.services import bot_context
from plugin.settings import Settings, load_settings
from sandbox.clock import ManualClock
from sandbox.runtime import Sandbox
from sandbox.slack import SlackClient, SlackDelivery, SlackMessage, SlackWorkspace
from sandbox.testing import SandboxFactory
from tests.bot.e2e.bot_process import poll
from tests.bot.store.support import Database

HELPDESK, APPROVALS, AUDIT = "C0HELPDESK", "C0ITAPPROVE", "C0MAILAUDIT"
HANNAH, IVAN, ALICE = "U0HANNAH", "U0IVAN", "U0ALICE"
PROPAGATION_SECONDS = 60
WAIT = 20.0

OVERRIDES = {
    "EMAILDOCTOR_SLACK__RETEST_FIRST_DELAY_SECONDS": "30",
    "EMAILDOCTOR_SLACK__RETEST_MAX_DELAY_SECONDS": "120",
    "EMAILDOCTOR_SLACK__RETEST_TIMEOUT_MINUTES": "15",
    "EMAILDOCTOR_SLACK__REQUEST_TTL_HOURS": "4",
}


@dataclass
class World:
    sandbox: Sandbox
    settings: Settings
    ctx: BotContext
    server: RunningServer
    slack: SlackClient

    @property
    def workspace(self) -> SlackWorkspace:
        assert self.sandbox.slack is not None
        return self.sandbox.slack

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.sandbox.clock, ManualClock)
        return self.sandbox.clock

    async def command(self, user: str, command: str, text: str, channel: str = HELPDESK) -> SlackDelivery:
        delivery = await self.slack.slash_command(user, command, text, channel)
        assert delivery.status == 200, (delivery.status, delivery.body, delivery.error)
        return delivery

    async def wait(self, predicate: Callable[[], Any], within: float = WAIT) -> Any:
        return await self.workspace.wait_for(predicate, timeout=within)

    async def top(self, channel: str, needle: str) -> SlackMessage:
        """The first top-level message in ``channel`` whose text contains ``needle`` (waiting for it)."""

        def find() -> SlackMessage | None:
            return next((m for m in self.workspace.messages(channel) if self._ever_said(m, needle)), None)

        message: SlackMessage = await self.wait(find)
        return message

    def _ever_said(self, message: SlackMessage, needle: str) -> bool:
        return any(needle in version.all_text() for version in self.workspace.versions(message.channel, message.ts))

    async def reply(self, parent: SlackMessage, needle: str) -> SlackMessage:
        def find() -> SlackMessage | None:
            return next((m for m in self.workspace.replies(parent.channel, parent.ts) if needle in m.all_text()), None)

        message: SlackMessage = await self.wait(find)
        return message

    def latest(self, message: SlackMessage) -> SlackMessage:
        return self.workspace.message(message.channel, message.ts)

    async def outcomes(self, action: str, count: int = 1) -> list[tuple[str, str, str | None]]:
        """The (result, actor, approved_by) of the first ``count`` ``action`` entries, once the audit log has them:
        a change's outcome is written with its final state, so this waits for the change, not for a moment."""

        async def entries() -> list[tuple[str, str, str | None]] | None:
            log = await self.ctx.store.audit_entries(limit=200)
            found = [(e.result, e.actor, e.approved_by) for e in log if e.action == action]
            return found[:count] if len(found) >= count else None

        return await poll(entries, WAIT, f"the outcome of {count} {action}")

    async def settle(self) -> None:
        """Wait until the bot's background work (re-tests, audits) is done."""
        await self.ctx.tasks.drain(within=WAIT)


async def fast_forward(clock: ManualClock, seconds: float) -> None:
    """The bot's sleep: move the sandbox clock instead of waiting."""
    clock.advance(seconds)
    await asyncio.sleep(0)


@asynccontextmanager
async def start_world(
    sandbox: Sandbox, tmp_path: Path, store_url: str, *, replica: str = "replica-1", extra: dict[str, str] | None = None
) -> AsyncIterator[World]:
    env_file = sandbox.write_env_file(tmp_path / f"{replica}.env")
    lines = {**OVERRIDES, "EMAILDOCTOR_STORE__URL": store_url, **(extra or {})}
    with env_file.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in lines.items())
    settings = load_settings(env_file)
    clock = sandbox.clock
    assert isinstance(clock, ManualClock)
    async with bot_context(settings, sandbox.settings_env(), clock=clock, replica=replica) as ctx:
        ctx.sleep = lambda seconds: fast_forward(clock, seconds)
        server = await serve_http(create_app(settings, ctx), "127.0.0.1", 0)
        try:
            yield World(sandbox, settings, ctx, server, sandbox.slack_client(server.url))
        finally:
            await server.stop()


@pytest.fixture
async def world(sandbox_factory: SandboxFactory, tmp_path: Path, database: Database) -> AsyncIterator[World]:
    async with (
        sandbox_factory(propagation_delay_seconds=PROPAGATION_SECONDS) as sandbox,
        start_world(sandbox, tmp_path, database.url) as running,
    ):
        yield running
