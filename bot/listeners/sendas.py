"""`/sendas show <mailbox>` · `/sendas who <user>` · `/sendas grant|revoke <right> <trustee> <mailbox> [for 8h]`.

IT admins grant and revoke directly; anyone else gets an approval request posted for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import approvals, blocks
from bot.change_views import SlackChangeView
from bot.changes import Change, parse_duration, parse_right
from bot.context import BotContext
from bot.errors import after_ack
from bot.store import RequestKind
from graph.permissions_model import MailboxRights
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


def parse(text: str) -> SendAsCommand:
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
            duration = parse_duration(words[5])
        return SendAsCommand(verb, change=Change(verb, parse_right(words[1]), words[3], words[2], duration))
    raise ConfigError(USAGE)


def register(app: AsyncApp, ctx: BotContext) -> None:
    @app.command("/sendas")
    async def sendas(ack: AsyncAck, body: dict[str, Any], command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, run_sendas(ctx, command, respond), name="sendas")


async def run_sendas(ctx: BotContext, command: dict[str, Any], respond: AsyncRespond) -> None:
    parsed = parse(command.get("text", ""))
    user = command["user_id"]
    permissions = ctx.permissions
    if permissions is None:
        raise ConfigError("Microsoft 365 is not configured, so emaildoctor cannot read or change mailbox rights")
    if parsed.verb == "show":
        rights = await permissions.show(parsed.target)
        await _respond(ctx, respond, blocks.lines_message(f"Rights on {rights.mailbox}", _show_lines(rights)))
        return
    if parsed.verb == "who":
        grants = await permissions.who(parsed.target)
        lines = [f"• {RIGHT_WORDS[g.right]} on {g.mailbox}" + (" (inherited)" if g.inherited else "") for g in grants]
        title = f"What {parsed.target} can send as, on behalf of, or open"
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

        await ctx.pipeline.drive(record.id, view=SlackChangeView(ctx, reply))
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


def _show_lines(rights: MailboxRights) -> list[str]:
    shown, hidden = rights.holders()
    lines = [
        f"*{RIGHT_WORDS[right]}:* " + (", ".join(g.describe() for g in grants) if grants else "_nobody_")
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
