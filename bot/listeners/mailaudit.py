"""`/mailaudit run|last|schedule` (IT only: an audit lists who can send as whom)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import audits, blocks
from bot.change_views import unsettled_lines
from bot.context import BotContext
from bot.errors import after_ack
from bot.scheduler import next_runs
from bot.store import ChangeOrigin
from plugin.errors import ConfigError

USAGE = "Usage: `/mailaudit run` (audit now) · `/mailaudit last` (the last audit) · `/mailaudit schedule`"


def register(app: AsyncApp, ctx: BotContext) -> None:
    @app.command("/mailaudit")
    async def mailaudit(ack: AsyncAck, body: dict[str, Any], command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, run_mailaudit(ctx, command, respond), name="mailaudit")


async def run_mailaudit(ctx: BotContext, command: dict[str, Any], respond: AsyncRespond) -> None:
    verb = (command.get("text") or "").strip().casefold()
    if verb not in ("run", "last", "schedule"):
        raise ConfigError(USAGE)
    user = command["user_id"]
    if not await ctx.approvers.is_it(user, fresh=False):
        raise ConfigError("Only IT admins can see mailbox-rights audits.")
    if verb == "schedule":
        cron = ctx.settings.slack.audit_cron
        if not cron:
            text = "No scheduled audit: set EMAILDOCTOR_SLACK__AUDIT_CRON (e.g. `0 7 * * 1-5`)."
        else:
            runs = ", ".join(f"{moment:%a %Y-%m-%d %H:%M} UTC" for moment in next_runs(cron, ctx.now()))
            where = f"<#{ctx.settings.slack.audit_channel}>" if ctx.settings.slack.audit_channel else "nowhere"
            text = f"Scheduled audit `{cron}` (UTC), posted to {where}. Next: {runs}."
        await respond(text=text, response_type="ephemeral")
        return
    if verb == "last":
        stored = await ctx.store.latest_snapshot()
        text, body = audits.last_summary(stored) if stored else blocks.plain("No audit has run yet: `/mailaudit run`.")
        overdue = await ctx.store.overdue_revocations(ctx.now())  # time limits not yet due are not shown
        unsettled = await ctx.store.recent_changes(unsettled=True)
        pending = unsettled_lines(overdue + [c for c in unsettled if c.origin is not ChangeOrigin.TIME_LIMIT])
        if pending:
            body = [*body, *blocks.lines_message("Changes not finished yet", pending)[1]]
        await respond(text=text, blocks=body, response_type="ephemeral")
        return
    # An audit reads every mailbox of the tenant: it spends Exchange's budget, so it is rationed per person.
    allowed = ctx.settings.limits.mailaudit_runs_per_requester_per_hour
    ctx.limits.take(f"mailaudit:{user}", ctx.now(), count=allowed, window=timedelta(hours=1), what="/mailaudit run")
    channel = ctx.settings.slack.audit_channel or command["channel_id"]
    await respond(text=f"Auditing every mailbox; the summary and the CSV will be posted in <#{channel}>.")
    report = await audits.run_audit(ctx)
    await audits.post_audit(ctx, report, channel, scheduled=False)
