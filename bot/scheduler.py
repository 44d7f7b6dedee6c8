"""Work on a clock: scheduled audits (once across replicas), expiring requests, and the reconciler that settles
changes to Exchange (time limits included) and runs the re-tests after granted fixes that are due.

Each tick is idempotent and safe to run on every replica: scheduled audits are claimed per cron slot, and
changes and re-tests one by one with a lease, through the store. The first tick runs at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from croniter import croniter

from bot import approvals, audits, blocks, retest
from bot.context import BotContext
from plugin.errors import ConfigError, EmailDoctorError

log = logging.getLogger(__name__)
AUDIT_JOB = "audit"


def check_cron(expression: str) -> None:
    if not croniter.is_valid(expression):
        raise ConfigError(f"slack.audit_cron (EMAILDOCTOR_SLACK__AUDIT_CRON): '{expression}' is not a cron expression")


def due_slot(expression: str, now: datetime) -> datetime:
    """The most recent time the cron expression fired, at or before ``now`` (UTC)."""
    slot: datetime = croniter(expression, now + timedelta(seconds=1)).get_prev(datetime)
    return slot


def next_runs(expression: str, now: datetime, count: int = 3) -> list[datetime]:
    iterator = croniter(expression, now)
    return [iterator.get_next(datetime) for _ in range(count)]


class Scheduler:
    def __init__(self, ctx: BotContext, *, started_at: datetime) -> None:
        self.ctx = ctx
        self.started_at = started_at
        cron = ctx.settings.slack.audit_cron
        if cron:
            check_cron(cron)

    async def run(self, stop: asyncio.Event, interval: float = 30.0) -> None:
        while not stop.is_set():
            await self.tick()
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue

    async def tick(self) -> None:
        for job in (self.expire_requests, self.settle_changes, self.run_retests, self.scheduled_audit):
            try:
                await job()
            except EmailDoctorError as exc:  # one failing job must not stop the others or the loop
                log.warning("scheduled job %s failed: %s", job.__name__, exc)

    async def expire_requests(self) -> None:
        for request in await self.ctx.store.expire_due(self.ctx.now()):
            await approvals.update_card(self.ctx, request, ":hourglass: Expired without a decision.")

    async def settle_changes(self) -> None:
        """The reconciler (bot.pipeline): changes left unfinished by a crash or an outage, due retries, time limits."""
        settled = await self.ctx.pipeline.reconcile()
        if settled:
            log.info("settled %d change(s)", settled)

    async def run_retests(self) -> None:
        """Re-tests after granted fixes (bot.retest) that are due and not held: a replica died, or a step is due."""
        ran = await retest.run_due(self.ctx)
        if ran:
            log.info("ran %d re-test step(s)", ran)

    async def scheduled_audit(self) -> None:
        ctx = self.ctx
        cron = ctx.settings.slack.audit_cron
        if not cron or ctx.auditor is None:
            return
        slot = due_slot(cron, ctx.now())
        if slot < self.started_at:
            return  # the slot passed before this replica started; the next one is ours to run
        if not await ctx.store.claim_run(AUDIT_JOB, slot, ctx.replica):
            return
        channel = ctx.settings.slack.audit_channel
        try:
            report = await audits.run_audit(ctx)
            if channel:
                await audits.post_audit(ctx, report, channel, scheduled=True)
            result = f"ok: {report.snapshot.mailboxes} mailboxes, {len(report.findings)} findings"
        except EmailDoctorError as exc:
            result = f"failed: {exc}"
            if channel:
                await ctx.poster.post(channel, blocks.plain(f":x: The scheduled audit failed: {exc}"))
        await ctx.store.finish_run(AUDIT_JOB, slot, result)
