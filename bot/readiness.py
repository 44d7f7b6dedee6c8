"""What the bot asks of `emaildoctor check`: the whole checklist for `/emaildoctor check`, and the deep checks of
readiness (store reachable, Slack authorised, a Microsoft 365 token obtainable) for ``/readyz``.

Both run the installed check providers through :func:`plugin.cli_check.check_setup`, as the CLI does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bot.checks_slack import AUTH_ROW
from bot.context import BotContext
from plugin.checks import AREAS, CheckReport, CheckResult
from plugin.cli_check import check_setup, directory_secrets

READY_AREAS = frozenset({"m365", "slack", "store"})


async def setup_report(ctx: BotContext, only: frozenset[str] = frozenset(AREAS)) -> CheckReport:
    secrets = [*ctx.secrets, *directory_secrets(ctx.settings, ctx.environ)]
    return await check_setup(ctx.settings, ctx.environ, only, secrets)


def blocks_readiness(row: CheckResult) -> bool:
    """A failing row makes the bot not ready unless start-up only warns about it: a missing Slack scope, channel
    or approver leaves the bot half useful, not useless (see bot.checks_slack.startup_problems)."""
    return row.ok is False and (row.area != "slack" or row.name == AUTH_ROW)


class Readiness:
    """``/readyz``'s answer, reused for ``ready_cache_seconds`` so that probes do not ask Microsoft for a token
    on every request; concurrent probes share one run."""

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx
        self._lock = asyncio.Lock()
        self._answer: tuple[datetime, bool, list[dict[str, object]]] | None = None

    async def answer(self) -> tuple[bool, list[dict[str, object]]]:
        async with self._lock:
            now = self.ctx.now()
            ttl = timedelta(seconds=self.ctx.settings.slack.ready_cache_seconds)
            if self._answer is None or now - self._answer[0] >= ttl:
                report = await setup_report(self.ctx, READY_AREAS)
                ready = not any(blocks_readiness(row) for row in report.results)
                rows = [row for row in report.results if blocks_readiness(row)] if not ready else report.results
                # /readyz needs no credentials: it names the checks and their outcome, never their details
                # (hosts, tenant, chain head), which `emaildoctor check` and /emaildoctor check show to IT.
                self._answer = (now, ready, [{"area": row.area, "name": row.name, "ok": row.ok} for row in rows])
            _, ready, rows_json = self._answer
            return ready, rows_json
