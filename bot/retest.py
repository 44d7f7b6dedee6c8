"""The re-test after a granted fix: the original user's test, run again with back-off until it passes or the
limit passes (Exchange takes minutes to apply a new right, so the first re-tests usually still fail, reported as
'granted, waiting'), its progress and result shown in the thread of the test that asked for the fix.

The re-test is a row in the store (:mod:`bot.store.retests`), written with the grant's ``verified`` state, so it
survives the replica that approved the change::

    testing ──(progress message posted)──► attempt 1 … n ──┬─ failing, Send As denied: next attempt at due_at (back-off)
                                                            └─ passed, failing otherwise, or the limit passed
    posting ──(outcome and its audit entry recorded, the report's post claimed)──► report posted, result shown
    done

Each step is run by the replica holding the row's lease: the one that verified the grant follows it at once
(:func:`follow`), and every replica's scheduler tick runs the re-tests that are due and that nobody holds
(:func:`run_due`), so when a replica dies another finishes its re-tests. The result is the progress message,
updated (an update shows the same thing however often it is repeated); the report beside it is posted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import blocks
from bot.context import BotContext
from bot.slack_io import Posted
from bot.store import RetestOutcome, RetestRecord, RetestState, StoreError
from plugin.diagnosis import Code
from plugin.doctor import Report
from plugin.errors import EmailDoctorError
from plugin.resolve import RIGHT_WORDS
from plugin.settings import SlackSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetestPolicy:
    first_delay: float
    max_delay: float
    timeout: float

    @classmethod
    def of(cls, slack: SlackSettings) -> RetestPolicy:
        return cls(slack.retest_first_delay_seconds, slack.retest_max_delay_seconds, slack.retest_timeout_minutes * 60)

    def delays(self) -> list[float]:
        """The waits before each attempt: doubling from first_delay, capped at max_delay, within timeout."""
        waits: list[float] = []
        delay, total = self.first_delay, 0.0
        while total + delay <= self.timeout:
            waits.append(delay)
            total += delay
            delay = min(delay * 2, self.max_delay)
        return waits

    def wait_before(self, attempt: int) -> timedelta:
        """The wait before attempt ``attempt`` (1 is the first)."""
        return timedelta(seconds=min(self.max_delay, self.first_delay * 2 ** max(0, attempt - 1)))

    def slack_retry(self, failures: int) -> timedelta:
        """When to show a re-test again after Slack refused it ``failures`` times in a row."""
        return self.wait_before(failures + 1)

    def last_attempt(self, attempt: int, started: datetime, now: datetime) -> bool:
        return attempt >= max(1, len(self.delays())) or (now - started).total_seconds() >= self.timeout


def _lease(ctx: BotContext) -> timedelta:
    return timedelta(seconds=ctx.settings.changes.lease_seconds)


async def follow(ctx: BotContext, change_id: int) -> None:
    """Run the re-test of a grant this replica just verified, step after step, for as long as it gets each step
    (another replica may take a step when it is due; the loop then ends and that replica's ticks go on)."""
    job = await ctx.store.retest_of_change(change_id)
    while job is not None and job.state is not RetestState.DONE:
        wait = (job.due_at - ctx.now()).total_seconds()
        if wait > 0:
            await ctx.sleep(wait + 0.01)  # the store compares with the clock: not a moment early
        job = await run(ctx, job.id)


async def run_due(ctx: BotContext) -> int:
    """One step of every re-test that is due and not held (a replica died, or a step is due): how many ran."""
    ran = 0
    for job in await ctx.store.workable_retests(_lease(ctx)):
        try:
            if await run(ctx, job.id) is not None:
                ran += 1
        except EmailDoctorError as exc:
            log.warning("could not run re-test %s: %s", job.id, exc)
    return ran


async def run(ctx: BotContext, retest_id: int) -> RetestRecord | None:
    """Claim the re-test and take one step; None if another replica holds it or it is not due."""
    lease = _lease(ctx)
    job = await ctx.store.claim_retest(retest_id, ctx.replica, lease)
    if job is None:
        return None
    step = asyncio.create_task(_step(ctx, job), name=f"retest-{retest_id}")
    keeper = asyncio.create_task(_keep_lease(ctx, retest_id, lease, step), name=f"retest-lease-{retest_id}")
    try:
        return await step
    except asyncio.CancelledError:
        if keeper.done() and not keeper.cancelled() and keeper.result():
            return None  # the lease went to another replica, which takes the step from the start
        raise
    finally:
        keeper.cancel()
        with contextlib.suppress(StoreError):  # the lease lapses by itself
            await ctx.store.release_retest(retest_id, ctx.replica)


async def _keep_lease(ctx: BotContext, retest_id: int, lease: timedelta, step: asyncio.Task[RetestRecord]) -> bool:
    """Renew the lease while the step runs; if another replica has it (this one was stalled past its lease), stop
    the step before it posts anything more. True when it stopped the step."""
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            kept = await ctx.store.renew_retest_lease(retest_id, ctx.replica, lease)
        except StoreError:
            continue  # the store is unreachable: the step's own writes fail, or the lease is renewed next time
        if not kept:
            log.warning("re-test %s: another replica took it over; this one stops its step", retest_id)
            step.cancel()
            return True


async def _step(ctx: BotContext, job: RetestRecord) -> RetestRecord:
    policy = RetestPolicy.of(ctx.settings.slack)
    if job.state is RetestState.POSTING:
        return await _show_result(
            ctx, job, policy, report_claimed=await ctx.store.claim_retest_post(job.id, ctx.replica)
        )
    if job.progress_ts is None:
        words = RIGHT_WORDS[job.right]
        text = f":arrows_counterclockwise: Re-testing {job.test_user} until Exchange applies the {words} right…"
        try:
            progress = await ctx.poster.post(job.channel, blocks.plain(text), thread_ts=job.thread_ts)
        except EmailDoctorError as exc:
            return await _slack_failed(ctx, job, policy, exc)
        return await ctx.store.retest_started(job.id, ctx.replica, progress.ts, ctx.now() + policy.wait_before(1))
    attempt = job.attempts + 1
    report: Report | None = None
    try:
        report = await ctx.doctor.diagnose(job.test_user)
        state = blocks.title_of(report.diagnosis, report.pending)
    except EmailDoctorError as exc:  # counted as an attempt: the limit still ends it
        state = f"could not run the test ({blocks.escape(str(exc))})"
    now = ctx.now()
    outcome = _outcome(report, policy.last_attempt(attempt, job.created_at, now))
    if outcome is None:
        with contextlib.suppress(EmailDoctorError):  # progress only: the next attempt updates it again
            await ctx.poster.update(
                _progress(job),
                blocks.plain(f":arrows_counterclockwise: Re-test {attempt} of {job.test_user}: {state}."),
            )
        return await ctx.store.retest_attempted(job.id, ctx.replica, attempt, now + policy.wait_before(attempt + 1))
    origin = {"channel": job.channel, "thread_ts": job.thread_ts or ""}
    text = result_text(job.test_user, outcome, attempt, (now - job.created_at).total_seconds())
    message = None if report is None else json.dumps(list(blocks.report_blocks(report, origin=origin)))
    job = await ctx.store.finish_retest(
        job.id, ctx.replica, attempts=attempt, outcome=outcome, text=text, report=message
    )
    return await _show_result(ctx, job, policy, report_claimed=True)


def _outcome(report: Report | None, last: bool) -> RetestOutcome | None:
    if report is None:
        return RetestOutcome.GAVE_UP if last else None
    if report.ok:
        return RetestOutcome.PASSED
    if report.diagnosis is None or report.diagnosis.code is not Code.SEND_AS_DENIED:
        return RetestOutcome.STOPPED
    return RetestOutcome.GAVE_UP if last else None


def result_text(user: str, outcome: RetestOutcome, attempts: int, waited_seconds: float) -> str:
    minutes = waited_seconds / 60
    waited = f"{waited_seconds:.0f} s" if waited_seconds < 120 else f"{minutes:.0f} min"
    if outcome is RetestOutcome.PASSED:
        return f":white_check_mark: {user}'s email test passes now (re-test {attempts}, {waited} after the grant)."
    if outcome is RetestOutcome.STOPPED:
        return f":x: {user}'s test now fails for another reason; see the report below."
    return (
        f":warning: {user}'s test still fails after {minutes:.0f} min. Exchange can take up to two hours to "
        f"apply a right; run /emailtest {user} later."
    )


def _report_message(stored: str | None) -> blocks.Message | None:
    try:
        text, report_blocks = json.loads(stored) if stored else (None, [])
    except (ValueError, TypeError):
        log.warning("a re-test's stored report is not a message; the result is shown without it")
        return None
    return None if text is None else (str(text), list(report_blocks))


def _progress(job: RetestRecord) -> Posted:
    assert job.progress_ts is not None
    return Posted(job.channel, job.progress_ts)


async def _show_result(
    ctx: BotContext, job: RetestRecord, policy: RetestPolicy, *, report_claimed: bool
) -> RetestRecord:
    """Post the report (only with its claim: once), then show the result on the progress message and, when it
    passed, on the test's own message (updates: repeating them shows the same thing)."""
    assert job.result_text is not None
    report = _report_message(job.report) if report_claimed else None
    if report is not None:
        try:
            await ctx.poster.post(job.channel, report, thread_ts=job.thread_ts)
        except EmailDoctorError as exc:
            return await _slack_failed(ctx, job, policy, exc, report_unposted=True)
    try:
        await ctx.poster.update(_progress(job), blocks.plain(job.result_text))
        if job.outcome is RetestOutcome.PASSED and job.thread_ts:
            await ctx.poster.update(
                Posted(job.channel, job.thread_ts),
                blocks.plain(
                    f":white_check_mark: Email test for {job.test_user} passes after the fix (see the thread)."
                ),
            )
    except EmailDoctorError as exc:
        return await _slack_failed(ctx, job, policy, exc)
    return await ctx.store.close_retest(job.id, ctx.replica)


async def _slack_failed(
    ctx: BotContext, job: RetestRecord, policy: RetestPolicy, exc: EmailDoctorError, *, report_unposted: bool = False
) -> RetestRecord:
    due = ctx.now() + policy.slack_retry(job.slack_failures)
    log.warning("re-test %s: Slack refused a message (%s); showing it again at %s", job.id, exc, f"{due:%H:%M:%S}")
    return await ctx.store.retest_slack_failed(job.id, ctx.replica, due, report_unposted=report_unposted)
