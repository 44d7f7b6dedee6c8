"""`/emailtest <user>`: acknowledge at once, post 'testing…', then the report in a thread."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.context import BotContext
from bot.errors import after_ack
from bot.people import directory_query
from bot.slack_io import Posted, is_channel_problem
from plugin.doctor import Report
from plugin.errors import ServiceError


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
    query = await directory_query(client, command.get("text", ""))
    try:
        posted = await ctx.poster.post(channel, blocks.testing_message(query, user))
    except ServiceError as exc:
        if not is_channel_problem(exc):
            raise
        # The app is not in this channel: answer privately instead of in a thread.
        await respond(text=f"Testing {query}… (invite @emaildoctor to this channel to get the report in a thread)")
        report = await ctx.doctor.diagnose(query)
        text, report_blocks = blocks.report_blocks(report)
        await respond(**blocks.redacted({"text": text, "blocks": report_blocks}, ctx.secrets))
        return
    report = await ctx.doctor.diagnose(query)
    await publish_report(ctx, report, posted, requested_by=user)


async def publish_report(ctx: BotContext, report: Report, parent: Posted, *, requested_by: str) -> None:
    """Update the 'testing…' message with the verdict and post the report (and transcript) in its thread."""
    await ctx.poster.update(parent, blocks.summary_message(report, requested_by))
    origin = {"channel": parent.channel, "thread_ts": parent.ts}
    await ctx.poster.post(parent.channel, blocks.report_blocks(report, origin=origin), thread_ts=parent.ts)
    transcript = blocks.transcript_message(report)
    if transcript is not None:
        await ctx.poster.post(parent.channel, transcript, thread_ts=parent.ts)
