"""`/emailtest <user>`: acknowledge at once, post 'testing…', then the report in a thread.

One real test per person tested per ``limits.emailtest_reuse_seconds``: a repeat (by anyone) shows the last
result, labelled, instead of signing in as them again (lockouts, Exchange's three connections per mailbox).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.context import BotContext
from bot.errors import after_ack
from bot.limits import SharedTest
from bot.people import directory_query
from bot.slack_io import Posted, is_channel_problem
from plugin.doctor import Report
from plugin.errors import NotFoundError, ServiceError


def register(app: AsyncApp, ctx: BotContext) -> None:
    @app.command("/emailtest")
    async def emailtest(
        ack: AsyncAck, body: dict[str, Any], command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        after_ack(ctx, body, respond, run_emailtest(ctx, command, client, respond), name="emailtest")


async def run_emailtest(
    ctx: BotContext, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
) -> None:
    user, channel = command["user_id"], command["channel_id"]
    limits = ctx.settings.limits
    ctx.limits.take(
        f"emailtest:{user}",
        ctx.now(),
        count=limits.emailtest_per_requester_per_minute,
        window=timedelta(minutes=1),
        what="/emailtest",
    )
    query = await directory_query(client, command.get("text", ""))
    try:
        posted = await ctx.poster.post(channel, blocks.testing_message(query, user))
    except ServiceError as exc:
        if not is_channel_problem(exc):
            raise
        # The app is not in this channel: answer privately instead of in a thread.
        await respond(
            text=f"Testing {blocks.escape(query)}… (invite @emaildoctor to this channel to get the report in a thread)"
        )
        test = await _test(ctx, query)
        text, report_blocks = blocks.report_blocks(test.report, reused_from=_reused_from(ctx, test))
        await respond(**blocks.redacted({"text": text, "blocks": report_blocks}, ctx.secrets))
        return
    test = await _test(ctx, query)
    await publish_report(ctx, test.report, posted, requested_by=user, reused_from=_reused_from(ctx, test))


async def _test(ctx: BotContext, query: str) -> SharedTest:
    """The test of the employee ``query`` names: a new one, or the one of the last minute."""
    try:
        key = (await ctx.directory.load()).find(query).login.casefold()
    except NotFoundError:
        key = query.strip().casefold()  # nobody to sign in as: the diagnosis says so, cheaply
    reuse = timedelta(seconds=ctx.settings.limits.emailtest_reuse_seconds)
    return await ctx.limits.shared_test(key, ctx.now(), reuse, lambda: ctx.doctor.diagnose(query))


def _reused_from(ctx: BotContext, test: SharedTest) -> float | None:
    return (ctx.now() - test.started_at).total_seconds() if test.reused else None


async def publish_report(
    ctx: BotContext, report: Report, parent: Posted, *, requested_by: str, reused_from: float | None = None
) -> None:
    """Update the 'testing…' message with the verdict and post the report (and transcript) in its thread."""
    await ctx.poster.update(parent, blocks.summary_message(report, requested_by, reused_from=reused_from))
    origin = {"channel": parent.channel, "thread_ts": parent.ts}
    await ctx.poster.post(
        parent.channel, blocks.report_blocks(report, origin=origin, reused_from=reused_from), thread_ts=parent.ts
    )
    transcript = blocks.transcript_message(report)
    if transcript is not None:
        await ctx.poster.post(parent.channel, transcript, thread_ts=parent.ts)
