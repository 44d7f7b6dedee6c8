"""`/sendas show <mailbox>` · `/sendas who <user>` · `/sendas grant|revoke <trustee> <right> <mailbox> [for 8h]`.

A grant or revoke reads as a sentence (``grant admin@business.com send-as alice@business.com``: admin@ will be
able to send as alice@) or as labelled parts (:mod:`bot.grant_grammar`); anything ambiguous is refused with an
example. Every change first shows a card stating its effect in words, with what to look out for
(:mod:`bot.grant_checks`), and Confirm / Cancel (:mod:`bot.confirmations`, handled in
:mod:`bot.listeners.actions`): IT's Confirm makes the change, anyone else's sends it to IT for approval.

`show` and `who` map who can send as whom, so they answer IT only (``slack.lookups_it_only``); `who` answers
from the last audit while it is fresh (``slack.who_snapshot_max_age_minutes``) instead of scanning the tenant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import blocks, confirmations, grant_checks
from bot.changes import MAX_DURATION, Change, describe_duration
from bot.context import BotContext
from bot.errors import after_ack
from bot.grant_grammar import EXAMPLE, effect_words, parse_change
from bot.people import directory_query
from graph.permissions_model import SID, Grant, MailboxRights, check_mailbox, check_trustee
from graph.recipients import look_up
from plugin.diagnosis import Right
from plugin.errors import ConfigError
from plugin.resolve import RIGHT_WORDS

USAGE = (
    "Usage: `/sendas show <mailbox>` · `/sendas who <user>` · "
    "`/sendas grant|revoke <trustee> send-as|send-on-behalf|full-access <mailbox> [for 8h]`\n"
    "Example: `/sendas grant admin@business.com send-as alice@business.com for 8h`: admin@business.com will be "
    "able to send as alice@business.com for eight hours."
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
    if verb in ("grant", "revoke"):
        return SendAsCommand(verb, change=parse_change(verb, words[1:], longest))
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
        rest = f"use the CLI: emaildoctor perms {blocks.escape(rights.mailbox)}"
        await _respond(ctx, respond, blocks.lines_message(title, _show_lines(rights), rest=rest))
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
        rest = "see the CSV of `/mailaudit run`" if taken_at is not None else "use the CLI: emaildoctor perms --trustee"
        message = blocks.lines_message(title, lines, empty="no rights on other mailboxes", rest=rest)
        await _respond(ctx, respond, message)
        return
    assert parsed.change is not None
    change = await _resolved(ctx, parsed.change)
    await _respond(ctx, respond, await confirmation_card(ctx, change, user, command["channel_id"]))


async def _identity(ctx: BotContext, typed: str) -> str:
    """An address for what was typed: a @mention's email, an alias or name Exchange resolves, or the address."""
    text = typed.strip()
    if text.startswith("<@"):
        return await directory_query(ctx.poster.client, text)
    if "@" in text or SID.match(text) or ctx.permissions is None or text.startswith("<"):
        return text
    found = await look_up(ctx.permissions.exchange, text)
    if found is None:
        raise ConfigError(f"Exchange knows no mailbox or user '{text}'. {EXAMPLE}")
    return found.address


async def _resolved(ctx: BotContext, change: Change) -> Change:
    """The change with addresses for its trustee and mailbox; ConfigError (nothing shown, nothing changed) if not."""
    trustee, mailbox = await _identity(ctx, change.trustee), await _identity(ctx, change.mailbox)
    allow_sid = change.kind == "revoke" and change.right is not Right.SEND_ON_BEHALF
    if trustee.casefold() == mailbox.casefold():  # checked again on the addresses: an alias may name the mailbox
        raise ConfigError(
            f"{trustee} is both the trustee and the mailbox: a mailbox needs no right on itself. {EXAMPLE}"
        )
    return dataclasses.replace(
        change, trustee=check_trustee(trustee, allow_sid=allow_sid), mailbox=check_mailbox(mailbox)
    )


async def confirmation_card(ctx: BotContext, change: Change, user: str, channel: str) -> blocks.Message:
    now = ctx.now()
    proposal = confirmations.new_proposal(change, user, channel, now)
    until = now + change.duration if change.duration else None
    effect = effect_words(change, until=until)
    if change.duration:
        effect += f" ({describe_duration(change.duration)}, then revoked automatically)"
    verb = "grant" if change.kind == "grant" else "revoke"
    subject = f"{verb} {RIGHT_WORDS[change.right]} · trustee {change.trustee} · mailbox {change.mailbox}"
    expires = proposal.expires_at
    return blocks.confirm_card(
        effect=effect,
        warnings=await grant_checks.warnings_for(ctx, change),
        value=confirmations.seal(proposal, confirmations.card_secret(ctx.settings)),
        expires=f"<!date^{int(expires.timestamp())}^{{time}}|{expires:%H:%M} UTC>",
        goes_to_it=not await ctx.approvers.is_it(user, fresh=False),
        subject=subject,
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
    """A heading per right, then one entry per holder (so a long list is shortened between entries)."""
    shown, hidden = rights.holders()
    lines: list[str] = []
    for right, grants in shown:
        lines.append(f"*{RIGHT_WORDS[right]}:*" + ("" if grants else " _nobody_"))
        lines += [f"• {blocks.escape(g.describe())}" for g in grants]
    if hidden:
        lines.append(f"_and {hidden} inherited entries of Exchange's own accounts_")
    return lines


async def _respond(
    ctx: BotContext,
    respond: AsyncRespond,
    message: blocks.Message,
    *,
    in_channel: bool = False,
    replace_original: bool | None = None,
) -> None:
    text, body = message
    payload = blocks.redacted({"text": text, "blocks": body}, ctx.secrets)
    if replace_original is not None:
        payload["replace_original"] = replace_original
    await respond(response_type="in_channel" if in_channel else "ephemeral", **payload)
