"""`/emaildoctor check [area]` (IT only): `emaildoctor check`'s checklist, privately, in Slack."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import blocks
from bot.context import BotContext
from bot.errors import after_ack
from bot.readiness import setup_report
from plugin.checks import AREAS
from plugin.errors import ConfigError

USAGE = f"Usage: `/emaildoctor check` (every check) · `/emaildoctor check AREA` (one of {', '.join(AREAS)})"


def register(app: AsyncApp, ctx: BotContext) -> None:
    @app.command("/emaildoctor")
    async def emaildoctor(ack: AsyncAck, body: dict[str, Any], command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, run_check(ctx, command, respond), name="emaildoctor-check")


async def run_check(ctx: BotContext, command: dict[str, Any], respond: AsyncRespond) -> None:
    words = (command.get("text") or "").casefold().split()
    if not words or words[0] != "check" or len(words) > 2 or (len(words) == 2 and words[1] not in AREAS):
        raise ConfigError(USAGE)
    if not await ctx.approvers.is_it(command["user_id"], fresh=False):
        raise ConfigError("Only IT admins can run the setup checks.")
    await respond(text="Checking the setup…", response_type="ephemeral")
    report = await setup_report(ctx, frozenset(words[1:] or AREAS))
    text, body = blocks.checklist_message(report)
    payload = blocks.redacted({"text": text, "blocks": body}, ctx.secrets)
    await respond(text=payload["text"], blocks=payload["blocks"], response_type="ephemeral")
