"""Work on a clock: scheduled audits (once across replicas), expiring requests, and the reconciler that settles
changes to Exchange (time limits included) and runs the re-tests after granted fixes that are due.

Each tick is idempotent and safe to run on every replica: scheduled audits are claimed per cron slot, and
changes and re-tests one by one with a lease, through the store. The first tick runs at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta

from croniter import croniter

from bot import approvals, audits, blocks, retest
from bot.context import BotContext
from bot.observe import measure_backlog, run_event
from plugin.errors import ConfigError, EmailDoctorError

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
        self.interval = 30.0
        """Seconds between ticks: a time limit still held a tick after it ran out counts as overdue."""
        cron = ctx.settings.slack.audit_cron
        if cron:
            check_cron(cron)

    async def run(self, stop: asyncio.Event, interval: float = 30.0) -> None:
        self.interval = interval
        while not stop.is_set():
            await self.tick()
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue

    async def tick(self) -> None:
        for job in (self.expire_requests, self.settle_changes, self.run_retests, self.scheduled_audit):
            started = time.perf_counter()
            try:
                done = await job()
            except EmailDoctorError as exc:  # one failing job must not stop the others or the loop
                run_event(job.__name__, "failed", time.perf_counter() - started, error=str(exc))
            else:
                run_event(job.__name__, "ok", time.perf_counter() - started, done=done)
        with contextlib.suppress(EmailDoctorError):  # the gauges wait for the next tick
            await measure_backlog(self.ctx.store, self.ctx.now(), timedelta(seconds=self.interval))

    async def expire_requests(self) -> int:
        expired = await self.ctx.store.expire_due(self.ctx.now())
        for request in expired:
            await approvals.update_card(self.ctx, request, ":hourglass: Expired without a decision.")
        return len(expired)

    async def settle_changes(self) -> int:
        """The reconciler (bot.pipeline): changes left unfinished by a crash or an outage, due retries, time limits."""
        return await self.ctx.pipeline.reconcile()

    async def run_retests(self) -> int:
        """Re-tests after granted fixes (bot.retest) that are due and not held: a replica died, or a step is due."""
        return await retest.run_due(self.ctx)

    async def scheduled_audit(self) -> int:
        ctx = self.ctx
        cron = ctx.settings.slack.audit_cron
        if not cron or ctx.auditor is None:
            return 0
        slot = due_slot(cron, ctx.now())
        if slot < self.started_at:
            return 0  # the slot passed before this replica started; the next one is ours to run
        if not await ctx.store.claim_run(AUDIT_JOB, slot, ctx.replica):
            return 0
        channel = ctx.settings.slack.audit_channel
        try:
            report = await audits.run_audit(ctx)
            if channel:
                await audits.post_audit(ctx, report, channel, scheduled=True)
            result = f"ok: {report.snapshot.mailboxes} mailboxes, {len(report.findings)} findings"
        except EmailDoctorError as exc:
            await ctx.store.finish_run(AUDIT_JOB, slot, f"failed: {exc}")
            if channel:
                await ctx.poster.post(channel, blocks.plain(f":x: The scheduled audit failed: {exc}"))
            raise
        await ctx.store.finish_run(AUDIT_JOB, slot, result)
        return 1
