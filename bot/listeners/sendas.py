"""`/sendas show <mailbox>` · `/sendas who <user>` · `/sendas grant|revoke <right> <trustee> <mailbox> [for 8h]`.

IT admins grant and revoke directly; anyone else gets an approval request posted for them. `show` and `who`
map who can send as whom, so they answer IT only (``slack.lookups_it_only``); `who` answers from the last
audit while it is fresh (``slack.who_snapshot_max_age_minutes``) instead of scanning the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import approvals, blocks
from bot.change_views import SlackChangeView, direct_reply
from bot.changes import MAX_DURATION, Change, parse_duration, parse_right
from bot.context import BotContext
from bot.errors import after_ack
from bot.store import RequestKind
from graph.permissions_model import Grant, MailboxRights
from plugin.errors import ConfigError
from plugin.resolve import RIGHT_WORDS

USAGE = (
    "Usage: `/sendas show <mailbox>` · `/sendas who <user>` · "
    "`/sendas grant|revoke <SendAs|SendOnBehalf|FullAccess> <trustee> <mailbox> [for 8h]`\n"
    "Example: `/sendas grant SendAs admin@business.com alice@business.com for 8h` lets admin@ send as alice@ "
    "for eight hours."
)


@dataclass(frozen=True)
class SendAsCommand:
    verb: str
    target: str = ""
    change: Change | None = None


def parse(text: str, longest: timedelta = MAX_DURATION) -> SendAsCommand:
    words = text.split()
    if not words:
        raise ConfigError(USAGE)
    verb = words[0].casefold()
    if verb in ("show", "who") and len(words) == 2:
        return SendAsCommand(verb, target=words[1])
    if verb in ("grant", "revoke") and len(words) in (4, 6):
        duration: timedelta | None = None
        if len(words) == 6:
            if words[4].casefold() != "for" or verb != "grant":
                raise ConfigError("only a grant can be time-bound: `... for 8h`\n" + USAGE)
            duration = parse_duration(words[5], longest)
        return SendAsCommand(verb, change=Change(verb, parse_right(words[1]), words[3], words[2], duration))
    raise ConfigError(USAGE)


def register(app: AsyncApp, ctx: BotContext) -> None:
    @app.command("/sendas")
    async def sendas(ack: AsyncAck, body: dict[str, Any], command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, run_sendas(ctx, command, respond), name="sendas")


async def run_sendas(ctx: BotContext, command: dict[str, Any], respond: AsyncRespond) -> None:
    user = command["user_id"]
    limits = ctx.settings.limits
    per_minute = limits.sendas_per_requester_per_minute
    ctx.limits.take(f"sendas:{user}", ctx.now(), count=per_minute, window=timedelta(minutes=1), what="/sendas")
    parsed = parse(command.get("text", ""), timedelta(days=limits.max_grant_days))
    permissions = ctx.permissions
    if permissions is None:
        raise ConfigError("Microsoft 365 is not configured, so emaildoctor cannot read or change mailbox rights")
    lookup = parsed.verb in ("show", "who")
    if lookup and ctx.settings.slack.lookups_it_only and not await ctx.approvers.is_it(user, fresh=False):
        raise ConfigError(f"Only IT admins can look up mailbox rights (/sendas {parsed.verb}).")
    if parsed.verb == "show":
        rights = await permissions.show(parsed.target)
        title = f"Rights on {blocks.escape(rights.mailbox)}"
        await _respond(ctx, respond, blocks.lines_message(title, _show_lines(rights)))
        return
    if parsed.verb == "who":
        audited = await _who_from_audit(ctx, parsed.target)
        grants, taken_at = audited if audited else (await permissions.who(parsed.target), None)
        lines = [
            f"• {RIGHT_WORDS[g.right]} on {blocks.escape(g.mailbox)}" + (" (inherited)" if g.inherited else "")
            for g in grants
        ]
        title = f"What {blocks.escape(parsed.target)} can send as, on behalf of, or open"
        if taken_at is not None:
            title += f" (from the audit of {taken_at:%Y-%m-%d %H:%M} UTC; `/mailaudit run` refreshes it)"
        await _respond(ctx, respond, blocks.lines_message(title, lines, empty="no rights on other mailboxes"))
        return
    assert parsed.change is not None
    change = parsed.change
    if await ctx.approvers.is_it(user):
        kind = RequestKind(change.kind)
        record = await ctx.pipeline.record(
            kind, change.right, change.mailbox, change.trustee, by=user, duration=change.duration
        )

        async def reply(message: blocks.Message, in_channel: bool) -> None:
            await _respond(ctx, respond, message, in_channel=in_channel)

        if await ctx.pipeline.drive(record.id, view=SlackChangeView(ctx, reply)) is None:
            # Another replica's reconciler took it first: it posts the outcome in the approvals channel.
            await _respond(ctx, respond, blocks.plain(direct_reply(record)))
        return
    request = await approvals.open_request(
        ctx,
        change,
        requested_by=user,
        origin_channel=command["channel_id"],
        origin_thread_ts=None,
        test_user=None,
    )
    await _respond(
        ctx,
        respond,
        blocks.plain(f"Only IT can change rights directly, so request {request.id} went to IT for approval."),
    )


async def _who_from_audit(ctx: BotContext, trustee: str) -> tuple[list[Grant], datetime] | None:
    """The trustee's grants in the last audit, if it is fresh and ``trustee`` is an address it would list."""
    max_age = timedelta(minutes=ctx.settings.slack.who_snapshot_max_age_minutes)
    if not max_age or "@" not in trustee:
        return None  # a login or a name: only Exchange resolves it to the addresses the audit lists
    stored = await ctx.store.latest_snapshot()
    if stored is None or ctx.now() - stored.taken_at > max_age:
        return None
    wanted = trustee.casefold()
    grants = [Grant.from_json(dict(row)) for row in stored.rows if str(row.get("trustee", "")).casefold() == wanted]
    return sorted(g for g in grants if not g.deny), stored.taken_at


def _show_lines(rights: MailboxRights) -> list[str]:
    shown, hidden = rights.holders()
    lines = [
        f"*{RIGHT_WORDS[right]}:* " + (", ".join(blocks.escape(g.describe()) for g in grants) if grants else "_nobody_")
        for right, grants in shown
    ]
    if hidden:
        lines.append(f"_and {hidden} inherited entries of Exchange's own accounts_")
    return lines


async def _respond(
    ctx: BotContext, respond: AsyncRespond, message: blocks.Message, *, in_channel: bool = False
) -> None:
    text, body = message
    payload = blocks.redacted({"text": text, "blocks": body}, ctx.secrets)
    await respond(response_type="in_channel" if in_channel else "ephemeral", **payload)
